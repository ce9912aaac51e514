//! The engine's dynamic value: what a decoded record value (or key) is while it flows through
//! operators. Formats (JSON today; Avro/Protobuf later) decode into it and encode from it, so
//! operators never see a wire format.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// A dynamically typed value. Objects keep field order (small objects: a linear scan beats
/// hashing for the handful of fields events carry).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JSON null, a missing field, SQL NULL.
    #[default]
    Null,
    /// true/false.
    Bool(bool),
    /// Integral numbers that fit in i64.
    Int(i64),
    /// Every other number.
    Float(f64),
    /// Text; `Arc` so copying keys and group-by values is cheap.
    Str(Arc<str>),
    /// An array.
    List(Vec<Value>),
    /// An object, fields in their original order.
    Object(Vec<(Arc<str>, Value)>),
    /// A number kept as its JSON text, written as it is: an exact decimal as a format
    /// encodes it for output (`908.000`, `2.7E-8`). Only formats produce it; decoding never
    /// does. Elsewhere it counts as the f64 its text reads as.
    Number(Arc<str>),
}

impl Value {
    /// Builds an object from `(name, value)` pairs.
    pub fn object<K: Into<Arc<str>>>(fields: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    /// The field `name` of an object (`None` for other values or a missing field).
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| &**k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a dotted path (`a.b.c`) through nested objects.
    pub fn path(&self, path: &str) -> Option<&Value> {
        // What `path.split('.')` would do, without the iterator machinery: this runs several
        // times per event, mostly on paths without a dot.
        let (mut v, mut rest) = (self, path);
        while let Some(dot) = rest.bytes().position(|c| c == b'.') {
            v = v.get(&rest[..dot])?;
            rest = &rest[dot + 1..];
        }
        v.get(rest)
    }

    /// Sets (or adds) field `name` of an object; no-op on other values.
    pub fn set(&mut self, name: &str, value: Value) {
        if let Value::Object(fields) = self {
            match fields.iter_mut().find(|(k, _)| &**k == name) {
                Some((_, v)) => *v = value,
                None => fields.push((Arc::from(name), value)),
            }
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an i64, if it is a number that is integral (floats are truncated only
    /// when they have no fraction).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            _ => None,
        }
    }

    /// The value as an f64, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Number(t) => t.parse().ok(),
            _ => None,
        }
    }

    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Parses one JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Parses one JSON document, keeping of a top-level object only the fields named in
    /// `fields` (in document order, duplicates included); the others are checked for syntax
    /// but not built, which saves their allocations. Non-objects are decoded whole. Equals
    /// [`Value::from_json`] followed by dropping the other fields, except that skipped
    /// fields are not held to serde_json's nesting limit of 128.
    pub fn from_json_fields(bytes: &[u8], fields: &[Arc<str>]) -> Result<Value, serde_json::Error> {
        // Checked once up front, as a full decode would reject bad text in skipped strings
        // too (serde_json checks UTF-8 only in strings it builds).
        let text = std::str::from_utf8(bytes).map_err(de::Error::custom)?;
        if let Some(v) = pick_fast(bytes, fields) {
            return Ok(v);
        }
        let mut d = serde_json::Deserializer::from_str(text);
        let v = de::DeserializeSeed::deserialize(PickFields(fields), &mut d)?;
        d.end()?;
        Ok(v)
    }

    /// Encodes as compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out);
        out
    }

    /// Appends compact JSON to `out` (what [`Value::to_json`] returns): serde_json's text
    /// for every scalar, and a [`Value::Number`] as its text.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Writing scalars into a Vec cannot fail: every variant maps onto JSON (non-finite
        // floats become null, as serde_json does for f64).
        fn leaf<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
            let start = out.len();
            if serde_json::to_writer(&mut *out, v).is_err() {
                out.truncate(start);
                out.extend_from_slice(b"null");
            }
        }
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Int(i) => leaf(i, out),
            Value::Float(f) => leaf(f, out),
            Value::Str(s) => leaf(&**s, out),
            Value::Number(t) => out.extend_from_slice(t.as_bytes()),
            Value::List(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Value::Object(fields) => {
                out.push(b'{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    leaf(&**k, out);
                    out.push(b':');
                    v.write_json(out);
                }
                out.push(b'}');
            }
        }
    }

    /// Total order used by MIN/MAX and sorting: Null < Bool < numbers < Str < List < Object;
    /// numbers compare by value across Int and Float.
    pub fn total_cmp(&self, other: &Value) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) => 1,
                Value::Int(_) | Value::Float(_) | Value::Number(_) => 2,
                Value::Str(_) => 3,
                Value::List(_) => 4,
                Value::Object(_) => 5,
            }
        }
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (
                a @ (Value::Int(_) | Value::Float(_) | Value::Number(_)),
                b @ (Value::Int(_) | Value::Float(_) | Value::Number(_)),
            ) => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
            }
            (Value::List(a), Value::List(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let o = x.total_cmp(y);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
            (a, b) => rank(a).cmp(&rank(b)),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => f.write_str(&String::from_utf8_lossy(&other.to_json())),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::str(v)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            // Without serde_json's raw values, other serializers get the number it reads as.
            Value::Number(t) => s.serialize_f64(t.parse().unwrap_or(f64::NAN)),
            Value::Str(v) => s.serialize_str(v),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Value::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(&**k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Decodes straight into [`Value`] (no intermediate `serde_json::Value`).
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

thread_local! {
    /// Field names seen recently on this thread. Events of a topic repeat the same few keys,
    /// so sharing one `Arc<str>` per name saves an allocation per field per event. A short
    /// list scanned linearly beats hashing for the handful of names a topic uses.
    static KEYS: std::cell::RefCell<Vec<Arc<str>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Strings up to this many bytes are shared through [`shared_str`]; longer ones are seldom
/// repeated values (group keys, codes, names are short) and cost more to hash.
const MAX_SHARED_LEN: usize = 32;
/// Strings [`shared_str`] keeps per thread before it starts a new generation.
const SHARED_CAP: usize = 4096;

/// Recently decoded short string values of this thread (a source task's). Values repeat
/// across events (user ids, countries, currencies): handing out one shared `Arc<str>` per
/// distinct value saves an allocation per value in the source and, more, a free on the
/// pipeline task, which would otherwise free memory another thread allocated.
#[derive(Default)]
struct SharedStrs {
    set: std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// Lookups that found their string, in this generation.
    hits: usize,
    /// Strings still to build without a lookup: set after a generation in which fewer
    /// strings repeated than were new (mostly unique values, e.g. ids), where the lookups
    /// would cost without saving anything.
    bypass: usize,
}

thread_local! {
    static SHARED: std::cell::RefCell<SharedStrs> = std::cell::RefCell::new(SharedStrs::default());
}

/// `s` as an `Arc<str>`, shared with earlier equal strings of this thread when short.
fn shared_str(s: &str) -> Arc<str> {
    if s.len() > MAX_SHARED_LEN {
        return Arc::from(s);
    }
    SHARED.with(|shared| {
        let mut c = shared.borrow_mut();
        if c.bypass > 0 {
            c.bypass -= 1;
            return Arc::from(s);
        }
        if let Some(a) = c.set.get(s) {
            let a = Arc::clone(a);
            c.hits += 1;
            return a;
        }
        if c.set.len() >= SHARED_CAP {
            if c.hits < c.set.len() {
                c.bypass = 16 * SHARED_CAP;
            }
            c.set.clear();
            c.hits = 0;
        }
        let a: Arc<str> = Arc::from(s);
        c.set.insert(Arc::clone(&a));
        a
    })
}

/// Bounds the name cache: documents with ever-new keys (maps used as dictionaries) must not
/// make every lookup scan a long list.
const MAX_INTERNED: usize = 64;

/// Deserializes an object key straight into an interned name, without first building an
/// owned `String` (serde's `Cow<str>` would).
struct KeySeed;

impl<'de> de::DeserializeSeed<'de> for KeySeed {
    type Value = Arc<str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Arc<str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Arc<str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Arc<str>, E> {
        Ok(intern(v))
    }
}

fn intern(name: &str) -> Arc<str> {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some(k) = keys.iter().find(|k| k.len() == name.len() && ***k == *name) {
            return Arc::clone(k);
        }
        if keys.len() >= MAX_INTERNED {
            keys.clear();
        }
        let k: Arc<str> = Arc::from(name);
        keys.push(Arc::clone(&k));
        k
    })
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(Arc::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields: Vec<(Arc<str>, Value)> = Vec::with_capacity(8);
        while let Some(k) = map.next_key_seed(KeySeed)? {
            let v = map.next_value()?;
            fields.push((k, v));
        }
        Ok(Value::Object(fields))
    }
}

/// The common case of [`Value::from_json_fields`] without serde: a flat-enough object whose
/// keys and strings have no escapes and whose numbers are plain integers. `None` means "not
/// sure": anything else (nested values, floats, escapes, errors) goes to the serde decoder,
/// so this never accepts or builds anything that one would not.
fn pick_fast(b: &[u8], fields: &[Arc<str>]) -> Option<Value> {
    let mut p = skip_ws(b, 0);
    if b.get(p) != Some(&b'{') {
        return None;
    }
    p = skip_ws(b, p + 1);
    let mut out: Vec<(Arc<str>, Value)> = Vec::with_capacity(fields.len());
    if b.get(p) == Some(&b'}') {
        return (skip_ws(b, p + 1) == b.len()).then_some(Value::Object(out));
    }
    loop {
        if b.get(p) != Some(&b'"') {
            return None;
        }
        let (key, after) = plain_str(b, p + 1)?;
        p = skip_ws(b, after);
        if b.get(p) != Some(&b':') {
            return None;
        }
        p = skip_ws(b, p + 1);
        let wanted = fields.iter().find(|f| f.as_bytes() == key);
        let c = *b.get(p)?;
        let value = match c {
            b'"' => {
                let (s, after) = plain_str(b, p + 1)?;
                p = after;
                // UTF-8 was checked for the whole document.
                match wanted {
                    Some(_) => Some(Value::Str(shared_str(std::str::from_utf8(s).ok()?))),
                    None => None,
                }
            }
            b'-' | b'0'..=b'9' => {
                let (n, after) = plain_int(b, p)?;
                p = after;
                Some(Value::Int(n))
            }
            b't' if b[p..].starts_with(b"true") => {
                p += 4;
                Some(Value::Bool(true))
            }
            b'f' if b[p..].starts_with(b"false") => {
                p += 5;
                Some(Value::Bool(false))
            }
            b'n' if b[p..].starts_with(b"null") => {
                p += 4;
                Some(Value::Null)
            }
            _ => return None,
        };
        if let (Some(name), Some(v)) = (wanted, value) {
            out.push((Arc::clone(name), v));
        }
        p = skip_ws(b, p);
        match b.get(p)? {
            b',' => p = skip_ws(b, p + 1),
            b'}' => {
                return (skip_ws(b, p + 1) == b.len()).then_some(Value::Object(out));
            }
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while matches!(b.get(p), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        p += 1;
    }
    p
}

/// The bytes of a string starting after its opening quote, and the position after its
/// closing quote; `None` for escapes, control characters or no end.
fn plain_str(b: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(start..)?;
    let end = rest
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    (rest[end] == b'"').then_some((&rest[..end], start + end + 1))
}

/// An integer in JSON's grammar that surely fits an i64 (at most 18 digits), not followed by
/// a fraction or exponent, and not `-0` (which serde_json reads as a float).
fn plain_int(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let neg = b[start] == b'-';
    let digits_at = start + usize::from(neg);
    let digits = b.get(digits_at..)?;
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 18 || (digits[0] == b'0' && (n > 1 || neg)) {
        return None;
    }
    if matches!(digits.get(n), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let v = digits[..n]
        .iter()
        .fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0'));
    Some((if neg { -v } else { v }, digits_at + n))
}

/// Decodes a document keeping only some top-level fields (see [`Value::from_json_fields`]).
struct PickFields<'f>(&'f [Arc<str>]);

impl<'de> de::DeserializeSeed<'de> for PickFields<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PickFields<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        ValueVisitor.visit_i64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        ValueVisitor.visit_u64(v)
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(shared_str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        ValueVisitor.visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields: Vec<(Arc<str>, Value)> = Vec::with_capacity(self.0.len());
        while let Some(k) = map.next_key_seed(PickKey(self.0))? {
            match k {
                Some(k) => {
                    let v = map.next_value()?;
                    fields.push((k, v));
                }
                None => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(fields))
    }
}

/// An object key: the wanted name it equals (shared, no allocation), or `None`.
struct PickKey<'f>(&'f [Arc<str>]);

impl<'de> de::DeserializeSeed<'de> for PickKey<'_> {
    type Value = Option<Arc<str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for PickKey<'_> {
    type Value = Option<Arc<str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|f| ***f == *v).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_of<'a>(v: &'a Value, field: &str) -> &'a Arc<str> {
        match v.get(field) {
            Some(Value::Str(s)) => s,
            other => panic!("{field}: {other:?}"),
        }
    }

    #[test]
    fn decoded_short_strings_are_shared_and_mostly_unique_ones_stop_being_looked_up() {
        // A fresh thread: the shared strings are per thread.
        std::thread::spawn(|| {
            let fields: Vec<Arc<str>> = vec![Arc::from("u"), Arc::from("long")];
            let long = "x".repeat(MAX_SHARED_LEN + 1);
            let doc = format!(r#"{{"u":"user-1","n":1,"long":"{long}"}}"#);
            let a = Value::from_json_fields(doc.as_bytes(), &fields).expect("json");
            let b = Value::from_json_fields(doc.as_bytes(), &fields).expect("json");
            assert_eq!(&**str_of(&a, "u"), "user-1");
            assert!(
                Arc::ptr_eq(str_of(&a, "u"), str_of(&b, "u")),
                "one allocation"
            );
            assert_eq!(&**str_of(&a, "long"), long);
            assert!(!Arc::ptr_eq(str_of(&a, "long"), str_of(&b, "long")));
            // Values that never repeat: after a full generation, no more lookups.
            for i in 0..=SHARED_CAP {
                let doc = format!(r#"{{"u":"id-{i}"}}"#);
                let v = Value::from_json_fields(doc.as_bytes(), &fields).expect("json");
                assert_eq!(**str_of(&v, "u"), *format!("id-{i}"));
            }
            assert!(SHARED.with(|s| s.borrow().bypass) > 0);
        })
        .join()
        .expect("test thread");
    }

    #[test]
    fn paths_follow_dots_through_objects() {
        let v = Value::from_json(br#"{"a":{"b":{"c":1},"":2},"d":3,"":{"e":4}}"#).expect("json");
        assert_eq!(v.path("a.b.c"), Some(&Value::Int(1)));
        assert_eq!(v.path("d"), Some(&Value::Int(3)));
        assert_eq!(v.path("a."), Some(&Value::Int(2)));
        assert_eq!(v.path(".e"), Some(&Value::Int(4)));
        assert_eq!(v.path("a.b.c.d"), None);
        assert_eq!(v.path("a.x"), None);
        assert_eq!(v.path("d.b"), None);
    }

    #[test]
    fn json_round_trip_keeps_field_order_and_number_kinds() {
        let v = Value::from_json(br#"{"b":1,"a":2.5,"s":"x","n":null,"l":[true,{"z":-3}]}"#)
            .expect("json");
        assert_eq!(v.get("b"), Some(&Value::Int(1)));
        assert_eq!(v.get("a"), Some(&Value::Float(2.5)));
        assert_eq!(
            v.path("l"),
            Some(&Value::List(vec![
                Value::Bool(true),
                Value::object([("z", Value::Int(-3))])
            ]))
        );
        assert_eq!(
            String::from_utf8(v.to_json()).expect("utf8"),
            r#"{"b":1,"a":2.5,"s":"x","n":null,"l":[true,{"z":-3}]}"#
        );
    }

    #[test]
    fn escaped_keys_and_nested_paths() {
        let v = Value::from_json(br#"{"a\"b":{"c":{"d":7}}}"#).expect("json");
        assert!(v.get("a\"b").is_some());
        let v = Value::from_json(br#"{"x":{"c":{"d":7}}}"#).expect("json");
        assert_eq!(v.path("x.c.d").and_then(Value::as_i64), Some(7));
        assert_eq!(v.path("x.q"), None);
    }

    #[test]
    fn typical_events_take_the_fast_path() {
        let doc = br#"{"user":"user-0001","item":"item-00001","amount":7919,"ts":1700000000001,"country":"fr"}"#;
        let fields: Vec<Arc<str>> = vec![Arc::from("ts"), Arc::from("user")];
        let v = pick_fast(doc, &fields).expect("fast path");
        assert_eq!(
            v,
            Value::object([
                ("user", Value::str("user-0001")),
                ("ts", Value::Int(1_700_000_000_001))
            ])
        );
        assert_eq!(
            pick_fast(br#"{"a":1.5}"#, &fields),
            None,
            "floats go to serde"
        );
    }

    #[test]
    fn numbers_compare_across_kinds() {
        use std::cmp::Ordering::*;
        assert_eq!(Value::Int(2).total_cmp(&Value::Float(2.5)), Less);
        assert_eq!(Value::Float(3.0).total_cmp(&Value::Int(3)), Equal);
        assert_eq!(Value::Null.total_cmp(&Value::Int(0)), Less);
        assert_eq!(Value::str("b").total_cmp(&Value::str("a")), Greater);
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(Value::from_json(b"{\"a\":").is_err());
        assert!(Value::from_json(b"nope").is_err());
    }
    fn json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let names = prop::sample::select(vec!["a", "b", "ts", "user", "x\"y", "é", ""]);
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e12f64..1e12).prop_map(serde_json::Value::from),
            "[a-z\"\\\\\n\u{e9}\u{1F600}]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                prop::collection::vec((names.clone(), inner), 0..6).prop_map(|kv| {
                    serde_json::Value::Object(
                        kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    )
                }),
            ]
        })
    }

    /// Full decode, then keep only the named top-level fields.
    fn project_full(v: Value, fields: &[Arc<str>]) -> Value {
        match v {
            Value::Object(fs) => Value::Object(
                fs.into_iter()
                    .filter(|(k, _)| fields.iter().any(|f| f == k))
                    .collect(),
            ),
            other => other,
        }
    }

    proptest::proptest! {
        #[test]
        fn picking_fields_equals_decoding_all_then_projecting(
            doc in json(),
            picked in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "ts", "user", "x\"y", "é", "", "zz"]),
                0..4,
            ),
            spaced in proptest::bool::ANY,
        ) {
            let fields: Vec<Arc<str>> = picked.iter().map(|f| Arc::from(*f)).collect();
            let bytes = if spaced {
                serde_json::to_vec_pretty(&doc).expect("encode")
            } else {
                serde_json::to_vec(&doc).expect("encode")
            };
            let full = Value::from_json(&bytes).expect("valid");
            let picked = Value::from_json_fields(&bytes, &fields).expect("valid");
            proptest::prop_assert_eq!(picked, project_full(full, &fields));
        }

        #[test]
        fn picking_fields_refuses_what_a_full_decode_refuses(
            doc in json(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
            cut in proptest::prelude::any::<bool>(),
        ) {
            let mut bytes = serde_json::to_vec(&doc).expect("encode");
            let i = at.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else {
                bytes[i] = byte;
            }
            let fields: Vec<Arc<str>> = vec![Arc::from("a"), Arc::from("ts")];
            match (Value::from_json(&bytes), Value::from_json_fields(&bytes, &fields)) {
                (Ok(full), Ok(picked)) => {
                    proptest::prop_assert_eq!(picked, project_full(full, &fields))
                }
                (Err(_), Err(_)) => {}
                (full, picked) => proptest::prop_assert!(
                    false,
                    "full {:?} but picked {:?} for {:?}",
                    full,
                    picked,
                    String::from_utf8_lossy(&bytes)
                ),
            }
        }
    }
    /// Flat objects of scalars, the decoder's fast path, with numbers and spacing written
    /// in every way JSON allows (and some it does not).
    fn flat_doc() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec!["a", "b", "ts", "user", "é", "", "a\\u0062"]);
        let scalar = prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            Just("-0".to_string()),
            Just("01".to_string()),
            Just("1.5e3".to_string()),
            Just("12345678901234567890".to_string()),
            Just("-9223372036854775808".to_string()),
            Just("true".to_string()),
            Just("nul".to_string()),
            Just("null".to_string()),
            "\"[a-z\u{e9} \\\\\t]{0,6}\"",
            Just("[1,{\"a\":2}]".to_string()),
        ];
        let ws = prop::sample::select(vec!["", " ", "\n\t ", "\r"]);
        prop::collection::vec((name, ws.clone(), scalar, ws), 0..6).prop_map(|kv| {
            let body: Vec<String> = kv
                .into_iter()
                .map(|(k, w1, v, w2)| format!("{w1}\"{k}\"{w2}:{w1}{v}{w2}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_serde(doc in flat_doc()) {
            let fields: Vec<Arc<str>> = ["a", "ts", "é", "ab"].iter().map(|f| Arc::from(*f)).collect();
            let full = Value::from_json(doc.as_bytes());
            let picked = Value::from_json_fields(doc.as_bytes(), &fields);
            match (full, picked) {
                (Ok(full), Ok(picked)) => {
                    proptest::prop_assert_eq!(picked, project_full(full, &fields))
                }
                (Err(_), Err(_)) => {}
                (full, picked) => proptest::prop_assert!(false, "{doc}: {full:?} vs {picked:?}"),
            }
        }
    }
}

//! What flows between operators.

use std::sync::Arc;

use bytes::Bytes;

use crate::value::Value;

/// One record inside a pipeline: the raw key (written back as is by sinks unless an operator
/// re-keys it), the decoded value, the event time and the headers.
///
/// An event read from a topic also keeps its value's original bytes while no operator has
/// changed the value; sinks write those bytes instead of encoding the value again. The
/// runtime drops them after every operator that does not declare
/// [`Operator::preserves_values`](crate::Operator::preserves_values), so an operator that
/// edits `value` never has stale bytes written in its place. Equality ignores them.
#[derive(Debug, Clone)]
pub struct Event {
    /// Kafka record key as produced, or as set by a key-by.
    pub key: Option<Bytes>,
    /// Decoded value; `Null` for a tombstone.
    pub value: Value,
    /// Event time in ms since the epoch (from a value field or the record timestamp).
    pub timestamp: i64,
    /// Kafka record headers, passed through.
    pub headers: Vec<(Arc<str>, Option<Bytes>)>,
    /// Index of the pipeline input (source topic) the event came from; joins use it to tell
    /// their sides apart. Operators' own output keeps the input of what produced it.
    pub input: usize,
    /// Source partition and offset of the record this event was read from; `-1` for events
    /// an operator made (window results, join results).
    pub partition: i32,
    pub offset: i64,
    /// The value as read (JSON bytes) while `value` still stands for them. When the source
    /// decoded only the fields the plan reads, `value` holds just those and these bytes are
    /// the whole original value.
    pub(crate) raw: Option<Bytes>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.key == other.key
            && self.value == other.value
            && self.timestamp == other.timestamp
            && self.headers == other.headers
            && self.input == other.input
    }
}

impl Event {
    /// An event with no key and no headers.
    pub fn new(value: Value, timestamp: i64) -> Event {
        Event {
            key: None,
            value,
            timestamp,
            headers: Vec::new(),
            input: 0,
            partition: -1,
            offset: -1,
            raw: None,
        }
    }

    /// The value's original bytes, if the event still carries them (read from a topic and
    /// unchanged since).
    pub fn raw_value(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// The same event as coming from input `input`.
    pub fn from_input(mut self, input: usize) -> Event {
        self.input = input;
        self
    }
}

/// Where an operator's output goes: the next operator, or a named side output (late records,
/// dead letters) that the pipeline routes to its own sink topic.
#[derive(Debug, Default)]
pub struct Collector {
    pub(crate) main: Vec<Event>,
    pub(crate) side: Vec<(Arc<str>, Event)>,
}

impl Collector {
    /// Emits downstream.
    pub fn emit(&mut self, e: Event) {
        self.main.push(e);
    }

    /// Emits to the side output `name`.
    pub fn emit_side(&mut self, name: &Arc<str>, e: Event) {
        self.side.push((Arc::clone(name), e));
    }

    /// Side-output events emitted so far.
    pub fn side_len(&self) -> usize {
        self.side.len()
    }

    /// Drops the original value bytes of everything emitted (the operator may have changed
    /// the values).
    pub(crate) fn forget_raw(&mut self) {
        let side = self.side.iter_mut().map(|(_, e)| e);
        for e in self.main.iter_mut().chain(side) {
            e.raw = None;
        }
    }

    /// Events emitted downstream so far (for tests of single operators).
    pub fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.main)
    }
}

/// Encodes a grouping value as a Kafka key: strings as their UTF-8 bytes (what a Java
/// `StringSerializer` would produce), everything else as compact JSON.
pub fn key_bytes(v: &Value) -> Option<Bytes> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        other => Some(Bytes::from(other.to_json())),
    }
}

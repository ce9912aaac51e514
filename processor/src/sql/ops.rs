//! The operator SQL plans are made of besides the engine's window aggregate: a stage that
//! reads a row (from a table's JSON, or from the fields an aggregate emitted), filters it,
//! optionally assigns windows (window TVFs without aggregation), and writes the next
//! object: an internal one between operators, or the sink's JSON row with its record key.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::ProcessorError;
use crate::event::{Collector, Event};
use crate::operator::Operator;
use crate::value::Value;
use crate::window::WindowKind;

use super::changelog::{self, RowKind};
use super::eval::{eval, is_true};
use super::expr::Expr;
use super::format::{decode_field, encode_field};
use super::types::SqlType;

/// Turns a table's JSON value into a row.
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    /// (row position, JSON field name, type) of the physical columns.
    pub(crate) fields: Vec<(usize, Arc<str>, SqlType)>,
    /// Row width (all columns, computed ones included).
    pub(crate) width: usize,
    /// Computed columns, in declaration order.
    pub(crate) computed: Vec<(usize, Expr)>,
    /// 'json.ignore-parse-errors': a bad field becomes NULL instead of skipping the record.
    pub(crate) lenient: bool,
    /// 'json.fail-on-missing-field': a record without one of the fields does not fit.
    pub(crate) require_all: bool,
}

impl Decoder {
    pub(crate) fn decode(&self, v: &Value) -> Option<Vec<Value>> {
        if !matches!(v, Value::Object(_)) {
            return None;
        }
        let mut row = vec![Value::Null; self.width];
        for (i, name, ty) in &self.fields {
            let raw = match v.get(name) {
                Some(x) => x,
                None if self.require_all && !self.lenient => return None,
                None => &Value::Null,
            };
            row[*i] = match decode_field(raw, ty) {
                Ok(x) => x,
                Err(_) if self.lenient => Value::Null,
                Err(_) => return None,
            };
        }
        for (i, e) in &self.computed {
            row[*i] = eval(e, &row);
        }
        Some(row)
    }
}

/// Where a stage's row comes from.
#[derive(Debug, Clone)]
pub(crate) enum StageInput {
    Table(Decoder),
    /// Named fields of the incoming object, in this order.
    Fields(Vec<Arc<str>>),
    /// The incoming value is the row (`Value::List`), as a join emits it.
    Row,
}

/// One output field.
#[derive(Debug, Clone)]
pub(crate) struct OutCol {
    pub(crate) name: Arc<str>,
    pub(crate) expr: Expr,
    /// Encode as this sink type (Flink's JSON); None: keep the row representation.
    pub(crate) encode: Option<SqlType>,
    /// Written into the record value (false for key-only fields with EXCEPT_KEY).
    pub(crate) in_value: bool,
}

/// Settings of a [`Stage`].
#[derive(Debug, Clone)]
pub(crate) struct StageSpec {
    pub(crate) name: &'static str,
    pub(crate) input: StageInput,
    pub(crate) filter: Option<Expr>,
    /// Window TVF without aggregation: one output per window, the row extended by
    /// window_start, window_end, window_time.
    pub(crate) windows: Option<WindowKind>,
    pub(crate) outputs: Vec<OutCol>,
    /// Output fields forming the record key (a JSON object), empty: no key.
    pub(crate) key: Vec<usize>,
    /// 'json.encode.ignore-null-fields'.
    pub(crate) skip_nulls: bool,
    /// 'json.timestamp-format.standard' = 'ISO-8601' on output.
    pub(crate) iso_timestamps: bool,
    /// 'json.encode.decimal-as-plain-number' = 'true'.
    pub(crate) plain_decimals: bool,
    /// Side output for records that cannot be decoded.
    pub(crate) dead_letter: Option<Arc<str>>,
    /// An updating (unwindowed GROUP BY) result: `Some((k, n))` with `k` group keys at the
    /// row's start and `n` aggregate results (compared for changes) after `window_start,
    /// window_end`; `n = 0` for GROUP BY without aggregates (SELECT DISTINCT).
    pub(crate) upsert: Option<(usize, usize)>,
    /// Emit the outputs as a row (`Value::List`) for an outer query instead of an object.
    pub(crate) as_row: bool,
    /// The input rows are a changelog (each carries its [`RowKind`]).
    pub(crate) changelog_in: bool,
    /// The output rows (`as_row`) are a changelog: the input's kinds pass through a filter
    /// and projection; an updating result (`upsert`) emits its changes as Flink's group
    /// aggregate does for an operator that needs them (insert, update-before/update-after
    /// pairs, delete).
    pub(crate) changelog_out: bool,
}

/// A SQL step; stateless except for an updating result, where it remembers per group what
/// it last emitted: like Flink's group aggregate it emits nothing when a group's aggregates
/// did not change, and a tombstone (delete) when HAVING drops a group it had emitted or the
/// group is deleted upstream.
pub(crate) struct Stage {
    spec: StageSpec,
    /// Group (JSON) → (aggregates last seen (JSON), emitted and not deleted).
    last: BTreeMap<String, (String, bool)>,
    /// With `changelog_out`: group (JSON) → the row last emitted for it, to retract it.
    shown: BTreeMap<String, Vec<Value>>,
    scratch: Vec<(i64, i64)>,
    /// Records skipped because they did not decode (logged; for status once the engine
    /// counts operator rejects).
    bad: u64,
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.spec.name)
            .field("bad", &self.bad)
            .finish()
    }
}

impl Stage {
    pub(crate) fn new(spec: StageSpec) -> Stage {
        Stage {
            spec,
            last: BTreeMap::new(),
            shown: BTreeMap::new(),
            scratch: Vec::new(),
            bad: 0,
        }
    }

    fn build(&self, row: &[Value], event: &Event) -> Event {
        if self.spec.as_row {
            let values = self
                .spec
                .outputs
                .iter()
                .map(|o| eval(&o.expr, row))
                .collect();
            return Event {
                key: None,
                value: Value::List(values),
                timestamp: event.timestamp,
                headers: Vec::new(),
                input: event.input,
                partition: event.partition,
                offset: event.offset,
                raw: None,
            };
        }
        let mut fields = Vec::with_capacity(self.spec.outputs.len());
        let mut key_fields = Vec::new();
        for (i, o) in self.spec.outputs.iter().enumerate() {
            let v = eval(&o.expr, row);
            let v = match &o.encode {
                Some(ty) => {
                    let mut x = encode_field(&v, ty, self.spec.plain_decimals);
                    if self.spec.iso_timestamps && matches!(ty, SqlType::Timestamp(_)) {
                        if let Value::Str(s) = &x {
                            x = Value::str(&s.replacen(' ', "T", 1));
                        }
                    }
                    x
                }
                None => v,
            };
            if self.spec.key.contains(&i) {
                key_fields.push((Arc::clone(&o.name), v.clone()));
            }
            if o.in_value && !(self.spec.skip_nulls && v.is_null()) {
                fields.push((Arc::clone(&o.name), v));
            }
        }
        let key = if self.spec.key.is_empty() {
            None
        } else {
            Some(Bytes::from(Value::Object(key_fields).to_json()))
        };
        Event {
            key,
            value: Value::Object(fields),
            timestamp: event.timestamp,
            headers: Vec::new(),
            input: event.input,
            partition: event.partition,
            offset: event.offset,
            // A new value: nothing of the input's bytes to pass through.
            raw: None,
        }
    }
}

impl Stage {
    /// An updating result's row for its group: emits what changed (see [`Stage`]).
    fn upsert(
        &mut self,
        (k, n): (usize, usize),
        row: &[Value],
        kind: RowKind,
        event: &Event,
        out: &mut Collector,
    ) {
        let json = |vs: &[Value]| {
            String::from_utf8_lossy(&Value::List(vs.to_vec()).to_json()).into_owned()
        };
        let group = json(&row[..k.min(row.len())]);
        if kind.is_retraction() {
            // The group is gone upstream (its last row was taken back).
            if self.last.remove(&group).is_some_and(|(_, e)| e) {
                self.retract(&group, row, event, out);
            }
            return;
        }
        let aggs = json(row.get(k + 2..k + 2 + n).unwrap_or(&[]));
        let prev = self.last.get(&group);
        if prev.is_some_and(|(a, _)| *a == aggs) {
            return; // unchanged: Flink emits nothing
        }
        let was_emitted = prev.is_some_and(|(_, e)| *e);
        let passes = self.spec.filter.as_ref().is_none_or(|f| is_true(f, row));
        if passes {
            let mut e = self.build(row, event);
            if self.spec.changelog_out {
                let Value::List(new) = std::mem::replace(&mut e.value, Value::Null) else {
                    return;
                };
                let kind = match self.shown.insert(group.clone(), new.clone()) {
                    Some(old) => {
                        let mut before = e.clone();
                        before.value = changelog::encode(old, RowKind::UpdateBefore);
                        out.emit(before);
                        RowKind::UpdateAfter
                    }
                    None => RowKind::Insert,
                };
                e.value = changelog::encode(new, kind);
            }
            out.emit(e);
        } else if was_emitted {
            self.retract(&group, row, event, out);
        }
        self.last.insert(group, (aggs, passes));
    }

    /// Deletes what was emitted for `group`: a tombstone for the sink, a delete of the row
    /// last shown for an outer query.
    fn retract(&mut self, group: &str, row: &[Value], event: &Event, out: &mut Collector) {
        let mut e = self.build(row, event);
        if self.spec.changelog_out {
            match self.shown.remove(group) {
                Some(old) => e.value = changelog::encode(old, RowKind::Delete),
                None => return,
            }
        } else {
            e.value = Value::Null; // a tombstone deletes the key from the upsert topic
        }
        out.emit(e);
    }
}

impl Operator for Stage {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn bad_records(&self) -> u64 {
        self.bad
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        let row = match &self.spec.input {
            StageInput::Table(d) => match d.decode(&event.value) {
                Some(r) => r,
                None => {
                    self.bad += 1;
                    tracing::warn!(
                        operator = self.spec.name,
                        input = event.input,
                        partition = event.partition,
                        offset = event.offset,
                        dead_letter = self.spec.dead_letter.as_deref(),
                        "skipping a record whose JSON does not match the table's columns"
                    );
                    if let Some(dl) = &self.spec.dead_letter {
                        out.emit_side(dl, event);
                    }
                    return;
                }
            },
            StageInput::Row => match event.value {
                Value::List(ref r) => r.clone(),
                _ => return,
            },
            StageInput::Fields(names) => names
                .iter()
                .map(|n| event.value.get(n).cloned().unwrap_or(Value::Null))
                .collect(),
        };
        let mut row = row;
        let kind = if self.spec.changelog_in {
            changelog::split(&mut row)
        } else {
            RowKind::Insert
        };
        if let Some(k) = self.spec.upsert {
            return self.upsert(k, &row, kind, &event, out);
        }
        if let Some(f) = &self.spec.filter {
            if !is_true(f, &row) {
                return;
            }
        }
        match self.spec.windows {
            None => {
                let mut e = self.build(&row, &event);
                if self.spec.changelog_out {
                    if let Value::List(r) = e.value {
                        e.value = changelog::encode(r, kind);
                    }
                }
                out.emit(e);
            }
            Some(kind) => {
                let mut ws = std::mem::take(&mut self.scratch);
                kind.assign_pub(event.timestamp, &mut ws);
                let mut r = row;
                let n = r.len();
                for &(s, e) in &ws {
                    r.truncate(n);
                    r.extend([Value::Int(s), Value::Int(e), Value::Int(e - 1)]);
                    let mut ev = self.build(&r, &event);
                    ev.timestamp = e - 1;
                    out.emit(ev);
                }
                self.scratch = ws;
            }
        }
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        if self.spec.upsert.is_none() {
            return Ok(None);
        }
        let state = if self.spec.changelog_out {
            serde_json::to_vec(&(&self.last, &self.shown))
        } else {
            serde_json::to_vec(&self.last) // the layout of checkpoints before changelogs
        };
        state.map(Some).map_err(|e| ProcessorError::State {
            operator: self.spec.name.into(),
            reason: e.to_string(),
        })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        let bad = |e: serde_json::Error| ProcessorError::State {
            operator: self.spec.name.into(),
            reason: e.to_string(),
        };
        if self.spec.changelog_out {
            (self.last, self.shown) = serde_json::from_slice(state).map_err(bad)?;
        } else {
            self.last = serde_json::from_slice(state).map_err(bad)?;
        }
        Ok(())
    }
}

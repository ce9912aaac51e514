//! Joins.
//!
//! - [`WindowJoin`]: stream-stream join within event-time windows (Flink's window join):
//!   events of the two inputs with equal keys in the same tumbling or hopping window are paired
//!   when the window fires; a left outer join also emits left events that found no partner.
//! - [`TableJoin`]: stream-table join: one input is a table (the latest value per key, as in a
//!   compacted topic; a null value deletes the key), the other a stream whose events are
//!   enriched with the table version valid at their event time (Flink's event-time temporal
//!   join), emitted when the watermark passes them. Inner joins drop events without a match.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::ProcessorError;
use crate::event::{key_bytes, Collector, Event};
use crate::operator::Operator;
use crate::value::Value;
use crate::window::WindowKind;

/// Inner or left outer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinType {
    Inner,
    LeftOuter,
}

fn key_of(v: &Value, fields: &[String]) -> Value {
    let vals: Vec<Value> = fields
        .iter()
        .map(|f| v.path(f).cloned().unwrap_or_default())
        .collect();
    match <[Value; 1]>::try_from(vals) {
        Ok([one]) => one,
        Err(many) => Value::List(many),
    }
}

/// Settings of a window join.
#[derive(Debug, Clone)]
pub struct WindowJoinSpec {
    /// Tumbling or hopping.
    pub window: WindowKind,
    /// Pipeline input index of each side.
    pub left_input: usize,
    pub right_input: usize,
    /// Key fields on each side (same count; compared by value).
    pub left_key: Vec<String>,
    pub right_key: Vec<String>,
    pub join_type: JoinType,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Sides {
    key: Value,
    left: Vec<Value>,
    right: Vec<Value>,
}

/// Both sides' values per join key (JSON) of one window.
type KeyedSides = BTreeMap<String, Sides>;

/// Borrowing form of [`JoinState`] for snapshots.
#[derive(Serialize)]
struct JoinStateRef<'a> {
    windows: Vec<(&'a (i64, i64), &'a KeyedSides)>,
    watermark: Option<i64>,
    late: u64,
}

#[derive(Debug, Default, Deserialize)]
struct JoinState {
    /// (end, start) → join key (JSON) → both sides' values.
    windows: Vec<((i64, i64), BTreeMap<String, Sides>)>,
    watermark: Option<i64>,
    late: u64,
}

/// Stream-stream window join. Output: `{"window_start", "window_end", "left": {...},
/// "right": {...}}` (right is null for unmatched left events of an outer join), keyed by the
/// join key, timestamped at the window's last millisecond.
#[derive(Debug)]
pub struct WindowJoin {
    spec: WindowJoinSpec,
    windows: BTreeMap<(i64, i64), BTreeMap<String, Sides>>,
    watermark: Option<i64>,
    late: u64,
    scratch: Vec<(i64, i64)>,
}

impl WindowJoin {
    /// Checks the spec and builds the operator.
    pub fn new(spec: WindowJoinSpec) -> Result<WindowJoin, ProcessorError> {
        spec.window.validate()?;
        if !matches!(
            spec.window,
            WindowKind::Tumbling { .. } | WindowKind::Hopping { .. }
        ) {
            return Err(ProcessorError::InvalidPlan(
                "a window join needs a tumbling or hopping window".into(),
            ));
        }
        if spec.left_key.is_empty() || spec.left_key.len() != spec.right_key.len() {
            return Err(ProcessorError::InvalidPlan(
                "a join needs the same, non-zero number of key fields on both sides".into(),
            ));
        }
        if spec.left_input == spec.right_input {
            return Err(ProcessorError::InvalidPlan(
                "a join's two sides must be different inputs".into(),
            ));
        }
        Ok(WindowJoin {
            spec,
            windows: BTreeMap::new(),
            watermark: None,
            late: 0,
            scratch: Vec::new(),
        })
    }
}

impl Operator for WindowJoin {
    fn name(&self) -> &str {
        "window_join"
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        let left = if event.input == self.spec.left_input {
            true
        } else if event.input == self.spec.right_input {
            false
        } else {
            return out.emit(event); // not part of this join
        };
        let fields = if left {
            &self.spec.left_key
        } else {
            &self.spec.right_key
        };
        let key = key_of(&event.value, fields);
        if key.is_null() {
            return; // SQL: null keys never match
        }
        let kjson = String::from_utf8(key.to_json()).unwrap_or_default();
        let mut ws = std::mem::take(&mut self.scratch);
        self.spec.window.assign_pub(event.timestamp, &mut ws);
        let mut used = false;
        for &(s, e) in &ws {
            if self.watermark.is_some_and(|wm| e - 1 <= wm) {
                continue;
            }
            used = true;
            let sides = self
                .windows
                .entry((e, s))
                .or_default()
                .entry(kjson.clone())
                .or_insert_with(|| Sides {
                    key: key.clone(),
                    ..Sides::default()
                });
            if left {
                sides.left.push(event.value.clone());
            } else {
                sides.right.push(event.value.clone());
            }
        }
        self.scratch = ws;
        if !used {
            self.late += 1;
        }
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) {
        if self.watermark.is_some_and(|w| w >= watermark) {
            return;
        }
        self.watermark = Some(watermark);
        while let Some(entry) = self.windows.first_entry() {
            let (e, s) = *entry.key();
            if e - 1 > watermark {
                break;
            }
            for (_, sides) in entry.remove() {
                let key = key_bytes(&sides.key);
                let emit = |l: &Value, r: Value, out: &mut Collector| {
                    let mut ev = Event::new(
                        Value::object([
                            ("window_start", Value::Int(s)),
                            ("window_end", Value::Int(e)),
                            ("left", l.clone()),
                            ("right", r),
                        ]),
                        e - 1,
                    );
                    ev.key = key.clone();
                    out.emit(ev);
                };
                for l in &sides.left {
                    if sides.right.is_empty() && self.spec.join_type == JoinType::LeftOuter {
                        emit(l, Value::Null, out);
                    }
                    for r in &sides.right {
                        emit(l, r.clone(), out);
                    }
                }
            }
        }
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        let state = JoinStateRef {
            windows: self.windows.iter().collect(),
            watermark: self.watermark,
            late: self.late,
        };
        serde_json::to_vec(&state)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: "window_join".into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        let s: JoinState = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "window_join".into(),
            reason: e.to_string(),
        })?;
        self.windows = s.windows.into_iter().collect();
        self.watermark = s.watermark;
        self.late = s.late;
        Ok(())
    }

    fn late_records(&self) -> u64 {
        self.late
    }
}

/// Settings of a stream-table join.
#[derive(Debug, Clone)]
pub struct TableJoinSpec {
    /// Input index of the stream side; events of other inputs (except the table) pass
    /// through unchanged.
    pub stream_input: usize,
    /// Input index of the table (a changelog: latest value per key wins; null deletes).
    pub table_input: usize,
    /// Table key fields; empty: the Kafka record key.
    pub table_key: Vec<String>,
    /// Stream key fields, compared with the table key as Kafka key bytes (strings as UTF-8,
    /// other values as JSON).
    pub stream_key: Vec<String>,
    /// Field of the output holding the table value.
    pub output_field: String,
    pub join_type: JoinType,
}

/// A stream event waiting for the watermark, in serializable form.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    key: Option<Vec<u8>>,
    value: Value,
    timestamp: i64,
    headers: Vec<(String, Option<Vec<u8>>)>,
    input: usize,
}

impl Pending {
    fn from_event(e: Event) -> Pending {
        Pending {
            key: e.key.map(|k| k.to_vec()),
            value: e.value,
            timestamp: e.timestamp,
            headers: e
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.map(|v| v.to_vec())))
                .collect(),
            input: e.input,
        }
    }

    fn into_event(self) -> Event {
        Event {
            key: self.key.map(Bytes::from),
            value: self.value,
            timestamp: self.timestamp,
            headers: self
                .headers
                .into_iter()
                .map(|(k, v)| (std::sync::Arc::from(k.as_str()), v.map(Bytes::from)))
                .collect(),
            input: self.input,
            partition: -1,
            offset: -1,
            raw: None,
        }
    }
}

/// Table versions of one key: `(valid from, value)`, `None` for a deletion.
type Versions = Vec<(i64, Option<Value>)>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct TableState {
    /// Key → versions `(valid from, value)` in time order; `None` is a deletion.
    versions: Vec<(Vec<u8>, Versions)>,
    /// Stream events by (event time, arrival) until the watermark passes them.
    pending: Vec<((i64, u64), Pending)>,
    seq: u64,
    watermark: Option<i64>,
}

/// Event-time stream-table join (Flink's `FOR SYSTEM_TIME AS OF` temporal join): each stream
/// event is joined with the table version valid at its event time, and emitted once the
/// watermark passes that time, so the result does not depend on which input happened to be
/// read first. Stream events get field `output_field` set to the table value.
#[derive(Debug)]
pub struct TableJoin {
    spec: TableJoinSpec,
    versions: BTreeMap<Vec<u8>, Versions>,
    pending: BTreeMap<(i64, u64), Event>,
    seq: u64,
    watermark: Option<i64>,
}

impl TableJoin {
    /// Checks the spec and builds the operator.
    pub fn new(spec: TableJoinSpec) -> Result<TableJoin, ProcessorError> {
        if spec.stream_key.is_empty() {
            return Err(ProcessorError::InvalidPlan(
                "a table join needs stream key fields".into(),
            ));
        }
        if spec.output_field.is_empty() {
            return Err(ProcessorError::InvalidPlan(
                "a table join needs an output field name".into(),
            ));
        }
        if spec.stream_input == spec.table_input {
            return Err(ProcessorError::InvalidPlan(
                "a join's two sides must be different inputs".into(),
            ));
        }
        Ok(TableJoin {
            spec,
            versions: BTreeMap::new(),
            pending: BTreeMap::new(),
            seq: 0,
            watermark: None,
        })
    }

    fn table_key(&self, e: &Event) -> Option<Bytes> {
        if self.spec.table_key.is_empty() {
            e.key.clone()
        } else {
            key_bytes(&key_of(&e.value, &self.spec.table_key))
        }
    }

    /// Joins one stream event with the version valid at its time.
    fn join(&self, mut event: Event, out: &mut Collector) {
        let key = key_bytes(&key_of(&event.value, &self.spec.stream_key));
        let found = key.and_then(|k| {
            let versions = self.versions.get(k.as_ref())?;
            let at = versions.partition_point(|(t, _)| *t <= event.timestamp);
            versions.get(at.checked_sub(1)?)?.1.clone()
        });
        match (found, self.spec.join_type) {
            (Some(v), _) => event.value.set(&self.spec.output_field, v),
            (None, JoinType::LeftOuter) => event.value.set(&self.spec.output_field, Value::Null),
            (None, JoinType::Inner) => return,
        }
        out.emit(event);
    }
}

impl Operator for TableJoin {
    fn name(&self) -> &str {
        "table_join"
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        if event.input == self.spec.table_input {
            if let Some(k) = self.table_key(&event) {
                let value = (!event.value.is_null()).then_some(event.value);
                let versions = self.versions.entry(k.to_vec()).or_default();
                let at = versions.partition_point(|(t, _)| *t <= event.timestamp);
                versions.insert(at, (event.timestamp, value));
            }
            return;
        }
        if event.input != self.spec.stream_input {
            return out.emit(event);
        }
        if self.watermark.is_some_and(|wm| event.timestamp <= wm) {
            // Behind the watermark: the table versions it needs are still kept (see
            // on_watermark), so join it now rather than dropping it.
            return self.join(event, out);
        }
        self.seq += 1;
        self.pending.insert((event.timestamp, self.seq), event);
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) {
        if self.watermark.is_some_and(|w| w >= watermark) {
            return;
        }
        self.watermark = Some(watermark);
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > watermark {
                break;
            }
            let e = entry.remove();
            self.join(e, out);
        }
        // Versions superseded before the watermark can no longer be looked up, except by
        // late stream events: keep the last one at or before the watermark.
        for versions in self.versions.values_mut() {
            let at = versions.partition_point(|(t, _)| *t <= watermark);
            if at > 1 {
                versions.drain(..at - 1);
            }
        }
        self.versions
            .retain(|_, v| !(v.len() == 1 && v[0].1.is_none() && v[0].0 <= watermark));
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        let state = TableState {
            versions: self
                .versions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pending: self
                .pending
                .iter()
                .map(|(k, e)| (*k, Pending::from_event(e.clone())))
                .collect(),
            seq: self.seq,
            watermark: self.watermark,
        };
        serde_json::to_vec(&state)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: "table_join".into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        let s: TableState = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "table_join".into(),
            reason: e.to_string(),
        })?;
        self.versions = s.versions.into_iter().collect();
        self.pending = s
            .pending
            .into_iter()
            .map(|(k, p)| (k, p.into_event()))
            .collect();
        self.seq = s.seq;
        self.watermark = s.watermark;
        Ok(())
    }
}

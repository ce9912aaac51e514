//! Event-time windows and the aggregate operator over them.
//!
//! Semantics follow Flink's: a window `[start, end)` holds events with
//! `start <= event time < end`; it fires once, when the watermark reaches `end - 1` (its last
//! millisecond); with `allowed_lateness = L` its state is kept until the watermark reaches
//! `end - 1 + L`, and every late event in that time updates the window and re-emits it. An
//! event whose every window is past that point is late: it is counted and dropped or sent to
//! a side output. Session windows start at an event and extend by `gap` after the last event;
//! windows that touch or overlap merge (Flink's `TimeWindow.intersects`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::aggregate::AggSpec;
use crate::error::ProcessorError;
use crate::event::{key_bytes, Collector, Event};
use crate::operator::Operator;
use crate::value::Value;

/// How events are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size` ms aligned to the epoch.
    Tumbling { size: i64 },
    /// Windows of `size` ms starting every `slide` ms (an event is in `size / slide` of them).
    Hopping { size: i64, slide: i64 },
    /// Per key, activity separated by more than `gap` ms of inactivity.
    Session { gap: i64 },
    /// Flink's CUMULATE: windows `[start, start + step)`, `[start, start + 2 * step)`, ... up
    /// to `[start, start + size)`, with `start` aligned to `size`; an event is in every one of
    /// them that ends after it.
    Cumulating { size: i64, step: i64 },
    /// No window: a running aggregate per key, re-emitted on every update (upsert stream).
    Global,
}

impl WindowKind {
    pub(crate) fn validate(&self) -> Result<(), ProcessorError> {
        let bad = |m: &str| Err(ProcessorError::InvalidPlan(m.to_string()));
        match *self {
            WindowKind::Tumbling { size } if size <= 0 => {
                bad("a tumbling window's size must be positive")
            }
            WindowKind::Hopping { size, slide } if size <= 0 || slide <= 0 => {
                bad("a hopping window's size and slide must be positive")
            }
            WindowKind::Hopping { size, slide } if size % slide != 0 => {
                bad("a hopping window's size must be a multiple of its slide")
            }
            WindowKind::Cumulating { size, step } if size <= 0 || step <= 0 => {
                bad("a cumulating window's size and step must be positive")
            }
            WindowKind::Cumulating { size, step } if size % step != 0 => {
                bad("a cumulating window's size must be a multiple of its step")
            }
            WindowKind::Session { gap } if gap <= 0 => {
                bad("a session window's gap must be positive")
            }
            _ => Ok(()),
        }
    }

    /// The fixed windows holding `ts` (not for sessions or Global), for other operators.
    pub(crate) fn assign_pub(&self, ts: i64, out: &mut Vec<(i64, i64)>) {
        self.assign(ts, out)
    }

    /// The fixed windows holding `ts` (not for sessions or Global).
    fn assign(&self, ts: i64, out: &mut Vec<(i64, i64)>) {
        out.clear();
        match *self {
            WindowKind::Tumbling { size } => {
                let start = ts - ts.rem_euclid(size);
                out.push((start, start + size));
            }
            WindowKind::Hopping { size, slide } => {
                let last = ts - ts.rem_euclid(slide);
                let mut start = last;
                while start > ts - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
            }
            WindowKind::Cumulating { size, step } => {
                let start = ts - ts.rem_euclid(size);
                let mut end = start + step;
                while end <= start + size {
                    if end > ts {
                        out.push((start, end));
                    }
                    end += step;
                }
            }
            WindowKind::Session { .. } | WindowKind::Global => {}
        }
    }
}

/// What happens to events that arrive after their windows are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatePolicy {
    /// Count and drop.
    Drop,
    /// Count and send to the named side output (routed to a topic by the pipeline).
    SideOutput(Arc<str>),
}

/// Settings of a windowed (or running) aggregation.
#[derive(Debug, Clone)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// Dotted paths of the grouping fields; output objects carry them under their last path
    /// segment. Empty: one global group.
    pub group_by: Vec<String>,
    pub aggregates: Vec<AggSpec>,
    /// How long (ms) after a window fired late events still update it.
    pub allowed_lateness: i64,
    pub late: LatePolicy,
}

/// One group's state in one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cell {
    group: Vec<Value>,
    accs: Vec<Value>,
}

/// One session of one group.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    start: i64,
    end: i64,
    fired: bool,
    accs: Vec<Value>,
}

/// One window's cells by group key. Hashed with foldhash: the lookup runs once per event, and
/// SipHash's flooding resistance buys nothing here (output order never depends on the hash:
/// cells are sorted by key when a window fires).
type Groups = HashMap<String, Cell, foldhash::fast::RandomState>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Fixed windows by (end, start): firing walks them in end order. Groups are hashed (the
    /// per-event lookup) and sorted by key when a window fires, so output order is
    /// deterministic (a replay after a crash emits the same sequence).
    #[serde(with = "pairs")]
    windows: BTreeMap<(i64, i64), (bool, Groups)>,
    /// Sessions per group key, sorted by start.
    sessions: BTreeMap<String, (Vec<Value>, Vec<Session>)>,
    /// Running aggregates (Global).
    running: BTreeMap<String, Cell>,
    watermark: Option<i64>,
    late: u64,
}

/// Aggregates events per group over event-time windows.
#[derive(Debug)]
pub struct WindowAggregate {
    spec: WindowSpec,
    /// Output field names of the grouping fields.
    group_names: Vec<Arc<str>>,
    state: State,
    scratch: Vec<(i64, i64)>,
    /// Reused buffer for the current event's group key.
    key_buf: String,
    /// `window_start` and `window_end`, shared by every result.
    bound_names: [Arc<str>; 2],
    /// Groups in the last window that fired: a new window's map starts at that size instead
    /// of growing (and rehashing) through every power of two.
    groups_hint: usize,
}

impl WindowAggregate {
    /// Checks the spec (sizes, names) and builds the operator.
    pub fn new(spec: WindowSpec) -> Result<WindowAggregate, ProcessorError> {
        spec.kind.validate()?;
        if spec.aggregates.is_empty() {
            return Err(ProcessorError::InvalidPlan(
                "an aggregation needs at least one aggregate function".into(),
            ));
        }
        if spec.allowed_lateness < 0 {
            return Err(ProcessorError::InvalidPlan(
                "allowed lateness must not be negative".into(),
            ));
        }
        let group_names = spec
            .group_by
            .iter()
            .map(|p| Arc::from(p.rsplit('.').next().unwrap_or(p)))
            .collect();
        Ok(WindowAggregate {
            spec,
            group_names,
            state: State::default(),
            scratch: Vec::new(),
            key_buf: String::new(),
            bound_names: [Arc::from("window_start"), Arc::from("window_end")],
            groups_hint: 0,
        })
    }

    fn group_of(&self, v: &Value) -> (String, Vec<Value>) {
        let mut key = String::new();
        write_group_key(&self.spec.group_by, v, &mut key);
        (key, group_values(&self.spec.group_by, v))
    }

    fn init_accs(&self) -> Vec<Value> {
        self.spec.aggregates.iter().map(|a| a.func.init()).collect()
    }

    fn add(specs: &[AggSpec], accs: &mut [Value], v: &Value) {
        for (a, acc) in specs.iter().zip(accs.iter_mut()) {
            a.func.add(acc, a.input_of(v));
        }
    }

    /// Is a window ending at `end` past its lateness horizon at the current watermark?
    fn expired(&self, end: i64) -> bool {
        self.state
            .watermark
            .is_some_and(|wm| end - 1 + self.spec.allowed_lateness <= wm)
    }

    fn fired(&self, end: i64) -> bool {
        self.state.watermark.is_some_and(|wm| end - 1 <= wm)
    }

    fn output(&self, group: &[Value], window: Option<(i64, i64)>, accs: &[Value]) -> Event {
        let mut fields: Vec<(Arc<str>, Value)> =
            Vec::with_capacity(self.group_names.len() + 2 + accs.len());
        fields.extend(self.group_names.iter().cloned().zip(group.iter().cloned()));
        if let Some((s, e)) = window {
            let [start, end] = &self.bound_names;
            fields.push((Arc::clone(start), Value::Int(s)));
            fields.push((Arc::clone(end), Value::Int(e)));
        }
        for (a, acc) in self.spec.aggregates.iter().zip(accs) {
            fields.push((Arc::clone(&a.output), a.func.finish(acc)));
        }
        let key = match group {
            [] => None,
            [one] => key_bytes(one),
            many => key_bytes(&Value::List(many.to_vec())),
        };
        let ts = window.map_or(self.state.watermark.unwrap_or(0), |(_, e)| e - 1);
        Event {
            key,
            value: Value::Object(fields),
            timestamp: ts,
            headers: Vec::new(),
            input: 0,
            partition: -1,
            offset: -1,
            raw: None,
        }
    }

    fn late(&mut self, event: Event, out: &mut Collector) {
        self.state.late += 1;
        if let LatePolicy::SideOutput(name) = &self.spec.late {
            out.emit_side(name, event);
        }
    }

    fn process_fixed(&mut self, event: Event, out: &mut Collector) {
        let mut windows = std::mem::take(&mut self.scratch);
        self.spec.kind.assign(event.timestamp, &mut windows);
        // The group key is written into a reused buffer: the hot path (an existing group)
        // allocates nothing; a new group allocates its key and values once.
        let mut key = std::mem::take(&mut self.key_buf);
        write_group_key(&self.spec.group_by, &event.value, &mut key);
        let mut used = false;
        for &(s, e) in &windows {
            if self.expired(e) {
                continue;
            }
            used = true;
            let fired = self.fired(e);
            let hint = self.groups_hint;
            let (_, cells) = self.state.windows.entry((e, s)).or_insert_with(|| {
                (
                    false,
                    Groups::with_capacity_and_hasher(hint, Default::default()),
                )
            });
            let cell = match cells.get_mut(key.as_str()) {
                Some(c) => c,
                None => {
                    let cell = Cell {
                        group: group_values(&self.spec.group_by, &event.value),
                        accs: self.spec.aggregates.iter().map(|a| a.func.init()).collect(),
                    };
                    cells.entry(key.clone()).or_insert(cell)
                }
            };
            Self::add(&self.spec.aggregates, &mut cell.accs, &event.value);
            if fired {
                // A late update within the allowed lateness re-emits the window's result.
                let (g, a) = (cell.group.clone(), cell.accs.clone());
                let o = self.output(&g, Some((s, e)), &a);
                out.emit(o);
            }
        }
        self.key_buf = key;
        self.scratch = windows;
        if !used {
            self.late(event, out);
        }
    }

    fn process_session(&mut self, event: Event, out: &mut Collector, gap: i64) {
        let ts = event.timestamp;
        if self.expired(ts + gap) {
            return self.late(event, out);
        }
        let (key, group) = self.group_of(&event.value);
        let mut accs = self.init_accs();
        Self::add(&self.spec.aggregates, &mut accs, &event.value);
        let mut merged = Session {
            start: ts,
            end: ts + gap,
            fired: false,
            accs,
        };
        let specs = self.spec.aggregates.clone();
        let (_, sessions) = self
            .state
            .sessions
            .entry(key)
            .or_insert_with(|| (group.clone(), Vec::new()));
        let mut was_fired = false;
        sessions.retain(|s| {
            let touches = s.start <= merged.end && s.end >= merged.start;
            if touches {
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                for (a, (acc, other)) in specs.iter().zip(merged.accs.iter_mut().zip(&s.accs)) {
                    a.func.merge(acc, other);
                }
                was_fired |= s.fired;
            }
            !touches
        });
        let pos = sessions.partition_point(|s| s.start < merged.start);
        let refire = was_fired || self.state.watermark.is_some_and(|wm| merged.end - 1 <= wm);
        merged.fired = refire;
        let emitted = refire.then(|| (merged.start, merged.end, merged.accs.clone()));
        sessions.insert(pos, merged);
        if let Some((s, e, a)) = emitted {
            let o = self.output(&group, Some((s, e)), &a);
            out.emit(o);
        }
    }

    fn process_global(&mut self, event: Event, out: &mut Collector) {
        let (key, group) = self.group_of(&event.value);
        let init = self.init_accs();
        let cell = self
            .state
            .running
            .entry(key)
            .or_insert_with(|| Cell { group, accs: init });
        Self::add(&self.spec.aggregates, &mut cell.accs, &event.value);
        let (g, a) = (cell.group.clone(), cell.accs.clone());
        let mut o = self.output(&g, None, &a);
        o.timestamp = event.timestamp;
        out.emit(o);
    }
}

impl Operator for WindowAggregate {
    fn name(&self) -> &str {
        "window_aggregate"
    }

    /// Results are new events; late events go to the side output as they came.
    fn preserves_values(&self) -> bool {
        true
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        match self.spec.kind {
            WindowKind::Tumbling { .. }
            | WindowKind::Hopping { .. }
            | WindowKind::Cumulating { .. } => self.process_fixed(event, out),
            WindowKind::Session { gap } => self.process_session(event, out, gap),
            WindowKind::Global => self.process_global(event, out),
        }
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) {
        if self.state.watermark.is_some_and(|w| w >= watermark) {
            return;
        }
        let lateness = self.spec.allowed_lateness;
        // Fixed windows: fire in end order those whose last millisecond is now covered.
        // Windows past their lateness horizon too are taken out and their cells moved into
        // the results; windows kept for late events fire copies of their cells.
        let mut emit = Vec::new();
        while let Some(entry) = self.state.windows.first_entry() {
            let (e, s) = *entry.key();
            if e - 1 + lateness > watermark {
                break;
            }
            let (fired, cells) = entry.remove();
            if !fired {
                self.groups_hint = cells.len();
                let mut sorted: Vec<(String, Cell)> = cells.into_iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                emit.extend(sorted.into_iter().map(|(_, c)| (c.group, (s, e), c.accs)));
            }
        }
        for (&(e, s), (fired, cells)) in self.state.windows.iter_mut() {
            if e - 1 > watermark {
                break;
            }
            if !*fired {
                *fired = true;
                self.groups_hint = cells.len();
                let mut sorted: Vec<(&String, &Cell)> = cells.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                emit.extend(
                    sorted
                        .into_iter()
                        .map(|(_, c)| (c.group.clone(), (s, e), c.accs.clone())),
                );
            }
        }
        // Sessions: fire (in start order per group, groups in key order) and purge.
        for (group, sessions) in self.state.sessions.values_mut() {
            for s in sessions.iter_mut() {
                if !s.fired && s.end - 1 <= watermark {
                    s.fired = true;
                    emit.push((group.clone(), (s.start, s.end), s.accs.clone()));
                }
            }
            sessions.retain(|s| s.end - 1 + lateness > watermark);
        }
        self.state.sessions.retain(|_, (_, s)| !s.is_empty());
        self.state.watermark = Some(watermark);
        // Sessions of different groups may end in any order; emit all fired windows by end.
        emit.sort_by_key(|(_, (s, e), _)| (*e, *s));
        for (g, w, a) in emit {
            let o = self.output(&g, Some(w), &a);
            out.emit(o);
        }
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        serde_json::to_vec(&self.state)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: self.name().into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        self.state = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "window_aggregate".into(),
            reason: e.to_string(),
        })?;
        Ok(())
    }

    fn late_records(&self) -> u64 {
        self.state.late
    }
}

/// The values of the grouping fields of `v` (null where missing).
fn group_values(group_by: &[String], v: &Value) -> Vec<Value> {
    group_by
        .iter()
        .map(|p| v.path(p).cloned().unwrap_or(Value::Null))
        .collect()
}

/// Writes the group key of `v` (the JSON array of its grouping values) into `out`.
fn write_group_key(group_by: &[String], v: &Value, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    out.push('[');
    for (i, p) in group_by.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v.path(p).unwrap_or(&Value::Null) {
            // The common group values, written as serde_json would without going through it.
            Value::Str(s) if !s.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20) => {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            Value::Int(n) => {
                let _ = write!(out, "{n}"); // writing to a String cannot fail
            }
            Value::Null => out.push_str("null"),
            other => out.push_str(&String::from_utf8_lossy(&other.to_json())),
        }
    }
    out.push(']');
}

/// JSON maps need string keys: store a tuple-keyed map as a list of pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        m: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub(super) fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_are_the_json_array_of_the_group_values() {
        let v = Value::from_json(
            br#"{"s":"user-1","q":"a\"b\u0001","n":-12,"f":2.5,"o":{"x":[1]},"e":"","u":"\u00e9"}"#,
        )
        .expect("json");
        let fields = ["s", "q", "n", "f", "o", "missing", "e", "u"];
        let group_by: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        let mut key = String::from("stale");
        write_group_key(&group_by, &v, &mut key);
        let expected = serde_json::to_string(&group_values(&group_by, &v)).expect("json");
        assert_eq!(key, expected);
    }
}

//! Building a pipeline: sources → operators → sink, through a small Rust API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ProcessorError;
use crate::event::Event;
use crate::operator::{Filter, FlatMap, KeyBy, Map, Operator};
use crate::value::Value;
use crate::window::{WindowAggregate, WindowSpec};

/// Where a source's event time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTime {
    /// The Kafka record timestamp.
    RecordTimestamp,
    /// A field of the JSON value (dotted path): integer epoch milliseconds, or a string
    /// timestamp `YYYY-MM-DD[ T]HH:MM:SS[.fff][Z]` (UTC).
    Field(String),
}

/// Where a pipeline starts reading a topic when it has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Earliest,
    Latest,
    /// The first record whose timestamp is at or after these epoch milliseconds (Kafka's
    /// ListOffsets by timestamp); the log end when there is none.
    Timestamp(i64),
}

/// One input topic.
#[derive(Debug, Clone)]
pub struct Input {
    pub topic: String,
    pub event_time: EventTime,
    pub start: StartFrom,
    /// The top-level value fields the plan reads from this input (`None`: any field). Set
    /// with [`Input::fields`].
    pub fields: Option<Vec<String>>,
}

impl Input {
    /// Reads `topic` from the earliest offset, event time from the record timestamp.
    pub fn topic(topic: &str) -> Input {
        Input {
            topic: topic.to_string(),
            event_time: EventTime::RecordTimestamp,
            start: StartFrom::Earliest,
            fields: None,
        }
    }

    /// Declares the value fields the plan reads from this input (dotted paths count by their
    /// first segment), so that sources decode only those and skip the rest of each value,
    /// which is much cheaper. The event-time field is added automatically. Events then carry
    /// objects with just these fields (other values, e.g. arrays, whole), while sinks still
    /// write the full original value of events whose value no operator changed. Only
    /// declare this when every operator reads and builds from these fields alone: a closure
    /// that reads another field sees it missing (null), and an operator that re-emits a
    /// modified value emits just these fields. Without it (the default) values decode whole.
    /// Front ends that know their column references (SQL, [`crate::PipelineSpec`]) set it.
    pub fn fields<S: AsRef<str>>(mut self, names: &[S]) -> Input {
        let mut fields: Vec<String> = Vec::new();
        for n in names {
            let top = top_field(n.as_ref());
            if !fields.iter().any(|f| f == top) {
                fields.push(top.to_string());
            }
        }
        self.fields = Some(fields);
        self
    }

    /// The fields a source must decode: the declared ones plus the event-time field, or
    /// `None` for all.
    pub(crate) fn decode_fields(&self) -> Option<Arc<[Arc<str>]>> {
        let mut fields: Vec<Arc<str>> = self
            .fields
            .as_ref()?
            .iter()
            .map(|f| Arc::from(f.as_str()))
            .collect();
        if let EventTime::Field(path) = &self.event_time {
            let top = top_field(path);
            if !fields.iter().any(|f| &**f == top) {
                fields.push(Arc::from(top));
            }
        }
        Some(fields.into())
    }
    /// Takes event time from a value field.
    pub fn event_time_field(mut self, path: &str) -> Input {
        self.event_time = EventTime::Field(path.to_string());
        self
    }
    /// Starts at the log end instead of the beginning.
    pub fn from_latest(mut self) -> Input {
        self.start = StartFrom::Latest;
        self
    }
    /// Starts at the first record whose timestamp is `>= millis` (epoch milliseconds).
    pub fn from_timestamp(mut self, millis: i64) -> Input {
        self.start = StartFrom::Timestamp(millis);
        self
    }
}

/// A complete, validated pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pub(crate) name: String,
    pub(crate) inputs: Vec<Input>,
    pub(crate) ops: Vec<Box<dyn Operator>>,
    pub(crate) output: String,
    /// Side output name → topic.
    pub(crate) side_outputs: BTreeMap<Arc<str>, String>,
    pub(crate) watermark_delay: i64,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) checkpoint_interval: Duration,
    /// Stop when the inputs' log ends as of start-up are reached (batch/reference runs).
    pub(crate) bounded: bool,
    /// Bytes a source reads from a partition per step (like `max.partition.fetch.bytes`).
    pub(crate) read_bytes: usize,
}

impl Pipeline {
    /// The pipeline's name (its state directory and producer identity).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Builds a [`Pipeline`].
#[derive(Debug)]
pub struct PipelineBuilder {
    p: Pipeline,
    error: Option<ProcessorError>,
}

impl PipelineBuilder {
    /// A pipeline named `name` (letters, digits, `-`, `_`, `.`).
    pub fn new(name: &str) -> PipelineBuilder {
        PipelineBuilder {
            p: Pipeline {
                name: name.to_string(),
                inputs: Vec::new(),
                ops: Vec::new(),
                output: String::new(),
                side_outputs: BTreeMap::new(),
                watermark_delay: 0,
                idle_timeout: None,
                checkpoint_interval: Duration::from_secs(1),
                bounded: false,
                read_bytes: 1 << 20,
            },
            error: None,
        }
    }

    /// Adds an input topic.
    pub fn source(mut self, input: Input) -> Self {
        self.p.inputs.push(input);
        self
    }

    /// Allowed out-of-orderness: watermark = max event time seen - `delay`.
    pub fn watermark_delay(mut self, delay: Duration) -> Self {
        self.p.watermark_delay = delay.as_millis() as i64;
        self
    }

    /// A partition silent this long stops holding the watermark back.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.p.idle_timeout = Some(t);
        self
    }

    /// How often progress is committed (and output becomes visible). Default 1 s.
    pub fn checkpoint_interval(mut self, t: Duration) -> Self {
        self.p.checkpoint_interval = t;
        self
    }

    /// Process what the inputs hold at start-up, fire every window, commit and stop.
    pub fn bounded(mut self) -> Self {
        self.p.bounded = true;
        self
    }

    /// Bytes a source reads per partition per step (default 1 MiB; at least one batch).
    pub fn read_bytes(mut self, n: usize) -> Self {
        self.p.read_bytes = n.max(1);
        self
    }

    /// Keeps the events `f` accepts.
    pub fn filter(self, f: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Self {
        self.op(Filter(Arc::new(f)))
    }

    /// Transforms each event.
    pub fn map(self, f: impl Fn(Event) -> Event + Send + Sync + 'static) -> Self {
        self.op(Map(Arc::new(f)))
    }

    /// Transforms each event into any number of events.
    pub fn flat_map(self, f: impl Fn(Event) -> Vec<Event> + Send + Sync + 'static) -> Self {
        self.op(FlatMap(Arc::new(f)))
    }

    /// Re-keys events (the output topic is partitioned by the key).
    pub fn key_by(self, f: impl Fn(&Event) -> Value + Send + Sync + 'static) -> Self {
        self.op(KeyBy(Arc::new(f)))
    }

    /// Aggregates over event-time windows (or a running aggregate for `WindowKind::Global`).
    pub fn window(mut self, spec: WindowSpec) -> Self {
        if let crate::window::LatePolicy::SideOutput(name) = &spec.late {
            if !self.p.side_outputs.contains_key(name) {
                self.error.get_or_insert(ProcessorError::InvalidPlan(format!(
                    "late records go to side output '{name}', which has no topic: call side_output first"
                )));
            }
        }
        match WindowAggregate::new(spec) {
            Ok(op) => self.op(op),
            Err(e) => {
                self.error.get_or_insert(e);
                self
            }
        }
    }

    /// Joins two inputs within event-time windows (see [`crate::join::WindowJoin`]).
    pub fn window_join(mut self, spec: crate::join::WindowJoinSpec) -> Self {
        self.check_inputs(&[spec.left_input, spec.right_input]);
        match crate::join::WindowJoin::new(spec) {
            Ok(op) => self.op(op),
            Err(e) => {
                self.error.get_or_insert(e);
                self
            }
        }
    }

    /// Enriches stream events with a table input's latest value per key (see
    /// [`crate::join::TableJoin`]).
    pub fn table_join(mut self, spec: crate::join::TableJoinSpec) -> Self {
        self.check_inputs(&[spec.stream_input, spec.table_input]);
        match crate::join::TableJoin::new(spec) {
            Ok(op) => self.op(op),
            Err(e) => {
                self.error.get_or_insert(e);
                self
            }
        }
    }

    fn check_inputs(&mut self, used: &[usize]) {
        if let Some(i) = used.iter().find(|i| **i >= self.p.inputs.len()) {
            self.error
                .get_or_insert(ProcessorError::InvalidPlan(format!(
                    "a join refers to input {i}, but only {} source(s) were added before it",
                    self.p.inputs.len()
                )));
        }
    }

    /// Any operator, including user-written ones.
    pub fn op(mut self, op: impl Operator + 'static) -> Self {
        self.p.ops.push(Box::new(op));
        self
    }

    /// Routes side output `name` (late records) to `topic`.
    pub fn side_output(mut self, name: &str, topic: &str) -> Self {
        self.p
            .side_outputs
            .insert(Arc::from(name), topic.to_string());
        self
    }

    /// Writes the result to `topic`.
    pub fn sink(mut self, topic: &str) -> Self {
        self.p.output = topic.to_string();
        self
    }

    /// Validates and returns the pipeline.
    pub fn build(self) -> Result<Pipeline, ProcessorError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let p = self.p;
        let bad = |m: String| Err(ProcessorError::InvalidPlan(m));
        if p.name.is_empty()
            || !p
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad(format!(
                "pipeline name '{}' must be non-empty and use only letters, digits, '-', '_' and '.'",
                p.name
            ));
        }
        if p.inputs.is_empty() {
            return bad("a pipeline needs at least one source".into());
        }
        if p.output.is_empty() {
            return bad("a pipeline needs a sink topic".into());
        }
        if p.inputs.iter().any(|i| i.topic == p.output) {
            return bad(format!(
                "topic '{}' is both a source and the sink",
                p.output
            ));
        }
        if p.watermark_delay < 0 {
            return bad("the watermark delay must not be negative".into());
        }
        if p.checkpoint_interval.is_zero() {
            return bad("the checkpoint interval must be positive".into());
        }
        Ok(p)
    }
}

/// The top-level field a dotted path starts with.
pub(crate) fn top_field(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

/// Parses an event-time value: integer epoch ms, or a UTC timestamp string
/// `YYYY-MM-DD[ T]HH:MM:SS[.f…][Z]`.
pub fn parse_event_time(v: &Value) -> Option<i64> {
    match v {
        Value::Int(ms) => Some(*ms),
        Value::Float(f) if f.is_finite() => Some(*f as i64),
        Value::Str(s) => parse_timestamp(s),
        _ => None,
    }
}

fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut ms = 0;
    if b.len() > 19 {
        if b[19] != b'.' {
            return None;
        }
        let frac = &s[20..];
        if frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = digits.parse::<i64>().ok()?;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_like_utc() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            parse_timestamp("2015-07-15T00:00:01.5Z"),
            Some(1_436_918_401_500)
        );
        assert_eq!(
            parse_timestamp("2000-02-29 12:34:56.789"),
            Some(951_827_696_789)
        );
        assert_eq!(parse_timestamp("2000-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_event_time(&Value::Int(42)), Some(42));
    }

    #[test]
    fn invalid_plans_are_refused_with_a_reason() {
        let e = PipelineBuilder::new("p")
            .sink("out")
            .build()
            .expect_err("must fail");
        assert!(e.to_string().contains("at least one source"), "{e}");
        let e = PipelineBuilder::new("bad name")
            .source(Input::topic("a"))
            .sink("b")
            .build()
            .expect_err("must fail");
        assert!(e.to_string().contains("pipeline name"), "{e}");
        let e = PipelineBuilder::new("p")
            .source(Input::topic("a"))
            .sink("a")
            .build()
            .expect_err("must fail");
        assert!(e.to_string().contains("both a source and the sink"), "{e}");
    }
}

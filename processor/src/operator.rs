//! The operator contract and the stateless operators.
//!
//! An operator sees data through [`Operator::process`] and time through
//! [`Operator::on_watermark`]; stateful ones put their state in [`Operator::snapshot`] and get
//! it back through [`Operator::restore`] after a restart, so a checkpoint is the list of the
//! operators' snapshots plus the sources' offsets.

use std::fmt;
use std::sync::Arc;

use crate::error::ProcessorError;
use crate::event::{key_bytes, Collector, Event};
use crate::value::Value;

/// One step of a pipeline. Default hooks make stateless operators one method long.
pub trait Operator: Send + fmt::Debug {
    /// A short name for logs and status.
    fn name(&self) -> &str;

    /// Handles one event, emitting any number of events.
    fn process(&mut self, event: Event, out: &mut Collector);

    /// The watermark moved to `watermark`: no event with an earlier-or-equal event time is
    /// expected any more. Windowed operators fire here. Called with increasing values.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Collector) {}

    /// State to keep in a checkpoint (None: stateless).
    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        Ok(None)
    }

    /// Restores what [`Operator::snapshot`] returned.
    fn restore(&mut self, _state: &[u8]) -> Result<(), ProcessorError> {
        Ok(())
    }

    /// Records dropped as late by this operator (for status).
    fn late_records(&self) -> u64 {
        0
    }

    /// Input records this operator could not read (e.g. JSON that does not fit a SQL
    /// table's columns) and skipped or dead-lettered, since the pipeline started (for status).
    fn bad_records(&self) -> u64 {
        0
    }

    /// True if every event this operator emits (main or side output) is either an event it
    /// received, value untouched, or one it built itself (e.g. with [`Event::new`]). The
    /// runtime then lets received events keep their original value bytes, so a sink writes
    /// them without encoding the value again. The default, false, is always safe: the runtime
    /// drops the bytes of whatever the operator emits.
    fn preserves_values(&self) -> bool {
        false
    }
}

type Pred = Arc<dyn Fn(&Event) -> bool + Send + Sync>;
type MapFn = Arc<dyn Fn(Event) -> Event + Send + Sync>;
type FlatMapFn = Arc<dyn Fn(Event) -> Vec<Event> + Send + Sync>;
type KeyFn = Arc<dyn Fn(&Event) -> Value + Send + Sync>;

/// Keeps the events the predicate accepts.
#[derive(Clone)]
pub struct Filter(pub(crate) Pred);

/// Transforms each event into one event.
#[derive(Clone)]
pub struct Map(pub(crate) MapFn);

/// Transforms each event into zero or more events.
#[derive(Clone)]
pub struct FlatMap(pub(crate) FlatMapFn);

/// Sets each event's key from a function of the event (the output topic is then
/// partitioned by it). Inside one pipeline task, grouping needs no network shuffle.
#[derive(Clone)]
pub struct KeyBy(pub(crate) KeyFn);

macro_rules! debug_named {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($t))
            }
        }
    )*};
}
debug_named!(Filter, Map, FlatMap, KeyBy);

impl Operator for Filter {
    fn name(&self) -> &str {
        "filter"
    }
    fn process(&mut self, event: Event, out: &mut Collector) {
        if (self.0)(&event) {
            out.emit(event);
        }
    }
    fn preserves_values(&self) -> bool {
        true // the predicate sees `&Event`
    }
}

impl Operator for Map {
    fn name(&self) -> &str {
        "map"
    }
    fn process(&mut self, event: Event, out: &mut Collector) {
        out.emit((self.0)(event));
    }
}

impl Operator for FlatMap {
    fn name(&self) -> &str {
        "flat_map"
    }
    fn process(&mut self, event: Event, out: &mut Collector) {
        for e in (self.0)(event) {
            out.emit(e);
        }
    }
}

impl Operator for KeyBy {
    fn name(&self) -> &str {
        "key_by"
    }
    fn process(&mut self, mut event: Event, out: &mut Collector) {
        event.key = key_bytes(&(self.0)(&event));
        out.emit(event);
    }
    fn preserves_values(&self) -> bool {
        true // only the key changes
    }
}

/// Projects an object onto `fields` (missing ones become null), in that order.
pub fn project(value: &Value, fields: &[&str]) -> Value {
    Value::object(
        fields
            .iter()
            .map(|f| (*f, value.path(f).cloned().unwrap_or(Value::Null))),
    )
}

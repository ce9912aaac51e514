//! Runs an operator on the events of one input only, so each side of a join can have its own
//! chain of operators (a subquery's stages and aggregate) in the pipeline's single line of
//! operators: events of other inputs pass through untouched, and what the operator emits is
//! tagged with its input.

use crate::error::ProcessorError;
use crate::event::{Collector, Event};
use crate::operator::Operator;

/// An operator restricted to events of `input`.
#[derive(Debug)]
pub(crate) struct ForInput {
    input: usize,
    op: Box<dyn Operator>,
}

impl ForInput {
    pub(crate) fn new(input: usize, op: Box<dyn Operator>) -> ForInput {
        ForInput { input, op }
    }

    fn retag(&self, out: &mut Collector, from: usize) {
        for e in out.main.iter_mut().skip(from) {
            e.input = self.input;
        }
    }
}

impl Operator for ForInput {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        if event.input != self.input {
            return out.emit(event);
        }
        let from = out.main.len();
        self.op.process(event, out);
        self.retag(out, from);
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) {
        let from = out.main.len();
        self.op.on_watermark(watermark, out);
        self.retag(out, from);
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        self.op.snapshot()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        self.op.restore(state)
    }

    fn late_records(&self) -> u64 {
        self.op.late_records()
    }

    fn bad_records(&self) -> u64 {
        self.op.bad_records()
    }
}

/// Reads one topic for two inputs: each event of input `from` is passed on and also copied
/// as an event of input `to` (a self-join's second side).
#[derive(Debug)]
pub(crate) struct Fork {
    from: usize,
    to: usize,
}

impl Fork {
    pub(crate) fn new(from: usize, to: usize) -> Fork {
        Fork { from, to }
    }
}

impl Operator for Fork {
    fn name(&self) -> &str {
        "sql_fork"
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        if event.input == self.from {
            let mut copy = event.clone();
            copy.input = self.to;
            out.emit(event);
            out.emit(copy);
        } else {
            out.emit(event);
        }
    }
}

//! Regular (unwindowed) inner equi-joins of two append-only tables, as Flink runs
//! `FROM a [INNER] JOIN b ON a.k = b.k`: every row is kept per join key on its side, and each
//! arriving row is emitted joined with every row of the other side under the same key. The
//! output is append-only (an inner join of append-only inputs never retracts).
//!
//! State grows with the inputs unless `SET 'table.exec.state.ttl'` bounds it. Flink counts
//! that TTL in processing time; here it counts in event time (rows older than the watermark
//! minus the TTL are dropped), so a replay gives the same result.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ProcessorError;
use crate::event::{Collector, Event};
use crate::operator::Operator;
use crate::value::Value;

use super::eval::{eval, is_true};
use super::expr::Expr;
use super::ops::Decoder;

/// One side of the join.
#[derive(Debug, Clone)]
pub(crate) struct JoinSide {
    /// Decodes a table's JSON; None: rows arrive as lists from a subquery.
    pub(crate) decoder: Option<Decoder>,
    /// Position of window_end in this side's rows when the join key includes the window
    /// (a window join): a row is dropped once the watermark passes its window.
    pub(crate) window_end: Option<usize>,
    /// Position of the time column that interval bounds refer to (the table's event time
    /// or a subquery's window_end); None: the row's event timestamp.
    pub(crate) time: Option<usize>,
    /// Conditions on this side alone (pushed below the join: less state).
    pub(crate) filter: Option<Expr>,
    /// Key expressions over this side's row.
    pub(crate) keys: Vec<Expr>,
}

/// Rows of both sides under one key: (event time, row).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Bucket {
    left: Vec<(i64, Vec<Value>)>,
    right: Vec<(i64, Vec<Value>)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct JoinState {
    /// Join key (JSON) → rows. Ordered, so purging and snapshots are deterministic.
    buckets: BTreeMap<String, Bucket>,
}

/// Bounds on `left event time - right event time` from interval conditions
/// (`l.ts BETWEEN r.ts - INTERVAL ... AND r.ts + INTERVAL ...`): rows that no future row of
/// the other side can match leave the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimeBounds {
    pub(crate) lower: Option<i64>,
    pub(crate) upper: Option<i64>,
}

/// The join operator; emits `Value::List(left row ++ right row)`.
pub(crate) struct SqlJoin {
    sides: [JoinSide; 2],
    /// State TTL in milliseconds of event time.
    ttl: Option<i64>,
    bounds: TimeBounds,
    state: JoinState,
}

impl fmt::Debug for SqlJoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlJoin")
            .field("keys", &self.sides[0].keys.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl SqlJoin {
    pub(crate) fn new(left: JoinSide, right: JoinSide, ttl: Option<i64>) -> SqlJoin {
        SqlJoin {
            sides: [left, right],
            ttl,
            bounds: TimeBounds::default(),
            state: JoinState::default(),
        }
    }
}

impl SqlJoin {
    /// Drops rows by the interval conditions between the two sides' event times.
    pub(crate) fn with_bounds(mut self, bounds: TimeBounds) -> SqlJoin {
        self.bounds = bounds;
        self
    }
}

impl Operator for SqlJoin {
    fn name(&self) -> &str {
        "sql_join"
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        let Some(side) = self.sides.get(event.input) else {
            return;
        };
        let decoded = match &side.decoder {
            Some(d) => d.decode(&event.value),
            None => match event.value {
                Value::List(ref r) => Some(r.clone()),
                _ => None,
            },
        };
        let Some(row) = decoded else {
            tracing::warn!(
                input = event.input,
                "skipping a record whose JSON does not match the table's columns"
            );
            return;
        };
        if side.filter.as_ref().is_some_and(|f| !is_true(f, &row)) {
            return;
        }
        let key: Vec<Value> = side.keys.iter().map(|k| eval(k, &row)).collect();
        if key.iter().any(Value::is_null) {
            return; // NULL never equals anything
        }
        let kjson = String::from_utf8_lossy(&Value::List(key).to_json()).into_owned();
        let bucket = self.state.buckets.entry(kjson).or_default();
        let left = event.input == 0;
        let others = if left { &bucket.right } else { &bucket.left };
        for (_, other) in others {
            let joined: Vec<Value> = if left {
                row.iter().chain(other.iter()).cloned().collect()
            } else {
                other.iter().chain(row.iter()).cloned().collect()
            };
            out.emit(Event {
                key: None,
                value: Value::List(joined),
                timestamp: event.timestamp,
                headers: Vec::new(),
                input: event.input,
                partition: -1,
                offset: -1,
                raw: None,
            });
        }
        let mine = if left {
            &mut bucket.left
        } else {
            &mut bucket.right
        };
        mine.push((event.timestamp, row));
    }

    fn on_watermark(&mut self, watermark: i64, _out: &mut Collector) {
        let horizon = self.ttl.map(|ttl| watermark.saturating_sub(ttl));
        let ends = [self.sides[0].window_end, self.sides[1].window_end];
        let TimeBounds { lower, upper } = self.bounds;
        if horizon.is_none()
            && ends.iter().all(Option::is_none)
            && lower.is_none()
            && upper.is_none()
        {
            return;
        }
        // Keep a row while its TTL lasts and its window (if any) is still open.
        let keep = |(ts, row): &(i64, Vec<Value>), end: Option<usize>| {
            horizon.is_none_or(|h| *ts >= h)
                && end.is_none_or(|i| {
                    row.get(i)
                        .and_then(Value::as_i64)
                        .is_some_and(|e| e - 1 > watermark)
                })
        };
        // Rows still to come have times after the watermark (a table's rows unless late, a
        // window's row because it is emitted when the watermark passes its end): a left row
        // matches right rows up to `t - lower`, a right row left rows up to `t + upper`.
        let cols = [self.sides[0].time, self.sides[1].time];
        let time = |(ts, row): &(i64, Vec<Value>), col: Option<usize>| match col {
            Some(i) => row.get(i).and_then(Value::as_i64).unwrap_or(*ts),
            None => *ts,
        };
        for b in self.state.buckets.values_mut() {
            b.left.retain(|r| {
                keep(r, ends[0])
                    && lower.is_none_or(|lo| time(r, cols[0]).saturating_sub(lo) > watermark)
            });
            b.right.retain(|r| {
                keep(r, ends[1])
                    && upper.is_none_or(|hi| time(r, cols[1]).saturating_add(hi) > watermark)
            });
        }
        self.state
            .buckets
            .retain(|_, b| !b.left.is_empty() || !b.right.is_empty());
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        serde_json::to_vec(&self.state)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: "sql_join".into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        self.state = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "sql_join".into(),
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(window_end: Option<usize>) -> JoinSide {
        JoinSide {
            decoder: None,
            window_end,
            time: None,
            filter: None,
            keys: vec![Expr::Col(0)],
        }
    }

    fn ev(input: usize, row: Vec<Value>, ts: i64) -> Event {
        Event::new(Value::List(row), ts).from_input(input)
    }

    fn rows(out: &mut Collector) -> Vec<Value> {
        out.take().into_iter().map(|e| e.value).collect()
    }

    #[test]
    fn joins_both_ways_and_survives_a_snapshot() {
        let mut a = SqlJoin::new(side(None), side(None), None);
        let mut out = Collector::default();
        a.process(ev(0, vec![Value::Int(1), Value::str("l1")], 1), &mut out);
        a.process(ev(1, vec![Value::Int(1), Value::str("r1")], 2), &mut out);
        a.process(ev(1, vec![Value::Int(2), Value::str("r2")], 3), &mut out);
        assert_eq!(
            rows(&mut out),
            vec![Value::List(vec![
                Value::Int(1),
                Value::str("l1"),
                Value::Int(1),
                Value::str("r1")
            ])]
        );
        let snap = a.snapshot().expect("snapshot").expect("stateful");
        let mut b = SqlJoin::new(side(None), side(None), None);
        b.restore(&snap).expect("restore");
        for j in [&mut a, &mut b] {
            j.process(ev(0, vec![Value::Int(2), Value::str("l2")], 4), &mut out);
            j.process(
                ev(0, vec![Value::Null, Value::str("null keys never match")], 5),
                &mut out,
            );
        }
        let got = rows(&mut out);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], got[1]);
        assert_eq!(
            got[0],
            Value::List(vec![
                Value::Int(2),
                Value::str("l2"),
                Value::Int(2),
                Value::str("r2")
            ])
        );
    }

    #[test]
    fn window_rows_and_expired_rows_leave_the_state() {
        // Rows carry window_end at position 1; a row goes once the watermark passes it.
        let mut j = SqlJoin::new(side(Some(1)), side(Some(1)), None);
        let mut out = Collector::default();
        j.process(ev(0, vec![Value::Int(1), Value::Int(10)], 9), &mut out);
        j.on_watermark(9, &mut out);
        j.process(ev(1, vec![Value::Int(1), Value::Int(10)], 9), &mut out);
        assert!(
            rows(&mut out).is_empty(),
            "the left row's window closed at 9"
        );
        let mut t = SqlJoin::new(side(None), side(None), Some(5));
        t.process(ev(0, vec![Value::Int(1)], 10), &mut out);
        t.on_watermark(15, &mut out);
        t.process(ev(1, vec![Value::Int(1)], 16), &mut out);
        assert_eq!(rows(&mut out).len(), 1, "within the TTL");
        t.on_watermark(16, &mut out);
        t.process(ev(1, vec![Value::Int(1)], 17), &mut out);
        assert!(rows(&mut out).is_empty(), "the left row expired");
    }
}

#[cfg(test)]
mod interval_tests {
    use super::*;

    #[test]
    fn interval_bounds_drop_rows_no_future_row_can_match() {
        let side = || JoinSide {
            decoder: None,
            window_end: None,
            time: None,
            filter: None,
            keys: vec![Expr::Col(0)],
        };
        // l - r in [-10, 0]: a left row matches right rows up to 10 ms later.
        let mut j = SqlJoin::new(side(), side(), None).with_bounds(TimeBounds {
            lower: Some(-10),
            upper: Some(0),
        });
        let mut out = Collector::default();
        j.process(Event::new(Value::List(vec![Value::Int(1)]), 100), &mut out);
        j.on_watermark(105, &mut out);
        j.process(
            Event::new(Value::List(vec![Value::Int(1)]), 108).from_input(1),
            &mut out,
        );
        assert_eq!(out.take().len(), 1, "108 is within 10 ms of 100");
        j.on_watermark(110, &mut out);
        assert!(
            j.state.buckets.is_empty(),
            "neither row can match anything newer than 110"
        );
    }
}

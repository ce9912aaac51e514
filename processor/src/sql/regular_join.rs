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

/// The join operator; emits `Value::List(left row ++ right row)`.
pub(crate) struct SqlJoin {
    sides: [JoinSide; 2],
    /// State TTL in milliseconds of event time.
    ttl: Option<i64>,
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
            state: JoinState::default(),
        }
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
        if horizon.is_none() && ends.iter().all(Option::is_none) {
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
        for b in self.state.buckets.values_mut() {
            b.left.retain(|r| keep(r, ends[0]));
            b.right.retain(|r| keep(r, ends[1]));
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

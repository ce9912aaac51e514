//! Window Top-N (Flink's `ROW_NUMBER() OVER (PARTITION BY window_start, window_end, ...
//! ORDER BY ...)` filtered by `rownum <= N`): rows of a window are buffered per partition
//! until the watermark passes the window's end, then the first N by the order are emitted
//! with their rank. Each window's ranking is emitted once (no updates), as in Flink.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ProcessorError;
use crate::event::{Collector, Event};
use crate::operator::Operator;
use crate::value::Value;

use super::eval::eval;
use super::expr::Expr;

/// Settings of a [`TopN`].
#[derive(Debug, Clone)]
pub(crate) struct TopNSpec {
    /// Row position of window_end (TIMESTAMP: epoch ms).
    pub(crate) window_end: usize,
    /// Partition expressions (besides the window).
    pub(crate) partition: Vec<Expr>,
    /// Order expressions and whether each is descending.
    pub(crate) order: Vec<(Expr, bool)>,
    pub(crate) n: usize,
}

/// (window_end, partition JSON): rows of a window and partition wait under it.
type Slot = (i64, String);

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopNState {
    /// The rows seen per slot, in arrival order.
    pending: Vec<(Slot, Vec<Vec<Value>>)>,
    watermark: Option<i64>,
    late: u64,
}

/// The operator; input and output are rows (`Value::List`), output rows end with the rank.
pub(crate) struct TopN {
    spec: TopNSpec,
    pending: BTreeMap<Slot, Vec<Vec<Value>>>,
    watermark: Option<i64>,
    late: u64,
}

impl fmt::Debug for TopN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopN").field("n", &self.spec.n).finish()
    }
}

impl TopN {
    pub(crate) fn new(spec: TopNSpec) -> TopN {
        TopN {
            spec,
            pending: BTreeMap::new(),
            watermark: None,
            late: 0,
        }
    }

    fn compare(&self, a: &[Value], b: &[Value]) -> Ordering {
        for (e, desc) in &self.spec.order {
            // NULLs sort first ascending and last descending (Flink's default).
            let o = eval(e, a).total_cmp(&eval(e, b));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

impl Operator for TopN {
    fn name(&self) -> &str {
        "sql_window_top_n"
    }

    fn process(&mut self, event: Event, _out: &mut Collector) {
        let Value::List(row) = event.value else {
            return;
        };
        let Some(end) = row.get(self.spec.window_end).and_then(Value::as_i64) else {
            return;
        };
        if self.watermark.is_some_and(|wm| end - 1 <= wm) {
            self.late += 1;
            return;
        }
        let part: Vec<Value> = self.spec.partition.iter().map(|p| eval(p, &row)).collect();
        let pkey = String::from_utf8_lossy(&Value::List(part).to_json()).into_owned();
        self.pending.entry((end, pkey)).or_default().push(row);
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) {
        if self.watermark.is_some_and(|w| w >= watermark) {
            return;
        }
        self.watermark = Some(watermark);
        while let Some(entry) = self.pending.first_entry() {
            let (end, _) = *entry.key();
            if end - 1 > watermark {
                break;
            }
            let mut rows = entry.remove();
            // A stable sort: ties keep arrival order.
            rows.sort_by(|a, b| self.compare(a, b));
            for (rank, mut row) in rows.into_iter().take(self.spec.n).enumerate() {
                row.push(Value::Int(rank as i64 + 1));
                out.emit(Event::new(Value::List(row), end - 1));
            }
        }
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        let state = TopNState {
            pending: self
                .pending
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            watermark: self.watermark,
            late: self.late,
        };
        serde_json::to_vec(&state)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: "sql_window_top_n".into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        let s: TopNState = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "sql_window_top_n".into(),
            reason: e.to_string(),
        })?;
        self.pending = s.pending.into_iter().collect();
        self.watermark = s.watermark;
        self.late = s.late;
        Ok(())
    }

    fn late_records(&self) -> u64 {
        self.late
    }
}

/// Keeps the first (or last) row per key by event time; emits `row ++ [1]` whenever the kept
/// row changes (an upsert per key).
pub(crate) struct Dedup {
    partition: Vec<Expr>,
    /// Row position of the event-time column.
    time: usize,
    keep_last: bool,
    /// Key (JSON) → event time of the kept row.
    kept: BTreeMap<String, i64>,
}

impl fmt::Debug for Dedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedup")
            .field("keep_last", &self.keep_last)
            .finish()
    }
}

impl Dedup {
    pub(crate) fn new(partition: Vec<Expr>, time: usize, keep_last: bool) -> Dedup {
        Dedup {
            partition,
            time,
            keep_last,
            kept: BTreeMap::new(),
        }
    }
}

impl Operator for Dedup {
    fn name(&self) -> &str {
        "sql_deduplicate"
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        let Value::List(mut row) = event.value else {
            return;
        };
        let Some(ts) = row.get(self.time).and_then(Value::as_i64) else {
            return;
        };
        let part: Vec<Value> = self.partition.iter().map(|p| eval(p, &row)).collect();
        let key = String::from_utf8_lossy(&Value::List(part).to_json()).into_owned();
        // Keep last: a row at the same or a later time replaces the kept one (Flink's
        // row-time deduplication); keep first: only an earlier row does.
        let replaces = match self.kept.get(&key) {
            None => true,
            Some(&kept) if self.keep_last => ts >= kept,
            Some(&kept) => ts < kept,
        };
        if replaces {
            self.kept.insert(key, ts);
            row.push(Value::Int(1));
            out.emit(Event {
                value: Value::List(row),
                ..event
            });
        }
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        serde_json::to_vec(&self.kept)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: "sql_deduplicate".into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        self.kept = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "sql_deduplicate".into(),
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(end: i64, k: &str, v: i64) -> Event {
        Event::new(
            Value::List(vec![Value::Int(end), Value::str(k), Value::Int(v)]),
            end - 1,
        )
    }

    fn spec() -> TopNSpec {
        TopNSpec {
            window_end: 0,
            partition: vec![Expr::Col(0)],
            order: vec![(Expr::Col(2), true)],
            n: 2,
        }
    }

    #[test]
    fn ranks_each_window_once_and_restores() {
        let mut a = TopN::new(spec());
        let mut out = Collector::default();
        for (k, v) in [("a", 5), ("b", 9), ("c", 7)] {
            a.process(row(10, k, v), &mut out);
        }
        a.process(row(20, "d", 1), &mut out);
        let snap = a.snapshot().expect("snapshot").expect("stateful");
        let mut b = TopN::new(spec());
        b.restore(&snap).expect("restore");
        let mut firsts = Vec::new();
        for t in [&mut a, &mut b] {
            t.on_watermark(9, &mut out);
            firsts.push(out.take());
        }
        assert_eq!(firsts[0], firsts[1]);
        let ranked: Vec<Value> = firsts[0].iter().map(|e| e.value.clone()).collect();
        assert_eq!(
            ranked,
            vec![
                Value::List(vec![
                    Value::Int(10),
                    Value::str("b"),
                    Value::Int(9),
                    Value::Int(1)
                ]),
                Value::List(vec![
                    Value::Int(10),
                    Value::str("c"),
                    Value::Int(7),
                    Value::Int(2)
                ]),
            ]
        );
        a.process(row(10, "late", 100), &mut out);
        assert_eq!(a.late_records(), 1);
        a.on_watermark(100, &mut out);
        assert_eq!(out.take().len(), 1, "the second window");
    }

    #[test]
    fn dedup_keeps_the_last_or_first_row_per_key_across_a_restore() {
        let row =
            |k: &str, ts: i64| Event::new(Value::List(vec![Value::str(k), Value::Int(ts)]), ts);
        for (keep_last, want) in [(true, vec![10, 20, 20]), (false, vec![10, 5])] {
            let mut a = Dedup::new(vec![Expr::Col(0)], 1, keep_last);
            let mut out = Collector::default();
            a.process(row("k", 10), &mut out);
            let snap = a.snapshot().expect("snapshot").expect("stateful");
            let mut b = Dedup::new(vec![Expr::Col(0)], 1, keep_last);
            b.restore(&snap).expect("restore");
            for ts in [20, 5, 20] {
                b.process(row("k", ts), &mut out);
            }
            let got: Vec<i64> = out.take().iter().map(|e| e.timestamp).collect();
            assert_eq!(got, want, "keep_last = {keep_last}");
        }
    }
}

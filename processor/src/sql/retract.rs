//! An unwindowed GROUP BY over an updating input (Flink's group aggregate with retraction):
//! an insert or update-after adds the row to its group, an update-before or delete takes it
//! back. Each change of a group's result is emitted as a changelog row `[g.., NULL, NULL,
//! r..]` (the shape the engine's aggregate gives the next stage, with no window bounds): an
//! insert for a new group, an update-after for a changed one, and a delete (with the last
//! result) when the group's last row was taken back. A group whose result did not change
//! emits nothing, as in Flink.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ProcessorError;
use crate::event::{Collector, Event};
use crate::operator::Operator;
use crate::value::Value;

use super::agg::Retractable;
use super::changelog::{self, RowKind};

/// One group's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Group {
    keys: Vec<Value>,
    /// Rows in the group: at 0 the group is deleted (as Flink's record counter).
    rows: i64,
    accs: Vec<Value>,
}

/// The operator: reads changelog rows `[g.., args..]`.
#[derive(Debug)]
pub(crate) struct RetractAggregate {
    /// Number of group keys at the row's start.
    keys: usize,
    /// Each aggregate and the row position of its argument (None: COUNT(*)).
    aggs: Vec<(Retractable, Option<usize>)>,
    /// Group (JSON of its keys) → state; ordered, so snapshots are deterministic.
    groups: BTreeMap<String, Group>,
}

impl RetractAggregate {
    pub(crate) fn new(keys: usize, aggs: Vec<(Retractable, Option<usize>)>) -> RetractAggregate {
        RetractAggregate {
            keys,
            aggs,
            groups: BTreeMap::new(),
        }
    }

    fn results(&self, accs: &[Value]) -> Vec<Value> {
        self.aggs
            .iter()
            .zip(accs)
            .map(|((f, _), acc)| f.finish(acc))
            .collect()
    }

    fn emit(
        &self,
        keys: &[Value],
        results: Vec<Value>,
        kind: RowKind,
        ts: i64,
        out: &mut Collector,
    ) {
        let mut row = Vec::with_capacity(keys.len() + 2 + results.len() + 1);
        row.extend_from_slice(keys);
        row.extend([Value::Null, Value::Null]);
        row.extend(results);
        out.emit(Event::new(changelog::encode(row, kind), ts));
    }
}

impl Operator for RetractAggregate {
    fn name(&self) -> &str {
        "sql_retract_aggregate"
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        let Value::List(mut row) = event.value else {
            return;
        };
        let kind = changelog::split(&mut row);
        let k = self.keys.min(row.len());
        let key = String::from_utf8_lossy(&Value::List(row[..k].to_vec()).to_json()).into_owned();
        let ts = event.timestamp;
        let arg = |p: &Option<usize>| -> Value {
            match p {
                None => Value::Bool(true),
                Some(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            }
        };
        if kind.is_retraction() {
            // Taking back a row of a group we do not hold (e.g. expired state): ignored.
            let Some(mut g) = self.groups.remove(&key) else {
                return;
            };
            let before = self.results(&g.accs);
            for ((f, p), acc) in self.aggs.iter().zip(g.accs.iter_mut()) {
                f.apply(acc, &arg(p), false);
            }
            g.rows -= 1;
            if g.rows <= 0 {
                self.emit(&g.keys, before, RowKind::Delete, ts, out);
                return;
            }
            let after = self.results(&g.accs);
            if after != before {
                self.emit(&g.keys, after, RowKind::UpdateAfter, ts, out);
            }
            self.groups.insert(key, g);
        } else {
            let (mut g, before) = match self.groups.remove(&key) {
                Some(g) => {
                    let before = self.results(&g.accs);
                    (g, Some(before))
                }
                None => (
                    Group {
                        keys: row[..k].to_vec(),
                        rows: 0,
                        accs: self.aggs.iter().map(|(f, _)| f.init()).collect(),
                    },
                    None,
                ),
            };
            for ((f, p), acc) in self.aggs.iter().zip(g.accs.iter_mut()) {
                f.apply(acc, &arg(p), true);
            }
            g.rows += 1;
            let after = self.results(&g.accs);
            match before {
                None => self.emit(&g.keys, after, RowKind::Insert, ts, out),
                Some(b) if b != after => self.emit(&g.keys, after, RowKind::UpdateAfter, ts, out),
                Some(_) => {}
            }
            self.groups.insert(key, g);
        }
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        serde_json::to_vec(&self.groups)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: self.name().into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        self.groups = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "sql_retract_aggregate".into(),
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::agg::AggKind;
    use crate::sql::types::SqlType;

    /// MAX(x) and COUNT(*) grouped by the first column.
    fn op() -> RetractAggregate {
        RetractAggregate::new(
            1,
            vec![
                (AggKind::Max.retractable(Some(&SqlType::BigInt)), Some(1)),
                (AggKind::Count.retractable(None), None),
            ],
        )
    }

    fn feed(
        op: &mut RetractAggregate,
        g: &str,
        x: i64,
        kind: RowKind,
    ) -> Vec<(RowKind, Vec<Value>)> {
        let mut out = Collector::default();
        let row = changelog::encode(vec![Value::str(g), Value::Int(x)], kind);
        op.process(Event::new(row, 0), &mut out);
        out.take()
            .into_iter()
            .map(|e| {
                let Value::List(mut r) = e.value else {
                    panic!("a row")
                };
                (changelog::split(&mut r), r)
            })
            .collect()
    }

    fn row(g: &str, max: i64, n: i64) -> Vec<Value> {
        vec![
            Value::str(g),
            Value::Null,
            Value::Null,
            Value::Int(max),
            Value::Int(n),
        ]
    }

    #[test]
    fn changes_are_inserts_updates_and_a_delete_when_the_group_empties() {
        let mut a = op();
        assert_eq!(
            feed(&mut a, "g", 5, RowKind::Insert),
            vec![(RowKind::Insert, row("g", 5, 1))]
        );
        assert_eq!(
            feed(&mut a, "g", 9, RowKind::UpdateAfter),
            vec![(RowKind::UpdateAfter, row("g", 9, 2))]
        );
        // The maximum is retracted: the next value held takes over.
        assert_eq!(
            feed(&mut a, "g", 9, RowKind::UpdateBefore),
            vec![(RowKind::UpdateAfter, row("g", 5, 1))]
        );
        // A retraction of a group never seen is ignored.
        assert_eq!(feed(&mut a, "h", 1, RowKind::Delete), vec![]);

        // The state survives a snapshot: a restored operator deletes the group correctly.
        let mut b = op();
        b.restore(&a.snapshot().expect("snapshot").expect("stateful"))
            .expect("restore");
        assert_eq!(
            feed(&mut b, "g", 5, RowKind::Delete),
            vec![(RowKind::Delete, row("g", 5, 1))]
        );
        // A new row after the delete starts the group again.
        assert_eq!(
            feed(&mut b, "g", 3, RowKind::Insert),
            vec![(RowKind::Insert, row("g", 3, 1))]
        );
    }

    #[test]
    fn unchanged_results_emit_nothing() {
        let mut a = RetractAggregate::new(
            1,
            vec![(AggKind::Max.retractable(Some(&SqlType::BigInt)), Some(1))],
        );
        assert_eq!(feed(&mut a, "g", 9, RowKind::Insert).len(), 1);
        assert_eq!(feed(&mut a, "g", 4, RowKind::Insert), vec![]);
        assert_eq!(feed(&mut a, "g", 4, RowKind::UpdateBefore), vec![]);
    }
}

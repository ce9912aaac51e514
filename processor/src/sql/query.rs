//! Bare `SELECT` queries: planned like an INSERT but with the query's own columns as the
//! result, run with [`crate::run_query`], their events turned into changelog rows here.

use std::collections::HashMap;

use crate::event::Event;
use crate::plan::Pipeline;
use crate::value::Value;

use super::types::SqlType;

/// A planned bare `SELECT`: nothing is started. Run `pipeline` with [`crate::run_query`]
/// and feed what it sends to a [`Changelog`].
#[derive(Debug)]
pub struct SqlQuery {
    /// The result's columns: names and types, in SELECT order.
    pub columns: Vec<(String, SqlType)>,
    /// An updating result (unwindowed GROUP BY, deduplication): rows are inserted, updated
    /// and deleted; otherwise every row is an insert.
    pub updating: bool,
    /// `LIMIT n`: the query ends after `n` result rows (changes, for an updating result).
    pub limit: Option<u64>,
    /// The topics it reads.
    pub input_topics: Vec<String>,
    /// The plan; its sink topic is a placeholder that is never written.
    pub pipeline: Pipeline,
}

/// How a result row changes the result, as Flink's `RowKind` (shown as the `op` column of
/// its tableau result mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    /// The row as it was before an update (followed by its `UpdateAfter`).
    UpdateBefore,
    UpdateAfter,
    Delete,
}

impl ChangeKind {
    /// `+I`, `-U`, `+U` or `-D`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "+I",
            ChangeKind::UpdateBefore => "-U",
            ChangeKind::UpdateAfter => "+U",
            ChangeKind::Delete => "-D",
        }
    }
}

/// Turns a query's events into rows with their change kind. An updating result arrives as
/// upserts and tombstones by key; this remembers each key's current row (as the result
/// table does), so an upsert of a known key becomes `-U` (the old row) and `+U`, and a
/// tombstone `-D` with the deleted row.
#[derive(Debug, Default)]
pub struct Changelog {
    updating: bool,
    current: HashMap<Vec<u8>, Vec<Value>>,
}

impl Changelog {
    /// For the results of `query`.
    pub fn new(query: &SqlQuery) -> Changelog {
        Changelog {
            updating: query.updating,
            current: HashMap::new(),
        }
    }

    /// The rows one event means, in order (values in column order, encoded as the JSON a
    /// sink would write: timestamps as text, decimals as numbers).
    pub fn rows(&mut self, e: Event) -> Vec<(ChangeKind, Vec<Value>)> {
        let row = match e.value {
            Value::Object(fields) => Some(fields.into_iter().map(|(_, v)| v).collect()),
            Value::Null => None,
            other => Some(vec![other]),
        };
        if !self.updating {
            return row.map(|r| (ChangeKind::Insert, r)).into_iter().collect();
        }
        // No key: a global aggregate, one group.
        let key = e.key.map(|k| k.to_vec()).unwrap_or_default();
        match row {
            Some(new) => match self.current.insert(key, new.clone()) {
                Some(old) => vec![
                    (ChangeKind::UpdateBefore, old),
                    (ChangeKind::UpdateAfter, new),
                ],
                None => vec![(ChangeKind::Insert, new)],
            },
            None => self
                .current
                .remove(&key)
                .map(|old| (ChangeKind::Delete, old))
                .into_iter()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::{ChangeKind, Changelog};
    use crate::event::Event;
    use crate::sql::{Catalog, Session};
    use crate::value::Value;

    fn session() -> Session {
        let mut s = Session::new(Catalog::default());
        s.execute(
            "CREATE TABLE t (a BIGINT, b VARCHAR, ts TIMESTAMP(3))
             WITH ('connector' = 'kafka', 'topic' = 't', 'format' = 'json');",
        )
        .expect("valid DDL");
        s
    }

    #[test]
    fn a_select_plans_its_own_columns_limit_and_kind() {
        let s = session();
        let q = s
            .plan_query("SELECT b, a + 1 AS a1 FROM t WHERE a > 0 LIMIT 5")
            .expect("plans");
        let cols: Vec<String> = q.columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
        assert_eq!(cols, ["b STRING", "a1 BIGINT"]);
        assert_eq!((q.updating, q.limit), (false, Some(5)));
        assert_eq!(q.input_topics, ["t"]);
        let q = s
            .plan_query("SELECT COUNT(*) AS n FROM t GROUP BY b")
            .expect("plans");
        assert!(q.updating);
        assert_eq!(q.limit, None);
    }

    #[test]
    fn a_select_is_refused_with_its_place() {
        let s = session();
        for (sql, want) in [
            (
                "SELECT a FROM t LIMIT 2 OFFSET 1",
                "line 1, column 1: 'LIMIT 2 OFFSET 1'",
            ),
            (
                "SELECT a FROM t LIMIT -1",
                "LIMIT -1: expected a non-negative whole number",
            ),
            (
                "SELECT a FROM t;\nSELECT b FROM t",
                "line 2, column 1: expected exactly one",
            ),
            (
                "SELECT a\n  FROM nope",
                "line 2, column 8: table 'nope' does not exist",
            ),
            ("SELECT a FROM t ORDER BY a", "ORDER BY is not supported"),
            (
                "DROP TABLE t",
                "line 1, column 1: expected a SELECT query, not DROP",
            ),
        ] {
            let e = s.plan_query(sql).expect_err(sql).to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
        assert!(s.catalog().table("t").is_some(), "planning changed nothing");
    }

    fn event(key: Option<&str>, value: Value) -> Event {
        Event {
            key: key.map(|k| Bytes::from(k.to_string())),
            value,
            timestamp: 0,
            headers: Vec::new(),
            input: 0,
            partition: -1,
            offset: -1,
            raw: None,
        }
    }

    fn row(n: i64) -> Value {
        Value::Object(vec![(Arc::from("n"), Value::Int(n))])
    }

    #[test]
    fn upserts_become_inserts_updates_and_deletes() {
        let mut c = Changelog {
            updating: true,
            ..Changelog::default()
        };
        let kinds = |rows: Vec<(ChangeKind, Vec<Value>)>| -> Vec<String> {
            rows.into_iter()
                .map(|(k, r)| format!("{} {}", k.as_str(), Value::List(r)))
                .collect()
        };
        assert_eq!(kinds(c.rows(event(Some("a"), row(1)))), ["+I [1]"]);
        assert_eq!(kinds(c.rows(event(Some("b"), row(7)))), ["+I [7]"]);
        assert_eq!(
            kinds(c.rows(event(Some("a"), row(2)))),
            ["-U [1]", "+U [2]"]
        );
        assert_eq!(kinds(c.rows(event(Some("a"), Value::Null))), ["-D [2]"]);
        assert!(
            c.rows(event(Some("a"), Value::Null)).is_empty(),
            "nothing to delete"
        );
        assert_eq!(kinds(c.rows(event(Some("a"), row(3)))), ["+I [3]"]);
        // Append-only: every row an insert, keys or not.
        let mut c = Changelog::default();
        assert_eq!(kinds(c.rows(event(Some("a"), row(1)))), ["+I [1]"]);
        assert_eq!(kinds(c.rows(event(Some("a"), row(1)))), ["+I [1]"]);
    }
}

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

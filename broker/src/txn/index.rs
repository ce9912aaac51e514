//! Per-partition transaction index: the first offset of every producer's open transaction
//! (which gives the last stable offset) and the aborted transactions (which `read_committed`
//! fetches return so clients can drop aborted records).
//!
//! The partition writer updates it as batches are appended (and when it rebuilds its state
//! from the log at start-up); readers see a published [`TxnView`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One aborted transaction in one partition: its data lies in `first_offset..last_offset`
/// and `last_offset` is the offset of its ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AbortedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    pub(crate) last_offset: i64,
}

/// What the writer knows about transactions in its partition.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct TxnIndex {
    /// Producer id -> offset of its open transaction's first batch here.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (so `last_offset` increases).
    aborted: Vec<AbortedTxn>,
    /// The aborted list changed since it was last published.
    #[serde(skip)]
    aborted_changed: bool,
}

/// What readers of a partition see: the last stable offset and the aborted transactions.
/// Published by the writer after each round. A view older than the log is conservative: the
/// LSO only grows, so an old one hides more, never less.
#[derive(Debug, Clone, Default)]
pub(crate) struct TxnView {
    pub(crate) lso: i64,
    pub(crate) aborted: Arc<Vec<AbortedTxn>>,
}

impl TxnView {
    /// Aborted transactions that have data in `from..to` (offsets).
    pub(crate) fn aborted_in(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }
}

impl TxnIndex {
    /// A transactional data batch of `producer_id` was appended at `offset`.
    pub(crate) fn data(&mut self, producer_id: i64, offset: i64) {
        self.ongoing.entry(producer_id).or_insert(offset);
    }

    /// A COMMIT or ABORT marker of `producer_id` was appended at `marker_offset`. A marker
    /// for a producer with no data here (the partition was added but never written) ends
    /// nothing.
    pub(crate) fn marker(&mut self, producer_id: i64, marker_offset: i64, abort: bool) {
        if let Some(first) = self.ongoing.remove(&producer_id) {
            if abort {
                self.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset: first,
                    last_offset: marker_offset,
                });
                self.aborted_changed = true;
            }
        }
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the log
    /// end when none is open.
    pub(crate) fn lso(&self, log_end: i64) -> i64 {
        self.ongoing
            .values()
            .copied()
            .min()
            .unwrap_or(log_end)
            .min(log_end)
    }

    /// The first offset of `producer_id`'s open transaction here, if any.
    pub(crate) fn open_since(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// Forgets aborted transactions entirely below the log start (deleted by retention).
    pub(crate) fn prune(&mut self, log_start: i64) {
        let before = self.aborted.len();
        self.aborted.retain(|a| a.last_offset >= log_start);
        if self.aborted.len() != before {
            self.aborted_changed = true;
        }
    }

    /// The view readers should see now; reuses `previous`'s aborted list if unchanged.
    pub(crate) fn view(&mut self, log_end: i64, previous: &TxnView) -> TxnView {
        let aborted = if self.aborted_changed || previous.aborted.len() != self.aborted.len() {
            self.aborted_changed = false;
            Arc::new(self.aborted.clone())
        } else {
            previous.aborted.clone()
        };
        TxnView {
            lso: self.lso(log_end),
            aborted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_follows_the_oldest_open_transaction() {
        let mut ix = TxnIndex::default();
        assert_eq!(ix.lso(10), 10);
        ix.data(1, 10);
        ix.data(1, 12);
        ix.data(2, 11);
        assert_eq!(ix.lso(20), 10);
        ix.marker(1, 20, false);
        assert_eq!(ix.lso(21), 11);
        ix.marker(2, 21, true);
        assert_eq!(ix.lso(22), 22);
        let v = ix.view(22, &TxnView::default());
        assert_eq!(v.lso, 22);
        assert_eq!(
            v.aborted.as_slice(),
            &[AbortedTxn {
                producer_id: 2,
                first_offset: 11,
                last_offset: 21
            }]
        );
        // Fetches that overlap the aborted range get it, others don't.
        assert_eq!(v.aborted_in(0, 11).len(), 0);
        assert_eq!(v.aborted_in(0, 12).len(), 1);
        assert_eq!(v.aborted_in(21, 30).len(), 1);
        assert_eq!(v.aborted_in(22, 30).len(), 0);
        // A marker without data here ends nothing.
        ix.marker(3, 22, true);
        assert_eq!(ix.view(23, &v).aborted.len(), 1);
        ix.prune(22);
        assert_eq!(ix.view(23, &v).aborted.len(), 0);
    }
}

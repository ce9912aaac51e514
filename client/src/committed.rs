//! `read_committed`: which batches of a fetched (or locally read) range belong to aborted
//! transactions. The broker lists the aborted transactions that overlap the range as
//! (producer id, first offset); walking the batches in order, a producer becomes "aborted"
//! once the walk reaches its transaction's first offset and stops being so at its next control
//! batch (the transaction's ABORT marker). Its transactional batches in between are dropped;
//! control batches are never records. This is the Java consumer's algorithm.

use std::collections::{HashSet, VecDeque};

use eddy_protocol::batch::BatchHeader;

/// One aborted transaction that overlaps a fetched range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// Decides, batch by batch in offset order, whether a batch is aborted data.
#[derive(Debug, Default)]
pub struct AbortFilter {
    /// Not reached yet, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producers whose aborted transaction the walk is inside.
    active: HashSet<i64>,
}

impl AbortFilter {
    pub fn new(mut aborted: Vec<AbortedTxn>) -> AbortFilter {
        aborted.sort_by_key(|a| a.first_offset);
        AbortFilter {
            pending: aborted.into(),
            active: HashSet::new(),
        }
    }

    /// True when the batch must not be read: a control batch, or data of an aborted
    /// transaction.
    pub fn skip(&mut self, h: &BatchHeader<'_>) -> bool {
        while let Some(a) = self.pending.front() {
            if a.first_offset > h.last_offset() {
                break;
            }
            self.active.insert(a.producer_id);
            self.pending.pop_front();
        }
        if h.is_control() {
            // The marker ending this producer's transaction.
            self.active.remove(&h.producer_id());
            return true;
        }
        h.is_transactional() && self.active.contains(&h.producer_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_protocol::batch::{build_batch, set_producer};

    /// A one-record batch at `offset` by `pid`; transactional and/or control as asked.
    fn batch(offset: i64, pid: i64, txn: bool, control: bool) -> Vec<u8> {
        let mut b = build_batch(offset, 0, &[b"x"]);
        set_producer(&mut b, pid, 0, 0);
        let mut attrs = i16::from_be_bytes([b[21], b[22]]);
        if txn {
            attrs |= 0x10;
        }
        if control {
            attrs |= 0x20;
        }
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        b
    }

    #[test]
    fn aborted_data_is_skipped_until_its_marker_and_committed_data_kept() {
        // pid 1: aborted txn at 0..=2 (marker at 2), then a committed txn at 3..=4.
        // pid 2: committed txn interleaved at 1 (marker at 5). Plain batch at 6.
        let log = [
            batch(0, 1, true, false),
            batch(1, 2, true, false),
            batch(2, 1, true, true),
            batch(3, 1, true, false),
            batch(4, 1, true, true),
            batch(5, 2, true, true),
            batch(6, -1, false, false),
        ];
        let mut f = AbortFilter::new(vec![AbortedTxn {
            producer_id: 1,
            first_offset: 0,
        }]);
        let kept: Vec<i64> = log
            .iter()
            .filter_map(|b| {
                let h = BatchHeader::parse(b).expect("valid batch");
                (!f.skip(&h)).then(|| h.base_offset())
            })
            .collect();
        assert_eq!(kept, vec![1, 3, 6]);
    }
}

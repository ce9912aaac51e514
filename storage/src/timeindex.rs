//! The sparse time index (`.timeindex`): 12-byte big-endian entries
//! `(max_timestamp: i64, relative_offset: u32)`, written together with each offset-index entry.
//! `max_timestamp` is the largest batch max timestamp in the segment up to and including the
//! batch at `relative_offset`, so it never decreases. That gives the lookup its guarantee: if
//! an entry's timestamp is below a target, no batch up to that entry reaches the target, and
//! the scan can start there.

use crate::index::be_u32;

/// Size of one time-index entry in bytes.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// One time-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// Largest timestamp in the segment up to and including the batch at `rel`.
    pub(crate) max_ts: i64,
    /// Batch base offset minus the segment's base offset (also in the offset index).
    pub(crate) rel: u32,
}

impl TimeEntry {
    pub(crate) fn encode(self) -> [u8; TIME_ENTRY_LEN] {
        let mut b = [0u8; TIME_ENTRY_LEN];
        b[..8].copy_from_slice(&self.max_ts.to_be_bytes());
        b[8..].copy_from_slice(&self.rel.to_be_bytes());
        b
    }
}

/// A read-only view of time-index bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeIndex<'a>(pub(crate) &'a [u8]);

impl TimeIndex<'_> {
    pub(crate) fn len(&self) -> usize {
        self.0.len() / TIME_ENTRY_LEN
    }
    pub(crate) fn entry(&self, i: usize) -> TimeEntry {
        let at = i * TIME_ENTRY_LEN;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&self.0[at..at + 8]);
        TimeEntry {
            max_ts: i64::from_be_bytes(ts),
            rel: be_u32(&self.0[at + 8..]),
        }
    }
    pub(crate) fn last(&self) -> Option<TimeEntry> {
        self.len().checked_sub(1).map(|i| self.entry(i))
    }
    /// Number of leading entries whose timestamp is `< ts` (binary search).
    pub(crate) fn count_below(&self, ts: i64) -> usize {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).max_ts < ts {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
    /// The last entry whose timestamp is strictly below `ts`: every batch up to and including
    /// the one at its offset is older than `ts`.
    pub(crate) fn last_below(&self, ts: i64) -> Option<TimeEntry> {
        self.count_below(ts).checked_sub(1).map(|i| self.entry(i))
    }
    /// Cheap checks at open: whole entries, the same count as the offset index, and a last
    /// entry that agrees with the offset index's last entry.
    pub(crate) fn sanity_check(
        &self,
        offset_entries: usize,
        last_rel: Option<u32>,
    ) -> Result<(), String> {
        if self.len() * TIME_ENTRY_LEN != self.0.len() {
            return Err(format!(
                "time index is {} bytes, not a whole number of {TIME_ENTRY_LEN}-byte entries",
                self.0.len()
            ));
        }
        if self.len() != offset_entries {
            return Err(format!(
                "time index has {} entries but the offset index has {offset_entries}",
                self.len()
            ));
        }
        if self.last().map(|e| e.rel) != last_rel {
            return Err("the last time index entry does not match the offset index".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(i64, u32)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(max_ts, rel)| TimeEntry { max_ts, rel }.encode())
            .collect()
    }

    #[test]
    fn last_below_is_strict() {
        let bytes = index(&[(100, 3), (100, 6), (250, 9), (300, 12)]);
        let t = TimeIndex(&bytes);
        assert_eq!(t.last_below(50), None);
        assert_eq!(t.last_below(100), None);
        assert_eq!(
            t.last_below(101),
            Some(TimeEntry {
                max_ts: 100,
                rel: 6
            })
        );
        assert_eq!(
            t.last_below(250),
            Some(TimeEntry {
                max_ts: 100,
                rel: 6
            })
        );
        assert_eq!(
            t.last_below(251),
            Some(TimeEntry {
                max_ts: 250,
                rel: 9
            })
        );
        assert_eq!(
            t.last_below(i64::MAX),
            Some(TimeEntry {
                max_ts: 300,
                rel: 12
            })
        );
    }

    #[test]
    fn sanity_check_compares_with_offset_index() {
        let bytes = index(&[(1, 3), (2, 6)]);
        let t = TimeIndex(&bytes);
        assert!(t.sanity_check(2, Some(6)).is_ok());
        assert!(t.sanity_check(3, Some(6)).is_err());
        assert!(t.sanity_check(2, Some(7)).is_err());
        assert!(TimeIndex(&bytes[..13]).sanity_check(1, Some(3)).is_err());
    }
}

//! The sparse offset index (`.index`): 8-byte big-endian entries
//! `(relative_offset: u32, position: u32)`, where `relative_offset` is a batch's base offset
//! minus the segment's base offset and `position` is the byte position of that batch in the
//! `.log` file. Entries are strictly increasing in both fields. One entry is written for the
//! first batch that starts after at least `index_interval_bytes` of log since the previous
//! entry (the segment's first batch is implicitly at position 0 and has no entry).

use std::ops::Deref;

use crate::mmap::MappedFile;
use crate::timeindex::{TimeEntry, TIME_ENTRY_LEN};

/// Size of one offset-index entry in bytes.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;

/// One offset-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Batch base offset minus the segment's base offset.
    pub(crate) rel: u32,
    /// Byte position of the batch in the `.log` file.
    pub(crate) pos: u32,
}

impl OffsetEntry {
    pub(crate) fn encode(self) -> [u8; OFFSET_ENTRY_LEN] {
        let mut b = [0u8; OFFSET_ENTRY_LEN];
        b[..4].copy_from_slice(&self.rel.to_be_bytes());
        b[4..].copy_from_slice(&self.pos.to_be_bytes());
        b
    }
}

pub(crate) fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// The bytes of an index: in memory (the active segment, or any segment when the I/O backend
/// cannot map files) or memory-mapped (sealed segments on real files).
#[derive(Debug)]
pub(crate) enum IndexBytes {
    Owned(Vec<u8>),
    Mapped(MappedFile),
}

impl Deref for IndexBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            IndexBytes::Owned(v) => v,
            IndexBytes::Mapped(m) => m,
        }
    }
}

/// A read-only view of offset-index bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OffsetIndex<'a>(pub(crate) &'a [u8]);

impl OffsetIndex<'_> {
    pub(crate) fn len(&self) -> usize {
        self.0.len() / OFFSET_ENTRY_LEN
    }
    pub(crate) fn entry(&self, i: usize) -> OffsetEntry {
        let at = i * OFFSET_ENTRY_LEN;
        OffsetEntry {
            rel: be_u32(&self.0[at..]),
            pos: be_u32(&self.0[at + 4..]),
        }
    }
    pub(crate) fn last(&self) -> Option<OffsetEntry> {
        self.len().checked_sub(1).map(|i| self.entry(i))
    }
    /// The last entry whose relative offset is `<= rel` (binary search), if any.
    pub(crate) fn floor(&self, rel: u32) -> Option<OffsetEntry> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).rel <= rel {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.entry(i))
    }
    /// Cheap structural checks run when trusting an index at open (not a full scan, so that
    /// opening a large log stays cheap): whole entries, and a last entry inside the log.
    pub(crate) fn sanity_check(&self, log_len: u64) -> Result<(), String> {
        if self.len() * OFFSET_ENTRY_LEN != self.0.len() {
            return Err(format!(
                "offset index is {} bytes, not a whole number of {OFFSET_ENTRY_LEN}-byte entries",
                self.0.len()
            ));
        }
        if let Some(last) = self.last() {
            if u64::from(last.pos) >= log_len {
                return Err(format!(
                    "last offset index entry points at byte {} but the log has {log_len} bytes",
                    last.pos
                ));
            }
            if self.len() > 1 && self.entry(self.len() - 2).rel >= last.rel {
                return Err("offset index entries are not increasing".to_owned());
            }
        }
        Ok(())
    }
}

/// Decides where index entries go; shared by `append` and by recovery's rebuild so both
/// produce identical indexes.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    interval: u64,
    /// Log bytes appended since the last entry (or since the segment start).
    bytes_since_entry: u64,
    /// Largest batch max timestamp seen in the segment so far (-1: none yet).
    max_ts: i64,
}

impl IndexBuilder {
    pub(crate) fn new(interval: u32) -> Self {
        IndexBuilder {
            interval: u64::from(interval.max(1)),
            bytes_since_entry: 0,
            max_ts: -1,
        }
    }
    /// Resumes after existing entries: `end` is the log size, `last_pos` the position of the
    /// last entry (0 if none), `max_ts` the segment's max timestamp so far.
    pub(crate) fn resume(interval: u32, end: u64, last_pos: u64, max_ts: i64) -> Self {
        IndexBuilder {
            interval: u64::from(interval.max(1)),
            bytes_since_entry: end.saturating_sub(last_pos),
            max_ts,
        }
    }
    pub(crate) fn set_interval(&mut self, interval: u32) {
        self.interval = u64::from(interval.max(1));
    }
    pub(crate) fn max_ts(&self) -> i64 {
        self.max_ts
    }
    /// Accounts for a batch about to be written at `pos`; returns the entries to write, if
    /// this batch gets one.
    pub(crate) fn on_batch(
        &mut self,
        rel: u32,
        pos: u32,
        size: u64,
        max_ts: i64,
    ) -> Option<(OffsetEntry, TimeEntry)> {
        self.max_ts = self.max_ts.max(max_ts);
        let entry = (self.bytes_since_entry >= self.interval).then(|| {
            self.bytes_since_entry = 0;
            (
                OffsetEntry { rel, pos },
                TimeEntry {
                    max_ts: self.max_ts,
                    rel,
                },
            )
        });
        self.bytes_since_entry += size;
        entry
    }
}

/// Whether one more entry fits in index files of at most `max_bytes`.
pub(crate) fn index_has_room(entries: usize, max_bytes: u32) -> bool {
    let max = max_bytes as usize;
    (entries + 1) * OFFSET_ENTRY_LEN <= max && (entries + 1) * TIME_ENTRY_LEN <= max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(u32, u32)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(rel, pos)| OffsetEntry { rel, pos }.encode())
            .collect()
    }

    #[test]
    fn floor_finds_last_entry_at_or_below() {
        let bytes = index(&[(10, 100), (20, 200), (30, 300)]);
        let idx = OffsetIndex(&bytes);
        assert_eq!(idx.floor(5), None);
        assert_eq!(idx.floor(10), Some(OffsetEntry { rel: 10, pos: 100 }));
        assert_eq!(idx.floor(19), Some(OffsetEntry { rel: 10, pos: 100 }));
        assert_eq!(idx.floor(20), Some(OffsetEntry { rel: 20, pos: 200 }));
        assert_eq!(idx.floor(u32::MAX), Some(OffsetEntry { rel: 30, pos: 300 }));
        assert_eq!(OffsetIndex(&[]).floor(3), None);
    }

    #[test]
    fn floor_agrees_with_linear_search() {
        let entries: Vec<(u32, u32)> = (0..257).map(|i| (i * 3 + 1, i * 100)).collect();
        let bytes = index(&entries);
        let idx = OffsetIndex(&bytes);
        for target in 0..800u32 {
            let expected = entries
                .iter()
                .rev()
                .find(|e| e.0 <= target)
                .map(|&(rel, pos)| OffsetEntry { rel, pos });
            assert_eq!(idx.floor(target), expected, "target {target}");
        }
    }

    #[test]
    fn sanity_check_rejects_partial_entries_and_out_of_range_positions() {
        let bytes = index(&[(1, 10), (2, 20)]);
        assert!(OffsetIndex(&bytes).sanity_check(21).is_ok());
        assert!(OffsetIndex(&bytes).sanity_check(20).is_err());
        assert!(OffsetIndex(&bytes[..12]).sanity_check(100).is_err());
        let bad = index(&[(5, 10), (2, 20)]);
        assert!(OffsetIndex(&bad).sanity_check(100).is_err());
    }

    #[test]
    fn builder_indexes_once_per_interval() {
        let mut b = IndexBuilder::new(100);
        let mut entries = Vec::new();
        let mut pos = 0u32;
        for rel in 0..10u32 {
            if let Some((o, _)) = b.on_batch(rel, pos, 40, i64::from(rel)) {
                entries.push(o);
            }
            pos += 40;
        }
        // 40-byte batches, interval 100: entries at the batch after >= 100 bytes.
        assert_eq!(
            entries,
            vec![
                OffsetEntry { rel: 3, pos: 120 },
                OffsetEntry { rel: 6, pos: 240 },
                OffsetEntry { rel: 9, pos: 360 },
            ]
        );
    }
}

//! Deleting whole old segments: retention by time and size, and DeleteRecords.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::error::{Result, StorageError};
use crate::log::PartitionLog;
use crate::segment::Segment;

/// Why a segment was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionReason {
    /// Its largest timestamp is older than `retention_ms`.
    Time,
    /// The log was larger than `retention_bytes` without it.
    Size,
    /// It lies wholly below the log start offset (after DeleteRecords).
    LogStart,
}

/// One deleted segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedSegment {
    /// Its base offset (and file name).
    pub base_offset: i64,
    /// Offset after its last batch.
    pub next_offset: i64,
    /// Size of its `.log` file.
    pub size_bytes: u64,
    /// Its largest timestamp (-1 if none).
    pub max_timestamp: i64,
    pub reason: RetentionReason,
}

/// What [`PartitionLog::enforce_retention`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted: Vec<DeletedSegment>,
    /// Whether the active segment was rolled because all of its data had expired.
    pub rolled_active: bool,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

impl fmt::Display for RetentionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.deleted.is_empty() {
            return write!(f, "No segment was due for deletion.");
        }
        if self.rolled_active {
            write!(
                f,
                "All data had expired, so the active segment was rolled first. "
            )?;
        }
        for d in &self.deleted {
            let why = match d.reason {
                RetentionReason::Time => "its newest record is older than retention.ms",
                RetentionReason::Size => "the log exceeded retention.bytes",
                RetentionReason::LogStart => "it lies below the log start offset",
            };
            write!(
                f,
                "Deleted segment {} (offsets {} to {}, {} bytes) because {why}. ",
                d.base_offset,
                d.base_offset,
                d.next_offset - 1,
                d.size_bytes
            )?;
        }
        write!(f, "The log now starts at offset {}.", self.log_start_offset)
    }
}

impl PartitionLog {
    /// Deletes whole segments past `retention_ms` (by their largest timestamp, relative to
    /// `now_ms`) or beyond `retention_bytes` (oldest first, while the rest still meets the
    /// limit), and segments wholly below the log start offset. The active segment is only
    /// deleted (after rolling a new, empty one) when all of its data has expired by time.
    /// With `config.delete` false (a compact-only topic) only the last kind is deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionReport> {
        self.check_ok()?;
        self.retention_inner(now_ms).inspect_err(|e| self.latch(e))
    }

    fn retention_inner(&mut self, now_ms: i64) -> Result<RetentionReport> {
        let n = self.segments.len();
        let mut reasons = Vec::new();
        while reasons.len() + 1 < n
            && self.segments[reasons.len() + 1].base_offset <= self.log_start
        {
            reasons.push(RetentionReason::LogStart);
        }
        let mut roll_active = false;
        // `delete: false` (cleanup.policy=compact alone): only DeleteRecords removes data.
        let retention_ms = self.config.retention_ms.filter(|_| self.config.delete);
        let retention_bytes = self.config.retention_bytes.filter(|_| self.config.delete);
        if let Some(ms) = retention_ms {
            let cutoff = now_ms.saturating_sub(ms);
            while reasons.len() < n {
                let k = reasons.len();
                let seg = &self.segments[k];
                let ts = seg.max_timestamp();
                let is_active = k + 1 == n;
                let expired = if seg.is_empty() {
                    !is_active // an empty sealed segment holds nothing to keep
                } else {
                    ts >= 0 && ts < cutoff
                };
                if !expired {
                    break;
                }
                roll_active = is_active;
                reasons.push(RetentionReason::Time);
            }
        }
        if let Some(limit) = retention_bytes {
            let mut total: u64 = self.segments[reasons.len()..]
                .iter()
                .map(|s| s.committed_pos())
                .sum();
            while reasons.len() + 1 < n {
                let size = self.segments[reasons.len()].committed_pos();
                if total - size < limit {
                    break;
                }
                total -= size;
                reasons.push(RetentionReason::Size);
            }
        }
        if reasons.is_empty() {
            return Ok(RetentionReport {
                log_start_offset: self.log_start,
                ..RetentionReport::default()
            });
        }
        if roll_active {
            self.roll()?;
        }
        let doomed: Vec<Arc<Segment>> = self.segments.drain(..reasons.len()).collect();
        self.after_drain();
        let deleted = doomed
            .iter()
            .zip(reasons)
            .map(|(s, reason)| DeletedSegment {
                base_offset: s.base_offset,
                next_offset: s.next_offset(),
                size_bytes: s.committed_pos(),
                max_timestamp: s.max_timestamp(),
                reason,
            })
            .collect();
        self.remove_files(&doomed)?;
        Ok(RetentionReport {
            deleted,
            rolled_active: roll_active,
            log_start_offset: self.log_start,
        })
    }

    /// Kafka's DeleteRecords: moves the log start offset up to `offset` (persisted atomically
    /// before anything is deleted, so it survives a restart) and deletes segments wholly below
    /// it. Returns the new log start offset. `offset` beyond the log end is out of range.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        self.check_ok()?;
        let end = self.log_end_offset();
        if offset > end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: self.log_start,
                end,
            });
        }
        if offset <= self.log_start {
            return Ok(self.log_start);
        }
        self.delete_records_inner(offset)
            .inspect_err(|e| self.latch(e))?;
        Ok(self.log_start)
    }

    fn delete_records_inner(&mut self, offset: i64) -> Result<()> {
        let previous = self.log_start;
        self.log_start = offset;
        if let Err(e) = self.write_checkpoint(false) {
            self.log_start = previous;
            return Err(e);
        }
        let mut k = 0;
        while k + 1 < self.segments.len() && self.segments[k + 1].base_offset <= offset {
            k += 1;
        }
        let doomed: Vec<Arc<Segment>> = self.segments.drain(..k).collect();
        self.after_drain();
        self.remove_files(&doomed)
    }

    /// Publishes the shortened segment list (readers holding the old one keep reading it).
    fn after_drain(&mut self) {
        if let Some(first) = self.segments.first() {
            self.log_start = self.log_start.max(first.base_offset);
        }
        self.publish();
    }

    /// Removes segment files (the `.log` first: an index without its log is cleaned up at open,
    /// a log without its index would be rebuilt and resurrected) and fsyncs the directory.
    fn remove_files(&mut self, doomed: &[Arc<Segment>]) -> Result<()> {
        if doomed.is_empty() {
            return Ok(());
        }
        for seg in doomed {
            for path in [&seg.paths.log, &seg.paths.index, &seg.paths.timeindex] {
                match self.io.remove(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StorageError::io("delete", path, e)),
                }
                self.unsynced.retain(|(p, _)| p != path);
            }
            tracing::info!(dir = %self.dir.display(), base = seg.base_offset, "deleted segment");
        }
        self.io
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("fsync directory", &self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use eddy_protocol::batch::build_batch;

    use crate::sim::SimIo;
    use crate::{LogConfig, PartitionLog};

    #[test]
    fn a_reader_holding_a_deleted_segment_can_still_read_it() {
        let io = SimIo::new();
        let config = LogConfig {
            segment_bytes: 1024,
            retention_ms: Some(10),
            ..LogConfig::default()
        };
        let dir = std::path::Path::new("/p");
        let (mut log, _) = PartitionLog::open_with_io(dir, config, io.as_io()).expect("open");
        let mut first = build_batch(0, 5, &[&[7u8; 300]]);
        log.append(&mut first).expect("append");
        for _ in 0..10 {
            log.append(&mut build_batch(0, 5, &[&[1u8; 300]]))
                .expect("append");
        }
        // A reader in the middle of a read holds this view.
        let view = log.shared.view();
        let report = log.enforce_retention(1_000_000).expect("retention");
        assert!(report.rolled_active);
        assert!(
            io.read_file(&view.segments[0].paths.log).is_none(),
            "file deleted"
        );
        let bytes = view.segments[0]
            .read_bytes(0, first.len())
            .expect("still readable");
        assert_eq!(bytes, first);
        assert_eq!(log.reader().log_start_offset(), 11);
    }
}

//! Per-partition log settings, named after Kafka's topic configs.

/// Settings of one partition log. Kafka's names: `segment.bytes`, `segment.ms`,
/// `retention.ms`, `retention.bytes`, `index.interval.bytes`, `segment.index.bytes`, and for
/// compaction `cleanup.policy` (split into [`compact`](Self::compact) and
/// [`delete`](Self::delete)), `delete.retention.ms` and `min.compaction.lag.ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before one would grow past this many bytes (capped at 2 GiB − 1,
    /// because index positions are 32-bit).
    pub segment_bytes: u64,
    /// Roll when a batch's max timestamp is more than this many ms after the max timestamp of
    /// the active segment's first batch. `None`: never roll by time.
    pub segment_ms: Option<i64>,
    /// Delete segments whose largest timestamp is older than this. `None`: keep forever.
    pub retention_ms: Option<i64>,
    /// Delete the oldest segments while the log would stay at or above this size. `None`: no
    /// size limit.
    pub retention_bytes: Option<u64>,
    /// Bytes of log between sparse index entries; reads scan at most about this much.
    pub index_interval_bytes: u32,
    /// Largest size of an index file; the segment rolls when its indexes are full.
    pub segment_index_bytes: u32,
    /// `cleanup.policy` contains `compact`: [`crate::PartitionLog::compaction_plan`] keeps only
    /// the latest record per key in sealed segments. Off by default.
    pub compact: bool,
    /// `cleanup.policy` contains `delete`: `enforce_retention` deletes segments by
    /// `retention_ms` and `retention_bytes`. When false only segments wholly below the log
    /// start offset (after DeleteRecords) are deleted. On by default.
    pub delete: bool,
    /// `delete.retention.ms`: how long compaction keeps a tombstone (a record with a null value)
    /// after its batch's max timestamp, so consumers that read slowly still see the delete.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this (by timestamp, against the `now_ms`
    /// given to compaction) are never compacted, nor is anything after them.
    pub min_compaction_lag_ms: i64,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const WEEK_MS: i64 = 7 * DAY_MS;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(WEEK_MS),
            retention_ms: Some(WEEK_MS),
            retention_bytes: None,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            compact: false,
            delete: true,
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
        }
    }
}

/// Largest segment (and batch) size: positions in the offset index are 32-bit, and Kafka
/// caps `segment.bytes` at `i32::MAX` too.
pub(crate) const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

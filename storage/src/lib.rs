//! Eddy's storage engine: a Kafka-style segmented log per partition, synchronous (the broker
//! runs one writer task per partition and calls in from its blocking pool).
//!
//! A partition directory holds segments named by their 20-digit base offset: `N.log` (record
//! batches exactly as appended), `N.index` (sparse offset → position) and `N.timeindex`
//! (sparse timestamp → offset), plus `partition.checkpoint` (log start offset, recovery point,
//! clean-shutdown flag). The format, durability assumptions and recovery algorithm are written
//! down in `docs/storage.md`.
//!
//! - [`PartitionLog`] is the single writer: [`append`](PartitionLog::append) (page cache),
//!   [`flush`](PartitionLog::flush) (fsync), retention, DeleteRecords, [`close`](PartitionLog::close).
//! - [`LogReader`] reads concurrently from any thread and never waits for an fsync.
//! - Compaction (`cleanup.policy=compact`) in three steps so the heavy part runs off the
//!   writer: [`PartitionLog::compaction_plan`], [`CompactionPlan::run`],
//!   [`PartitionLog::install_compaction`].
//! - All file I/O goes through [`Io`]/[`IoFile`]: [`StdIo`] for real files, [`sim::SimIo`] to
//!   inject faults and simulate crashes in tests.

mod checkpoint;
mod compaction;
mod config;
mod error;
mod index;
mod io;
mod log;
#[allow(unsafe_code)]
mod mmap;
mod reader;
mod records;
mod recovery;
mod retention;
mod segment;
pub mod sim;
mod timeindex;

pub use compaction::{CompactedSegments, CompactionPlan, CompactionReport};
pub use config::LogConfig;
pub use error::StorageError;
/// Test-only fault injection for the real binary; absent from release builds.
#[cfg(debug_assertions)]
pub use io::fault;
pub use io::{Io, IoFile, OpenMode, StdIo};
pub use log::{AppendInfo, PartitionLog, Reopen};
pub use mmap::MappedFile;
pub use reader::{LogReader, ReadResult};
pub use recovery::{RecoveryReport, RemovedSegment, Truncation};
pub use retention::{DeletedSegment, RetentionReason, RetentionReport};

#[cfg(test)]
mod tests {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn writer_is_send_and_readers_are_send_and_sync() {
        assert_send::<crate::PartitionLog>();
        assert_send::<crate::CompactionPlan>();
        assert_send::<crate::CompactedSegments>();
        assert_send_sync::<crate::LogReader>();
        assert_send_sync::<crate::sim::SimIo>();
    }
}

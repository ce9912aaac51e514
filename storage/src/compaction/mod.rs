//! Log compaction (`cleanup.policy=compact`): keep, in sealed segments, only the latest record
//! of each key, and drop tombstones once they are older than `delete.retention.ms`.
//!
//! Three steps, so the heavy work never blocks the partition's writer:
//!
//! 1. [`PartitionLog::compaction_plan`] (writer, cheap): picks the sealed segments to clean
//!    and holds `Arc`s of them, so their files stay readable whatever happens meanwhile.
//! 2. [`CompactionPlan::run`] (any thread, heavy): reads them twice (once to learn the latest
//!    offset of every key, once to filter), writes the result as `*.cleaned` files, fsynced.
//! 3. [`PartitionLog::install_compaction`] (writer, quick): checks the log still holds the
//!    planned segments, swaps the files in crash-safely and publishes the new segment list.
//!
//! What is kept, how batches are rewritten and the file-renaming protocol are described in
//! `docs/storage.md` ("Compaction"); `filter.rs` decides per batch, `run.rs` writes,
//! `install.rs` swaps (and finishes an interrupted swap at open).

mod filter;
mod install;
mod run;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Result, StorageError};
use crate::io::Io;
use crate::log::PartitionLog;
use crate::segment::{Segment, SegmentPaths};

pub(crate) use install::recover_interrupted;

/// The writer's compaction bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct CompactionState {
    /// Shared with the outstanding plan (and its result), if any: a second plan is not handed
    /// out while one is running, so two runs never write the same `.cleaned` files and an
    /// install never meets another run's temporary files.
    lease: Arc<()>,
    /// End offset of the range the last compaction left clean; nothing new to do until the
    /// cleanable range grows past it...
    clean_end: Option<i64>,
    /// ...or until this time, when the oldest tombstone kept for `delete.retention.ms` may go.
    recheck_at_ms: Option<i64>,
}

impl CompactionState {
    /// Forgets what was clean (after a configuration change: other rules may remove more).
    pub(crate) fn forget(&mut self) {
        self.clean_end = None;
        self.recheck_at_ms = None;
    }
}

/// The sealed segments one compaction will clean, and the settings it uses. Made by
/// [`PartitionLog::compaction_plan`]; run it with [`CompactionPlan::run`] on any thread.
#[derive(Debug)]
pub struct CompactionPlan {
    dir: PathBuf,
    io: Arc<dyn Io>,
    /// Oldest first; a prefix of the log's segment list, never the active segment. Holding
    /// the `Arc`s keeps the files readable even if retention deletes them meanwhile.
    segments: Vec<Arc<Segment>>,
    /// Tombstones in batches whose max timestamp is below this are removed.
    tombstone_cutoff: i64,
    delete_retention_ms: i64,
    /// Output segments are grouped to stay within this (`segment.bytes`).
    segment_bytes: u64,
    index_interval_bytes: u32,
    lease: Arc<()>,
}

impl CompactionPlan {
    /// How many sealed segments the plan covers.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// First offset of the planned range (the first segment's base offset).
    pub fn first_offset(&self) -> i64 {
        self.segments.first().map_or(0, |s| s.base_offset)
    }
    /// Offset just after the planned range (the base offset of the first segment after it).
    pub fn end_offset(&self) -> i64 {
        self.segments.last().map_or(0, |s| s.next_offset())
    }
    /// Bytes of log the plan will read (twice).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.committed_pos()).sum()
    }
}

/// One cleaned segment, written under temporary names and not yet installed.
#[derive(Debug)]
pub(crate) struct Output {
    /// The segment as it will be once installed (final paths; files opened under the
    /// `.cleaned` names, which stay the same files after renaming).
    pub(crate) seg: Arc<Segment>,
    pub(crate) cleaned: SegmentPaths,
}

/// Counts gathered while cleaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) records_kept: u64,
    pub(crate) records_removed: u64,
    pub(crate) tombstones_removed: u64,
    pub(crate) batches_unreadable: u64,
}

/// The result of [`CompactionPlan::run`]: cleaned segment files ready to be installed with
/// [`PartitionLog::install_compaction`]. Dropping it without installing deletes its files.
#[derive(Debug)]
pub struct CompactedSegments {
    io: Arc<dyn Io>,
    /// The planned segments the outputs replace.
    replaced: Vec<Arc<Segment>>,
    /// Oldest first. Empty when nothing needed to change (then nothing is swapped).
    outputs: Vec<Output>,
    counts: Counts,
    /// When a kept tombstone becomes old enough to remove (see `CompactionState`).
    recheck_at_ms: Option<i64>,
    lease: Arc<()>,
    /// Set once the files are no longer ours to delete on drop (installed, discarded, or left
    /// for recovery after a failure).
    settled: bool,
}

impl CompactedSegments {
    fn bytes_before(&self) -> u64 {
        self.replaced.iter().map(|s| s.committed_pos()).sum()
    }
    fn bytes_after(&self) -> u64 {
        if self.outputs.is_empty() {
            return self.bytes_before();
        }
        self.outputs.iter().map(|o| o.seg.committed_pos()).sum()
    }
    fn report(&self) -> CompactionReport {
        CompactionReport {
            segments_cleaned: if self.outputs.is_empty() {
                0
            } else {
                self.replaced.len()
            },
            segments_written: self.outputs.len(),
            first_offset: self.replaced.first().map_or(0, |s| s.base_offset),
            end_offset: self.replaced.last().map_or(0, |s| s.next_offset()),
            bytes_before: self.bytes_before(),
            bytes_after: self.bytes_after(),
            records_kept: self.counts.records_kept,
            records_removed: self.counts.records_removed,
            tombstones_removed: self.counts.tombstones_removed,
            batches_unreadable: self.counts.batches_unreadable,
            discarded: false,
            discard_reason: None,
        }
    }

    /// Deletes the `.cleaned` files (best effort: recovery removes any left behind).
    fn remove_files(&mut self) {
        self.settled = true;
        for o in &self.outputs {
            for path in o.cleaned.all() {
                if let Err(e) = self.io.remove(path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(file = %path.display(), error = %e,
                            "could not delete a compaction output; the next open removes it");
                    }
                }
            }
        }
    }
}

impl Drop for CompactedSegments {
    fn drop(&mut self) {
        if !self.settled {
            self.remove_files();
        }
    }
}

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Sealed segments replaced by cleaned ones (0 if nothing needed to change).
    pub segments_cleaned: usize,
    /// Cleaned segments written in their place (consecutive small ones are merged).
    pub segments_written: usize,
    /// The cleaned range of offsets: `first_offset` (inclusive) to `end_offset` (exclusive).
    pub first_offset: i64,
    pub end_offset: i64,
    /// Size of the range before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Records left in the range, and records removed from it (tombstones included).
    pub records_kept: u64,
    pub records_removed: u64,
    /// Tombstones removed because they were older than `delete.retention.ms`.
    pub tombstones_removed: u64,
    /// Batches whose records could not be read (kept unchanged).
    pub batches_unreadable: u64,
    /// The log changed under the plan (retention or DeleteRecords removed planned segments),
    /// so the output was deleted and nothing changed.
    pub discarded: bool,
    /// Why it was discarded.
    pub discard_reason: Option<String>,
}

impl fmt::Display for CompactionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(reason) = &self.discard_reason {
            return write!(f, "The compaction was discarded because {reason}.");
        }
        if self.end_offset <= self.first_offset {
            return write!(f, "No sealed segment was due for compaction.");
        }
        if self.segments_cleaned == 0 {
            return write!(
                f,
                "Nothing needed compacting in offsets {} to {} (exclusive).",
                self.first_offset, self.end_offset
            );
        }
        write!(
            f,
            "Compacted offsets {} to {} (exclusive): {} segment(s) of {} bytes became {} of {} \
             bytes; kept {} record(s), removed {} (of which {} tombstone(s)).",
            self.first_offset,
            self.end_offset,
            self.segments_cleaned,
            self.bytes_before,
            self.segments_written,
            self.bytes_after,
            self.records_kept,
            self.records_removed,
            self.tombstones_removed
        )?;
        if self.batches_unreadable > 0 {
            write!(
                f,
                " {} batch(es) could not be read and were kept unchanged.",
                self.batches_unreadable
            )?;
        }
        Ok(())
    }
}

impl PartitionLog {
    /// Plans a compaction at time `now_ms`: the sealed segments, oldest first, up to (not
    /// including) the first one holding a batch newer than `now_ms - min_compaction_lag_ms`.
    /// Cheap; the heavy work is [`CompactionPlan::run`].
    ///
    /// `None` when compaction is off, the log has latched after a failure, another plan is
    /// outstanding (not yet installed or dropped), nothing sealed is old enough, or nothing
    /// changed since the last compaction left the same range clean (no new sealed segment and
    /// no kept tombstone has reached `delete.retention.ms`).
    pub fn compaction_plan(&self, now_ms: i64) -> Option<CompactionPlan> {
        let state = &self.compaction;
        if !self.config.compact || self.failed.is_some() || Arc::strong_count(&state.lease) > 1 {
            return None;
        }
        let lag_cutoff = now_ms.saturating_sub(self.config.min_compaction_lag_ms.max(0));
        let sealed = &self.segments[..self.segments.len().saturating_sub(1)];
        let n = sealed
            .iter()
            .take_while(|s| s.max_timestamp() <= lag_cutoff)
            .count();
        let segments = sealed[..n].to_vec();
        let end = segments.last()?.next_offset();
        if segments.iter().all(|s| s.is_empty()) {
            return None;
        }
        let due = state.recheck_at_ms.is_some_and(|t| now_ms >= t);
        if state.clean_end.is_some_and(|clean| end <= clean) && !due {
            return None;
        }
        let delete_retention_ms = self.config.delete_retention_ms.max(0);
        Some(CompactionPlan {
            dir: self.dir.clone(),
            io: Arc::clone(&self.io),
            segments,
            tombstone_cutoff: now_ms.saturating_sub(delete_retention_ms),
            delete_retention_ms,
            segment_bytes: self.config.segment_bytes,
            index_interval_bytes: self.config.index_interval_bytes,
            lease: Arc::clone(&state.lease),
        })
    }

    /// Plans, runs and installs a compaction in-line (for tests and the CLI; the broker runs
    /// [`CompactionPlan::run`] off the writer). Reports "nothing needed compacting" when there
    /// is no plan.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionReport> {
        self.check_ok()?;
        match self.compaction_plan(now_ms) {
            None => Ok(CompactionReport::default()),
            Some(plan) => {
                let done = plan.run()?;
                self.install_compaction(done)
            }
        }
    }
}

fn compaction_error(dir: &std::path::Path, reason: impl Into<String>) -> StorageError {
    StorageError::Compaction {
        dir: dir.to_path_buf(),
        reason: reason.into(),
    }
}

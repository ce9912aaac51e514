//! [`PartitionLog`]: the single writer of one partition's log — append, roll, flush, close,
//! and the failure latch. Retention lives in `retention.rs`, opening in `recovery.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use eddy_protocol::batch::{patch, BatchHeader};

use crate::checkpoint::{self, Checkpoint};
use crate::config::{LogConfig, MAX_SEGMENT_BYTES};
use crate::error::{Result, StorageError};
use crate::index::{index_has_room, IndexBuilder, IndexBytes, OFFSET_ENTRY_LEN};
use crate::io::{Io, IoFile, OpenMode, StdIo};
use crate::reader::LogReader;
use crate::recovery::{self, RecoveryReport};
use crate::segment::{Indexes, Segment, SegmentPaths, NO_TIMESTAMP};
use crate::timeindex::TIME_ENTRY_LEN;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the batch's first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub max_timestamp: i64,
    /// Base offset of the segment it went to.
    pub segment_base_offset: i64,
    /// Byte position in that segment's `.log` file.
    pub position_in_segment: u64,
    /// Size of the batch in bytes.
    pub size: u64,
}

/// The segment list and log start that readers see. Replaced whole (under a short lock) when
/// segments are rolled or deleted; per-append progress is published through atomics in the
/// active [`Segment`], so appends do not allocate a new view.
#[derive(Debug)]
pub(crate) struct View {
    /// Never empty; the last one is the active segment.
    pub(crate) segments: Vec<Arc<Segment>>,
    pub(crate) log_start: i64,
}

impl View {
    pub(crate) fn log_end(&self) -> i64 {
        self.segments
            .last()
            .map_or(self.log_start, |s| s.next_offset())
    }
}

/// State shared by the writer and its readers.
#[derive(Debug)]
pub(crate) struct Shared {
    view: RwLock<Arc<View>>,
}

impl Shared {
    pub(crate) fn new(view: View) -> Self {
        Shared {
            view: RwLock::new(Arc::new(view)),
        }
    }
    pub(crate) fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.read().unwrap_or_else(|e| e.into_inner()))
    }
    fn set_view(&self, view: View) {
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
    }
}

/// The writer's state for the active segment.
#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) seg: Arc<Segment>,
    pub(crate) index_file: Arc<dyn IoFile>,
    pub(crate) time_file: Arc<dyn IoFile>,
    /// Bytes written to the `.log` file.
    pub(crate) pos: u64,
    pub(crate) next_offset: i64,
    pub(crate) builder: IndexBuilder,
    /// Entries in each index file.
    pub(crate) entries: usize,
    /// Max timestamp of the segment's first batch; `segment_ms` measures age from it.
    pub(crate) first_ts: Option<i64>,
}

/// One partition's log. Owned by exactly one writer; hand out [`LogReader`]s for reads.
#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) io: Arc<dyn Io>,
    pub(crate) shared: Arc<Shared>,
    /// Same list as the published view; the last one is `active.seg`.
    pub(crate) segments: Vec<Arc<Segment>>,
    pub(crate) active: Active,
    pub(crate) log_start: i64,
    /// Every batch below this offset is durable and validated (see `checkpoint.rs`).
    pub(crate) recovery_point: i64,
    /// Files of rolled segments that the next `flush` must fsync.
    pub(crate) unsynced: Vec<(PathBuf, Arc<dyn IoFile>)>,
    /// Files were created since the directory was last fsynced.
    pub(crate) dir_dirty: bool,
    /// Bytes of the active segment known to be durable: `flush` skips the fsync when nothing
    /// was appended since (an idle partition costs no disk flushes).
    pub(crate) active_synced_pos: u64,
    /// The first write/fsync failure; once set, every mutation fails until reopened.
    pub(crate) failed: Option<String>,
    /// Log end offset as of the last successful flush (or open): everything below it is on
    /// disk. After a failure, [`PartitionLog::reopener`] trusts nothing at or past it.
    pub(crate) durable_end: i64,
    /// Whether a compaction is outstanding and what the last one left clean.
    pub(crate) compaction: crate::compaction::CompactionState,
}

/// Opens a [`PartitionLog`] again from its files: see [`PartitionLog::reopener`].
#[derive(Debug, Clone)]
pub struct Reopen {
    dir: PathBuf,
    config: LogConfig,
    io: Arc<dyn Io>,
    /// Set after a failure: recovery cuts the log here.
    durable_end: Option<i64>,
}

impl Reopen {
    /// Recovers and opens the log (blocking file work).
    pub fn open(self) -> Result<(PartitionLog, RecoveryReport)> {
        recovery::open(&self.dir, self.config, self.io, self.durable_end)
    }
}

impl PartitionLog {
    /// Opens (creating if missing) the log in `dir` on real files, recovering it if needed.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(PartitionLog, RecoveryReport)> {
        Self::open_with_io(dir, config, StdIo::shared())
    }

    /// Like [`PartitionLog::open`] on the given I/O backend.
    pub fn open_with_io(
        dir: &Path,
        config: LogConfig,
        io: Arc<dyn Io>,
    ) -> Result<(PartitionLog, RecoveryReport)> {
        recovery::open(dir, config, io, None)
    }

    /// What it takes to open this log again from its files, e.g. once the disk works after a
    /// failure latched it (run [`Reopen::open`] off the async reactor: it is recovery).
    ///
    /// After a failure, batches appended since the last successful flush are cut, even if
    /// they read back fine: after a failed fsync the kernel may have marked the unwritten
    /// pages clean, so they read back from the page cache now and are lost (or garbage) after
    /// the next power cut. Trusting them would put every later acknowledged batch behind a
    /// hole that recovery would truncate at. They were never acknowledged as durable (acks=1
    /// answers before the fsync, so such records can go, as with any failure before a flush).
    pub fn reopener(&self) -> Reopen {
        Reopen {
            dir: self.dir.clone(),
            config: self.config.clone(),
            io: Arc::clone(&self.io),
            durable_end: self.failed.is_some().then_some(self.durable_end),
        }
    }

    /// Log end offset as of the last successful flush: every batch below it is durable.
    pub fn durable_end_offset(&self) -> i64 {
        self.durable_end
    }

    /// Appends one complete v2 record batch (already validated by the caller). Rolls first if
    /// needed, sets the batch's base offset (in place) to the log end offset, writes it to the
    /// page cache (no fsync), updates the indexes and publishes the new end to readers.
    pub fn append(&mut self, batch: &mut [u8]) -> Result<AppendInfo> {
        self.check_ok()?;
        let header = BatchHeader::parse(batch).map_err(|e| StorageError::InvalidBatch {
            reason: e.to_string(),
        })?;
        if header.size() != batch.len() {
            return Err(StorageError::InvalidBatch {
                reason: format!(
                    "{} bytes were given but the batch is {} bytes; append exactly one batch",
                    batch.len(),
                    header.size()
                ),
            });
        }
        let lod = header.last_offset_delta();
        if lod < 0 {
            return Err(StorageError::InvalidBatch {
                reason: format!("its last offset delta {lod} is negative"),
            });
        }
        let max_ts = header.max_timestamp();
        let size = batch.len() as u64;
        if size > MAX_SEGMENT_BYTES {
            return Err(StorageError::BatchTooLarge {
                size,
                max: MAX_SEGMENT_BYTES,
            });
        }
        // Offsets are i64: a log whose end is near i64::MAX (only a damaged checkpoint or
        // stored offsets can put it there) refuses the batch instead of wrapping around.
        if self
            .active
            .next_offset
            .checked_add(i64::from(lod) + 1)
            .is_none()
        {
            return Err(StorageError::InvalidBatch {
                reason: format!(
                    "the log end offset {} leaves no room for {} more offsets",
                    self.active.next_offset,
                    i64::from(lod) + 1
                ),
            });
        }
        if self.needs_roll(size, max_ts, lod) {
            self.roll().inspect_err(|e| self.latch(e))?;
        }
        let base = self.active.next_offset;
        patch::set_base_offset(batch, base);
        let info = self.write_batch(batch, base, lod, max_ts);
        info.inspect_err(|e| self.latch(e))
    }

    fn write_batch(
        &mut self,
        batch: &[u8],
        base: i64,
        lod: i32,
        max_ts: i64,
    ) -> Result<AppendInfo> {
        let a = &mut self.active;
        let pos = a.pos;
        let size = batch.len() as u64;
        a.seg
            .log
            .write_at(batch, pos)
            .map_err(|e| StorageError::io("write to", &a.seg.paths.log, e))?;
        // `needs_roll` guarantees both fit in u32.
        let rel = u32::try_from(base - a.seg.base_offset).unwrap_or(u32::MAX);
        let pos32 = u32::try_from(pos).unwrap_or(u32::MAX);
        if let Some((o, t)) = a.builder.on_batch(rel, pos32, size, max_ts) {
            a.index_file
                .write_at(&o.encode(), (a.entries * OFFSET_ENTRY_LEN) as u64)
                .map_err(|e| StorageError::io("write to", &a.seg.paths.index, e))?;
            a.time_file
                .write_at(&t.encode(), (a.entries * TIME_ENTRY_LEN) as u64)
                .map_err(|e| StorageError::io("write to", &a.seg.paths.timeindex, e))?;
            a.seg.push_entries(o, t);
            a.entries += 1;
        }
        let last_offset = base + i64::from(lod);
        a.pos = pos + size;
        a.next_offset = last_offset + 1;
        a.first_ts.get_or_insert(max_ts);
        a.seg.publish(a.pos, a.next_offset, max_ts);
        Ok(AppendInfo {
            base_offset: base,
            last_offset,
            max_timestamp: max_ts,
            segment_base_offset: a.seg.base_offset,
            position_in_segment: pos,
            size,
        })
    }

    fn needs_roll(&self, size: u64, max_ts: i64, lod: i32) -> bool {
        let a = &self.active;
        if a.pos == 0 {
            // An empty segment takes any batch: rolling would not make room.
            return false;
        }
        let segment_bytes = self.config.segment_bytes.clamp(1, MAX_SEGMENT_BYTES);
        if a.pos + size > segment_bytes {
            return true;
        }
        if let (Some(ms), Some(first)) = (self.config.segment_ms, a.first_ts) {
            if max_ts.saturating_sub(first) > ms {
                return true;
            }
        }
        if !index_has_room(a.entries, self.config.segment_index_bytes) {
            return true;
        }
        let last_rel = a.next_offset + i64::from(lod) - a.seg.base_offset;
        last_rel > i64::from(u32::MAX)
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub(crate) fn roll(&mut self) -> Result<()> {
        let base = self.active.next_offset;
        let fresh = create_active(&*self.io, &self.dir, base, &self.config)?;
        let old = std::mem::replace(&mut self.active, fresh);
        seal(&old);
        self.unsynced.extend([
            (old.seg.paths.log.clone(), Arc::clone(&old.seg.log)),
            (old.seg.paths.index.clone(), old.index_file),
            (old.seg.paths.timeindex.clone(), old.time_file),
        ]);
        self.dir_dirty = true;
        self.active_synced_pos = 0;
        self.segments.push(Arc::clone(&self.active.seg));
        self.publish();
        tracing::debug!(dir = %self.dir.display(), base, "rolled to a new segment");
        Ok(())
    }

    /// Makes everything appended so far durable: fsyncs the active segment's data, every
    /// rolled segment's data and indexes, and the directory if files were created. After a
    /// failure the log latches (see [`StorageError::Failed`]).
    pub fn flush(&mut self) -> Result<()> {
        self.check_ok()?;
        self.flush_inner().inspect_err(|e| self.latch(e))
    }

    fn flush_inner(&mut self) -> Result<()> {
        let end = self.active.next_offset;
        let seg = &self.active.seg;
        if self.active.pos != self.active_synced_pos {
            seg.log
                .sync_data()
                .map_err(|e| StorageError::io("fsync", &seg.paths.log, e))?;
            self.active_synced_pos = self.active.pos;
        }
        let rolled = !self.unsynced.is_empty();
        for (path, file) in &self.unsynced {
            file.sync_data()
                .map_err(|e| StorageError::io("fsync", path, e))?;
        }
        self.unsynced.clear();
        if self.dir_dirty {
            self.io
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
            self.dir_dirty = false;
        }
        self.durable_end = end;
        if rolled {
            // Every segment before the active one is now durable, indexes included: recovery
            // may trust them.
            self.recovery_point = self.active.seg.base_offset;
            self.write_checkpoint(false)?;
        }
        Ok(())
    }

    /// Flushes, then records a clean shutdown so the next open validates almost nothing.
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        let a = &self.active;
        for (path, file) in [
            (&a.seg.paths.index, &a.index_file),
            (&a.seg.paths.timeindex, &a.time_file),
        ] {
            file.sync_data()
                .map_err(|e| StorageError::io("fsync", path, e))?;
        }
        self.recovery_point = self.active.next_offset;
        self.write_checkpoint(true)
    }

    pub(crate) fn write_checkpoint(&self, clean_shutdown: bool) -> Result<()> {
        checkpoint::write(
            &*self.io,
            &self.dir,
            &Checkpoint {
                log_start_offset: self.log_start,
                recovery_point: self.recovery_point,
                clean_shutdown,
            },
        )
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start
    }

    /// Offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset
    }

    /// A reader that sees every batch appended so far, and later ones as they are appended.
    pub fn reader(&self) -> LogReader {
        LogReader::new(Arc::clone(&self.shared))
    }

    /// Replaces the settings; they apply from the next append, retention run or compaction
    /// plan.
    pub fn set_config(&mut self, config: LogConfig) {
        self.active
            .builder
            .set_interval(config.index_interval_bytes);
        if config != self.config {
            // Other compaction settings may remove more than the last run did.
            self.compaction.forget();
        }
        self.config = config;
    }

    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the log has latched after an I/O failure.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    pub(crate) fn check_ok(&self) -> Result<()> {
        match &self.failed {
            Some(cause) => Err(StorageError::Failed {
                dir: self.dir.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Latches the log after a write or fsync failure. Never retry: after a failed fsync the
    /// kernel may have dropped the dirty pages and a retry could report success for lost data.
    pub(crate) fn latch(&mut self, e: &StorageError) {
        if self.failed.is_none() {
            tracing::error!(dir = %self.dir.display(), error = %e,
                "partition log failed; it accepts no more writes until reopened");
            self.failed = Some(e.to_string());
        }
    }

    pub(crate) fn publish(&self) {
        self.shared.set_view(View {
            segments: self.segments.clone(),
            log_start: self.log_start,
        });
    }
}

/// Creates the files of a new, empty active segment at `base`.
pub(crate) fn create_active(
    io: &dyn Io,
    dir: &Path,
    base: i64,
    config: &LogConfig,
) -> Result<Active> {
    let paths = SegmentPaths::new(dir, base);
    let open = |path: &Path| -> Result<Arc<dyn IoFile>> {
        let f = io
            .open(path, OpenMode::Create)
            .map_err(|e| StorageError::io("create", path, e))?;
        // A leftover file of the same name can only hold garbage: nothing exists at or
        // beyond the log end offset.
        f.set_len(0)
            .map_err(|e| StorageError::io("truncate", path, e))?;
        Ok(f)
    };
    let log = open(&paths.log)?;
    let index_file = open(&paths.index)?;
    let time_file = open(&paths.timeindex)?;
    let seg = Segment::new(
        base,
        paths,
        log,
        Indexes {
            offsets: IndexBytes::Owned(Vec::new()),
            times: IndexBytes::Owned(Vec::new()),
        },
        0,
        base,
        NO_TIMESTAMP,
    );
    Ok(Active {
        seg: Arc::new(seg),
        index_file,
        time_file,
        pos: 0,
        next_offset: base,
        builder: IndexBuilder::new(config.index_interval_bytes),
        entries: 0,
        first_ts: None,
    })
}

/// Swaps a sealed segment's in-memory indexes for memory maps where the backend has them.
/// The files are complete and never written again, so mapping them is safe.
pub(crate) fn seal(active: &Active) {
    let map = |f: &Arc<dyn IoFile>| f.map_readonly().ok().flatten();
    if let (Some(offsets), Some(times)) = (map(&active.index_file), map(&active.time_file)) {
        let mut idx = active.seg.write_indexes();
        if offsets.len() == idx.offsets.len() && times.len() == idx.times.len() {
            idx.offsets = IndexBytes::Mapped(offsets);
            idx.times = IndexBytes::Mapped(times);
        }
    }
}

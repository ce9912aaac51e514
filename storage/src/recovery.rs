//! Opening a partition log: find the segments, decide which can be trusted, validate the rest
//! batch by batch, truncate at the first torn or corrupt batch, rebuild indexes, and report.
//!
//! Trust comes from `partition.checkpoint`: after a clean shutdown every segment is trusted
//! (only a cheap check of each index and of the bytes after its last entry is done);
//! otherwise segments wholly below the recovery point are trusted and the segment holding the
//! recovery point and all later ones are validated in full.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eddy_protocol::batch::BatchHeader;

use crate::checkpoint::{self, Checkpoint, Loaded};
use crate::compaction::CompactionState;
use crate::config::{LogConfig, MAX_SEGMENT_BYTES};
use crate::error::{Result, StorageError};
use crate::index::{IndexBuilder, IndexBytes, OffsetIndex};
use crate::io::{read_all, read_full_at, Io, IoFile, OpenMode};
use crate::log::{create_active, Active, PartitionLog, Shared, View};
use crate::segment::{Indexes, Segment, SegmentPaths, Step, Walker, NO_TIMESTAMP};
use crate::timeindex::TimeIndex;

/// Where recovery cut a segment short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The `.log` file.
    pub segment: PathBuf,
    /// Byte position of the first torn or corrupt batch: the new file size.
    pub position: u64,
    /// The offset the first removed batch should have had.
    pub offset: i64,
    /// How many bytes were cut off.
    pub bytes_removed: u64,
    /// What was wrong with the bytes at `position`.
    pub reason: String,
}

/// A segment recovery deleted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSegment {
    pub base_offset: i64,
    pub reason: String,
}

/// What [`PartitionLog::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub dir: PathBuf,
    /// Whether the previous run recorded a clean shutdown.
    pub previous_shutdown_clean: bool,
    /// Set if `partition.checkpoint` was present but unreadable (it is then ignored).
    pub checkpoint_problem: Option<String>,
    /// Base offsets of segments trusted without reading their data.
    pub segments_trusted: Vec<i64>,
    /// Base offsets of segments validated batch by batch (CRC included).
    pub segments_validated: Vec<i64>,
    /// Bytes read while validating.
    pub bytes_validated: u64,
    /// Why trusted segments failed their cheap check and were validated instead.
    pub trust_failures: Vec<RemovedSegment>,
    pub truncations: Vec<Truncation>,
    /// Base offsets of segments whose indexes were rebuilt from the log.
    pub indexes_rebuilt: Vec<i64>,
    /// Segments deleted because they no longer continue the log.
    pub segments_deleted: Vec<RemovedSegment>,
    /// Leftover temporary or orphaned files that were removed (including the output of a
    /// compaction interrupted before it committed).
    pub stray_files_removed: Vec<PathBuf>,
    /// Base offsets of cleaned segments whose installation, interrupted after it committed,
    /// was finished (see "Compaction" in docs/storage.md).
    pub compaction_swaps_completed: Vec<i64>,
    /// Whether a new, empty segment had to be created.
    pub created_segment: bool,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.dir.display();
        if self.previous_shutdown_clean {
            write!(f, "The previous shutdown of {dir} was clean.")?;
        } else {
            write!(
                f,
                "The previous shutdown of {dir} was not recorded as clean."
            )?;
        }
        if let Some(p) = &self.checkpoint_problem {
            write!(f, " The partition checkpoint was ignored because {p}.")?;
        }
        for p in &self.stray_files_removed {
            write!(f, " Removed leftover file {}.", p.display())?;
        }
        if !self.compaction_swaps_completed.is_empty() {
            write!(
                f,
                " Finished installing compacted segment(s) {:?} after an interruption.",
                self.compaction_swaps_completed
            )?;
        }
        if !self.segments_trusted.is_empty() {
            write!(
                f,
                " Trusted {} segment(s) after checking their indexes and tails.",
                self.segments_trusted.len()
            )?;
        }
        for t in &self.trust_failures {
            write!(
                f,
                " Segment {} was validated in full because {}.",
                t.base_offset, t.reason
            )?;
        }
        if !self.segments_validated.is_empty() {
            write!(
                f,
                " Validated {} segment(s) batch by batch ({} bytes): {:?}.",
                self.segments_validated.len(),
                self.bytes_validated,
                self.segments_validated
            )?;
        }
        for t in &self.truncations {
            write!(
                f,
                " Truncated {} at byte {} (offset {}), removing {} bytes, because {}.",
                t.segment.display(),
                t.position,
                t.offset,
                t.bytes_removed,
                t.reason
            )?;
        }
        if !self.indexes_rebuilt.is_empty() {
            write!(
                f,
                " Rebuilt the indexes of segment(s) {:?}.",
                self.indexes_rebuilt
            )?;
        }
        for d in &self.segments_deleted {
            write!(
                f,
                " Deleted segment {} because {}.",
                d.base_offset, d.reason
            )?;
        }
        if self.created_segment {
            write!(f, " Created a new empty segment.")?;
        }
        write!(
            f,
            " The log holds offsets {} to {} (exclusive).",
            self.log_start_offset, self.log_end_offset
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Log,
    Index,
    TimeIndex,
}

/// Base offset and kind of a segment file name (`<20 digits>.log|index|timeindex`).
pub(crate) fn parse_name(name: &str) -> Option<(i64, Kind)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kind = match ext {
        "log" => Kind::Log,
        "index" => Kind::Index,
        "timeindex" => Kind::TimeIndex,
        _ => return None,
    };
    Some((stem.parse().ok()?, kind))
}

/// Files a crash can leave behind: our checkpoint temp file, and Kafka-style `.deleted`
/// leftovers (never produced here, removed if found). Compaction's `.cleaned`/`.swap` files
/// are handled before this by `compaction::recover_interrupted`; any still here are junk.
fn is_stray(name: &str) -> bool {
    [".tmp", ".cleaned", ".swap", ".deleted"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// A segment after recovery, before it is handed to the log.
struct Recovered {
    base: i64,
    paths: SegmentPaths,
    log: Arc<dyn IoFile>,
    index_file: Arc<dyn IoFile>,
    time_file: Arc<dyn IoFile>,
    offsets: IndexBytes,
    times: IndexBytes,
    len: u64,
    next_offset: i64,
    max_ts: i64,
    first_ts: Option<i64>,
}

struct Ctx<'a> {
    io: &'a dyn Io,
    dir: &'a Path,
    config: &'a LogConfig,
    /// After a disk failure: the end of what the last successful flush made durable. Batches
    /// at or past it are cut (see `PartitionLog::reopener`).
    durable_end: Option<i64>,
}

impl Ctx<'_> {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn IoFile>> {
        self.io.open(path, OpenMode::Existing)
    }
    /// Opens a segment's `.log` file and reads its size.
    fn open_log(&self, paths: &SegmentPaths) -> Result<(Arc<dyn IoFile>, u64)> {
        let log = self
            .open(&paths.log)
            .map_err(|e| StorageError::io("open", &paths.log, e))?;
        let len = log
            .len()
            .map_err(|e| StorageError::io("read the size of", &paths.log, e))?;
        Ok((log, len))
    }
    fn remove(&self, path: &Path) -> Result<()> {
        match self.io.remove(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("delete", path, e)),
        }
    }
    fn remove_segment(&self, base: i64) -> Result<()> {
        let p = SegmentPaths::new(self.dir, base);
        self.remove(&p.log)?;
        self.remove(&p.index)?;
        self.remove(&p.timeindex)
    }
}

/// Index bytes for a segment: memory-mapped when sealed and the backend can, else in memory.
fn load_index(file: &dyn IoFile, path: &Path, sealed: bool) -> Result<IndexBytes> {
    if sealed {
        if let Some(m) = file
            .map_readonly()
            .map_err(|e| StorageError::io("memory-map", path, e))?
        {
            return Ok(IndexBytes::Mapped(m));
        }
    }
    read_all(file)
        .map(IndexBytes::Owned)
        .map_err(|e| StorageError::io("read from", path, e))
}

/// Max timestamp of the batch at position 0 (segment.ms measures the segment's age from it).
fn first_batch_ts(log: &dyn IoFile, path: &Path) -> Result<Option<i64>> {
    let mut header = [0u8; eddy_protocol::batch::BATCH_HEADER_LEN];
    let n =
        read_full_at(log, &mut header, 0).map_err(|e| StorageError::io("read from", path, e))?;
    if n < header.len() {
        return Ok(None);
    }
    let len = (eddy_protocol::batch::BATCH_HEADER_LEN - eddy_protocol::batch::LOG_OVERHEAD) as i32;
    header[8..12].copy_from_slice(&len.to_be_bytes());
    Ok(BatchHeader::parse(&header).ok().map(|h| h.max_timestamp()))
}

/// Cheap check of a trusted segment: its indexes look whole and the bytes after the last
/// index entry are valid batches (CRC included) ending exactly at the end of the file.
/// `Ok(Err(reason))` means "do not trust it; validate it instead".
fn load_trusted(
    cx: &Ctx<'_>,
    base: i64,
    sealed: bool,
) -> Result<std::result::Result<Recovered, String>> {
    let paths = SegmentPaths::new(cx.dir, base);
    let (log, len) = cx.open_log(&paths)?;
    if len > MAX_SEGMENT_BYTES {
        return Ok(Err(format!(
            "its log is larger than {MAX_SEGMENT_BYTES} bytes"
        )));
    }
    let mut files = Vec::new();
    for path in [&paths.index, &paths.timeindex] {
        match cx.open(path) {
            Ok(f) => files.push(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Err(format!("{} is missing", path.display())))
            }
            Err(e) => return Err(StorageError::io("open", path, e)),
        }
    }
    let (index_file, time_file) = (Arc::clone(&files[0]), Arc::clone(&files[1]));
    let offsets = load_index(&*index_file, &paths.index, sealed)?;
    let times = load_index(&*time_file, &paths.timeindex, sealed)?;
    let oi = OffsetIndex(&offsets);
    if let Err(reason) = oi.sanity_check(len) {
        return Ok(Err(reason));
    }
    let ti = TimeIndex(&times);
    if let Err(reason) = ti.sanity_check(oi.len(), oi.last().map(|e| e.rel)) {
        return Ok(Err(reason));
    }
    let (mut expected, start) = match oi.last() {
        Some(e) => (base + i64::from(e.rel), u64::from(e.pos)),
        None => (base, 0),
    };
    let mut max_ts = ti.last().map_or(NO_TIMESTAMP, |e| e.max_ts);
    let mut walker = Walker::new(&*log, start, len, 256 * 1024);
    let mut first = true;
    loop {
        match walker
            .next(true)
            .map_err(|e| StorageError::io("read from", &paths.log, e))?
        {
            Step::End => break,
            Step::Invalid { pos, reason } => {
                return Ok(Err(format!("the batch at byte {pos} is invalid: {reason}")))
            }
            Step::Batch(b) => {
                // The indexed batch must have exactly the indexed offset; after it, offsets
                // are contiguous, or in a compacted log strictly increasing with gaps where
                // the cleaner removed records (in any segment: a cleaned segment becomes the
                // last one when the segment after it is lost in a crash, and must not be
                // truncated at its first gap).
                let exact = !cx.config.compact || (first && start > 0);
                if !offset_follows(b.base_offset, expected, exact) {
                    return Ok(Err(format!(
                        "the batch at byte {} has offset {} where {}{expected} was expected",
                        b.pos,
                        b.base_offset,
                        if exact { "" } else { "at least " }
                    )));
                }
                first = false;
                expected = b.last_offset + 1;
                max_ts = max_ts.max(b.max_ts);
            }
        }
    }
    // Only the active segment needs it (for segment.ms); `into_active` reads it.
    let first_ts = None;
    Ok(Ok(Recovered {
        base,
        paths,
        log,
        index_file,
        time_file,
        offsets,
        times,
        len,
        next_offset: expected,
        max_ts,
        first_ts,
    }))
}

/// Whether a batch at `offset` may follow a batch ending just before `expected`: exactly there
/// (`exact`: a log that is not compacted, or an indexed batch), or anywhere after (a compacted
/// log, in any of its segments: the cleaner leaves gaps, and a cleaned segment may be the last
/// one after a crash, where truncating it at its first gap would lose acknowledged records).
fn offset_follows(offset: i64, expected: i64, exact: bool) -> bool {
    if exact {
        offset == expected
    } else {
        offset >= expected
    }
}

/// Reads the whole segment, checking every batch (framing, magic, CRC-32C, offsets contiguous,
/// or strictly increasing in a compacted log); truncates at the first bad one and rebuilds
/// both indexes.
fn validate(
    cx: &Ctx<'_>,
    base: i64,
    sealed: bool,
    report: &mut RecoveryReport,
) -> Result<Recovered> {
    let paths = SegmentPaths::new(cx.dir, base);
    let (log, len) = cx.open_log(&paths)?;
    let limit = len.min(MAX_SEGMENT_BYTES);
    let mut walker = Walker::new(&*log, 0, limit, 1 << 20);
    let mut builder = IndexBuilder::new(cx.config.index_interval_bytes);
    let (mut offsets, mut times) = (Vec::new(), Vec::new());
    let mut expected = base;
    let mut first_ts = None;
    let stop: Option<(u64, String)> = loop {
        let pos = walker.position();
        match walker
            .next(true)
            .map_err(|e| StorageError::io("read from", &paths.log, e))?
        {
            Step::End if len > limit => {
                break Some((
                    pos,
                    format!("the segment is larger than {MAX_SEGMENT_BYTES} bytes"),
                ))
            }
            Step::End => break None,
            Step::Invalid { pos, reason } => break Some((pos, reason)),
            Step::Batch(b) => {
                if let Some(d) = cx.durable_end.filter(|d| b.last_offset >= *d) {
                    break Some((
                        b.pos,
                        format!(
                            "the batch was written after the last successful flush (offset \
                             {d}) before a disk failure, so it may never reach the disk"
                        ),
                    ));
                }
                if !offset_follows(b.base_offset, expected, !cx.config.compact) {
                    let offset = b.base_offset;
                    let reason = if cx.config.compact {
                        format!(
                            "the batch has offset {offset} where at least {expected} was \
                             expected (offsets must increase)"
                        )
                    } else {
                        format!(
                            "the batch has offset {offset} where {expected} was expected \
                             (offsets must continue the previous batch)"
                        )
                    };
                    break Some((b.pos, reason));
                }
                let rel = b.base_offset - base;
                if b.last_offset - base > i64::from(u32::MAX) {
                    break Some((
                        b.pos,
                        "its offsets do not fit the segment's index".to_owned(),
                    ));
                }
                if let Some((o, t)) = builder.on_batch(rel as u32, b.pos as u32, b.size, b.max_ts) {
                    offsets.extend_from_slice(&o.encode());
                    times.extend_from_slice(&t.encode());
                }
                first_ts.get_or_insert(b.max_ts);
                expected = b.last_offset + 1;
            }
        }
    };
    let end = match stop {
        Some((pos, reason)) => {
            tracing::warn!(file = %paths.log.display(), position = pos, offset = expected,
                reason = %reason, "truncating torn or corrupt tail of segment");
            log.set_len(pos)
                .map_err(|e| StorageError::io("truncate", &paths.log, e))?;
            report.truncations.push(Truncation {
                segment: paths.log.clone(),
                position: pos,
                offset: expected,
                bytes_removed: len - pos,
                reason,
            });
            pos
        }
        None => len,
    };
    // The data may so far only be in the page cache (a process crash keeps it there); make it
    // durable before the recovery point moves past it.
    log.sync_data()
        .map_err(|e| StorageError::io("fsync", &paths.log, e))?;
    let mut rebuilt = Vec::new();
    for (path, bytes) in [(&paths.index, &offsets), (&paths.timeindex, &times)] {
        let f = cx
            .io
            .open(path, OpenMode::Create)
            .map_err(|e| StorageError::io("create", path, e))?;
        f.set_len(0)
            .map_err(|e| StorageError::io("truncate", path, e))?;
        if !bytes.is_empty() {
            f.write_at(bytes, 0)
                .map_err(|e| StorageError::io("write to", path, e))?;
        }
        f.sync_data()
            .map_err(|e| StorageError::io("fsync", path, e))?;
        rebuilt.push(f);
    }
    let (index_file, time_file) = (Arc::clone(&rebuilt[0]), Arc::clone(&rebuilt[1]));
    let offsets = if sealed {
        load_index(&*index_file, &paths.index, true)?
    } else {
        IndexBytes::Owned(offsets)
    };
    let times = if sealed {
        load_index(&*time_file, &paths.timeindex, true)?
    } else {
        IndexBytes::Owned(times)
    };
    report.segments_validated.push(base);
    report.bytes_validated += end;
    report.indexes_rebuilt.push(base);
    Ok(Recovered {
        base,
        paths,
        log,
        index_file,
        time_file,
        offsets,
        times,
        len: end,
        next_offset: expected,
        max_ts: builder.max_ts(),
        first_ts,
    })
}

/// Opens and recovers the log in `dir`. `durable_end` is set when reopening after a disk
/// failure: nothing at or past it is kept.
pub(crate) fn open(
    dir: &Path,
    config: LogConfig,
    io: Arc<dyn Io>,
    durable_end: Option<i64>,
) -> Result<(PartitionLog, RecoveryReport)> {
    io.create_dir_all(dir)
        .map_err(|e| StorageError::io("create directory", dir, e))?;
    let cx = Ctx {
        io: &*io,
        dir,
        config: &config,
        durable_end,
    };
    let mut report = RecoveryReport {
        dir: dir.to_path_buf(),
        ..RecoveryReport::default()
    };
    crate::compaction::recover_interrupted(&*io, dir, &mut report)?;
    let names = io
        .list_dir(dir)
        .map_err(|e| StorageError::io("list directory", dir, e))?;
    let mut logs = BTreeSet::new();
    let mut index_files = Vec::new();
    for name in &names {
        if is_stray(name) {
            let path = dir.join(name);
            cx.remove(&path)?;
            report.stray_files_removed.push(path);
            continue;
        }
        match parse_name(name) {
            Some((base, Kind::Log)) => {
                logs.insert(base);
            }
            Some((base, Kind::Index | Kind::TimeIndex)) => index_files.push((base, name)),
            None => {}
        }
    }
    for (base, name) in index_files {
        if !logs.contains(&base) {
            let path = dir.join(name);
            cx.remove(&path)?;
            report.stray_files_removed.push(path);
        }
    }
    let ckpt = match checkpoint::read(&*io, dir)? {
        Loaded::Missing => None,
        Loaded::Valid(c) => Some(c),
        Loaded::Damaged(reason) => {
            tracing::warn!(dir = %dir.display(), reason = %reason,
                "ignoring damaged partition checkpoint; validating every segment");
            report.checkpoint_problem = Some(reason);
            None
        }
    };
    // A clean-shutdown checkpoint cannot be left by a log that failed, but never trust one
    // when cutting back to the durable end.
    let clean = ckpt.is_some_and(|c| c.clean_shutdown) && durable_end.is_none();
    report.previous_shutdown_clean = clean;
    let recovery_point = ckpt.map_or(i64::MIN, |c| c.recovery_point);
    let ckpt_start = ckpt.map_or(0, |c| c.log_start_offset.max(0));

    let bases: Vec<i64> = logs.into_iter().collect();
    let mut recovered: Vec<Recovered> = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        if let Some(prev) = recovered.last() {
            if prev.next_offset != base {
                let reason = format!(
                    "the segment before it now ends at offset {}, so segments from offset {base} \
                     on no longer continue the log",
                    prev.next_offset
                );
                tracing::warn!(dir = %dir.display(), base, reason = %reason, "deleting segments");
                for &b in &bases[i..] {
                    cx.remove_segment(b)?;
                    report.segments_deleted.push(RemovedSegment {
                        base_offset: b,
                        reason: reason.clone(),
                    });
                }
                break;
            }
        }
        let next_base = bases.get(i + 1).copied();
        let sealed = next_base.is_some();
        let trusted = clean
            || next_base
                .is_some_and(|nb| nb <= recovery_point && durable_end.is_none_or(|d| nb <= d));
        let seg = if trusted {
            match load_trusted(&cx, base, sealed)? {
                Ok(seg) => {
                    report.segments_trusted.push(base);
                    seg
                }
                Err(reason) => {
                    tracing::warn!(dir = %dir.display(), base, reason = %reason,
                        "segment failed its open-time check; validating it in full");
                    report.trust_failures.push(RemovedSegment {
                        base_offset: base,
                        reason,
                    });
                    validate(&cx, base, sealed, &mut report)?
                }
            }
        } else {
            validate(&cx, base, sealed, &mut report)?
        };
        recovered.push(seg);
    }

    let log_end = recovered.last().map_or(ckpt_start, |s| s.next_offset);
    let mut log_start = recovered
        .first()
        .map_or(ckpt_start, |s| s.base)
        .max(ckpt_start);
    if log_start > log_end {
        // The checkpointed log start is beyond what survived: nothing below it may be served
        // and nothing at or above it exists, so start empty at the log start.
        let reason =
            format!("the log start offset {log_start} is beyond the recovered log end {log_end}");
        for seg in recovered.drain(..) {
            cx.remove_segment(seg.base)?;
            report.segments_deleted.push(RemovedSegment {
                base_offset: seg.base,
                reason: reason.clone(),
            });
        }
    }
    let active = match recovered.pop() {
        Some(last) => into_active(last, &config)?,
        None => {
            report.created_segment = true;
            log_start = log_start.max(ckpt_start);
            create_active(&*io, dir, log_start.max(log_end), &config)?
        }
    };
    let mut segments: Vec<Arc<Segment>> = recovered.into_iter().map(into_sealed).collect();
    segments.push(Arc::clone(&active.seg));
    let log_end = active.next_offset;
    let log_end_pos = active.pos;
    // Everything has been made durable (trusted segments were, validated ones were synced),
    // so the recovery point can move to the end. Writing the checkpoint also clears the
    // clean-shutdown flag before any new write can happen.
    io.sync_dir(dir)
        .map_err(|e| StorageError::io("fsync directory", dir, e))?;
    checkpoint::write(
        &*io,
        dir,
        &Checkpoint {
            log_start_offset: log_start,
            recovery_point: log_end,
            clean_shutdown: false,
        },
    )?;
    report.log_start_offset = log_start;
    report.log_end_offset = log_end;
    let view = View {
        segments: segments.clone(),
        log_start,
    };
    let log = PartitionLog {
        dir: dir.to_path_buf(),
        config,
        io: Arc::clone(&io),
        shared: Arc::new(Shared::new(view)),
        segments,
        active,
        log_start,
        recovery_point: log_end,
        unsynced: Vec::new(),
        dir_dirty: false,
        active_synced_pos: log_end_pos,
        failed: None,
        durable_end: log_end,
        compaction: CompactionState::default(),
    };
    if !report.truncations.is_empty() || !report.segments_deleted.is_empty() {
        tracing::warn!(dir = %dir.display(), "{report}");
    } else {
        tracing::debug!(dir = %dir.display(), "{report}");
    }
    Ok((log, report))
}

fn into_sealed(r: Recovered) -> Arc<Segment> {
    Arc::new(Segment::new(
        r.base,
        r.paths,
        r.log,
        Indexes {
            offsets: r.offsets,
            times: r.times,
        },
        r.len,
        r.next_offset,
        r.max_ts,
    ))
}

/// Turns the last recovered segment into the active one. Its indexes must be in memory: the
/// active segment's index files are still appended to, so they must never be mapped (a segment
/// recovered as sealed becomes active when the segments after it were deleted).
fn into_active(mut r: Recovered, config: &LogConfig) -> Result<Active> {
    for idx in [&mut r.offsets, &mut r.times] {
        if let IndexBytes::Mapped(m) = idx {
            *idx = IndexBytes::Owned(m.to_vec());
        }
    }
    if r.first_ts.is_none() && r.len > 0 {
        r.first_ts = first_batch_ts(&*r.log, &r.paths.log)?;
    }
    let oi = OffsetIndex(&r.offsets);
    let entries = oi.len();
    let last_pos = oi.last().map_or(0, |e| u64::from(e.pos));
    let builder = IndexBuilder::resume(config.index_interval_bytes, r.len, last_pos, r.max_ts);
    let (index_file, time_file) = (Arc::clone(&r.index_file), Arc::clone(&r.time_file));
    let (pos, next_offset, first_ts) = (r.len, r.next_offset, r.first_ts);
    Ok(Active {
        seg: into_sealed(r),
        index_file,
        time_file,
        pos,
        next_offset,
        builder,
        entries,
        first_ts,
    })
}

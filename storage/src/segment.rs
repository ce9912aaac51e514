//! A segment: one `.log` file of record batches plus its two sparse indexes. [`Segment`] is
//! the part shared with readers; the writer keeps its extra state in `log::Active`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use eddy_protocol::batch::{BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD};

use crate::error::{Result, StorageError};
use crate::index::{IndexBytes, OffsetEntry, OffsetIndex};
use crate::io::{read_full_at, IoFile};
use crate::timeindex::{TimeEntry, TimeIndex};

/// Kafka's "no timestamp" value; also the max timestamp of a segment without batches.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// File name stem of the segment starting at `base`: 20 zero-padded digits.
pub(crate) fn file_stem(base: i64) -> String {
    format!("{base:020}")
}

/// Paths of a segment's three files.
#[derive(Debug, Clone)]
pub(crate) struct SegmentPaths {
    pub(crate) log: PathBuf,
    pub(crate) index: PathBuf,
    pub(crate) timeindex: PathBuf,
}

impl SegmentPaths {
    pub(crate) fn new(dir: &Path, base: i64) -> Self {
        let stem = file_stem(base);
        SegmentPaths {
            log: dir.join(format!("{stem}.log")),
            index: dir.join(format!("{stem}.index")),
            timeindex: dir.join(format!("{stem}.timeindex")),
        }
    }

    /// The same three paths with `suffix` appended (`.cleaned`, `.swap`: compaction's
    /// temporary names).
    pub(crate) fn with_suffix(&self, suffix: &str) -> Self {
        let add = |p: &Path| {
            let mut s = p.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        SegmentPaths {
            log: add(&self.log),
            index: add(&self.index),
            timeindex: add(&self.timeindex),
        }
    }

    /// Log first: the order in which files are deleted or renamed (see `retention.rs`).
    pub(crate) fn all(&self) -> [&Path; 3] {
        [&self.log, &self.index, &self.timeindex]
    }
}

/// Both indexes of a segment, behind one lock. The lock is only ever held for a binary search
/// or an in-memory push, never across I/O.
#[derive(Debug)]
pub(crate) struct Indexes {
    pub(crate) offsets: IndexBytes,
    pub(crate) times: IndexBytes,
}

/// The reader-visible part of a segment.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) paths: SegmentPaths,
    /// The `.log` file. Readers hold it through the segment's `Arc`, so a segment deleted by
    /// retention stays readable for a reader that already has it.
    pub(crate) log: Arc<dyn IoFile>,
    indexes: RwLock<Indexes>,
    /// Bytes of fully written batches: readers never read past this.
    committed_pos: AtomicU64,
    /// Offset after the last fully written batch.
    next_offset: AtomicI64,
    /// Largest batch max timestamp in the segment, or [`NO_TIMESTAMP`].
    max_ts: AtomicI64,
}

/// What a header walk learns about one batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchInfo {
    pub(crate) pos: u64,
    pub(crate) size: u64,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_ts: i64,
}

impl Segment {
    pub(crate) fn new(
        base_offset: i64,
        paths: SegmentPaths,
        log: Arc<dyn IoFile>,
        indexes: Indexes,
        committed_pos: u64,
        next_offset: i64,
        max_ts: i64,
    ) -> Self {
        Segment {
            base_offset,
            paths,
            log,
            indexes: RwLock::new(indexes),
            committed_pos: AtomicU64::new(committed_pos),
            next_offset: AtomicI64::new(next_offset),
            max_ts: AtomicI64::new(max_ts),
        }
    }

    pub(crate) fn committed_pos(&self) -> u64 {
        self.committed_pos.load(Ordering::Acquire)
    }
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_ts.load(Ordering::Acquire)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.committed_pos() == 0
    }

    /// Writer only: makes a fully written batch visible. Stored in this order, and loaded by
    /// readers in the reverse order (offset or max timestamp first, then the position), so a
    /// reader that sees a new offset or timestamp also sees the bytes that hold it.
    pub(crate) fn publish(&self, committed_pos: u64, next_offset: i64, max_ts: i64) {
        self.committed_pos.store(committed_pos, Ordering::Release);
        self.max_ts.fetch_max(max_ts, Ordering::AcqRel);
        self.next_offset.store(next_offset, Ordering::Release);
    }

    fn read_indexes(&self) -> RwLockReadGuard<'_, Indexes> {
        // Poisoning only means another thread panicked mid-push; the bytes are still entries.
        self.indexes.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn write_indexes(&self) -> RwLockWriteGuard<'_, Indexes> {
        self.indexes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Writer only: records new entries in the in-memory (active) indexes.
    pub(crate) fn push_entries(&self, o: OffsetEntry, t: TimeEntry) {
        let mut idx = self.write_indexes();
        if let IndexBytes::Owned(v) = &mut idx.offsets {
            v.extend_from_slice(&o.encode());
        }
        if let IndexBytes::Owned(v) = &mut idx.times {
            v.extend_from_slice(&t.encode());
        }
    }

    /// Position to start scanning from to find `offset`: the last indexed batch at or below it.
    pub(crate) fn floor_position(&self, offset: i64) -> (i64, u64) {
        let rel = offset
            .saturating_sub(self.base_offset)
            .clamp(0, i64::from(u32::MAX));
        let idx = self.read_indexes();
        match OffsetIndex(&idx.offsets).floor(rel as u32) {
            Some(e) => (self.base_offset + i64::from(e.rel), u64::from(e.pos)),
            None => (self.base_offset, 0),
        }
    }

    /// Offset of a batch before which every batch is older than `ts` (the segment base if
    /// the index does not tell).
    pub(crate) fn time_floor(&self, ts: i64) -> i64 {
        let idx = self.read_indexes();
        match TimeIndex(&idx.times).last_below(ts) {
            Some(e) => self.base_offset + i64::from(e.rel),
            None => self.base_offset,
        }
    }

    /// Walks batch headers from the indexed position at or below `offset` and returns the
    /// first batch whose last offset is `>= offset`, if it is below `limit`. That is the batch
    /// containing `offset`, or, when `offset` falls in a gap a compaction left, the next batch
    /// after the gap (what a Kafka fetch at that offset returns).
    pub(crate) fn locate(&self, offset: i64, limit: u64) -> Result<Option<BatchInfo>> {
        let (indexed, start) = self.floor_position(offset);
        let start = start.min(limit);
        let mut walker = Walker::new(&*self.log, start, limit, 16 * 1024);
        let mut first = true;
        loop {
            match walker.next(false).map_err(|e| self.read_error(e))? {
                Step::End => return Ok(None),
                Step::Invalid { pos, reason } => {
                    return Err(StorageError::Corrupt {
                        path: self.paths.log.clone(),
                        position: pos,
                        reason,
                    })
                }
                Step::Batch(b) => {
                    // An index entry must point at the batch of exactly its offset (position 0
                    // has no entry: the first batch may start after the base in a compacted
                    // segment).
                    if first && start > 0 && b.base_offset != indexed {
                        return Err(StorageError::Corrupt {
                            path: self.paths.log.clone(),
                            position: b.pos,
                            reason: format!(
                                "the offset index says offset {indexed} starts at byte {start} \
                                 but the batch there starts at offset {}",
                                b.base_offset
                            ),
                        });
                    }
                    first = false;
                    if b.last_offset >= offset {
                        return Ok(Some(b));
                    }
                }
            }
        }
    }

    /// Reads `len` bytes at `pos` of the log.
    pub(crate) fn read_bytes(&self, pos: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let n = read_full_at(&*self.log, &mut buf, pos).map_err(|e| self.read_error(e))?;
        if n < len {
            return Err(StorageError::Corrupt {
                path: self.paths.log.clone(),
                position: pos + n as u64,
                reason: format!("the log ends {} bytes early", len - n),
            });
        }
        Ok(buf)
    }

    fn read_error(&self, e: std::io::Error) -> StorageError {
        StorageError::io("read from", &self.paths.log, e)
    }
}

/// One step of a [`Walker`].
#[derive(Debug)]
pub(crate) enum Step {
    Batch(BatchInfo),
    /// Exactly at the limit: no more batches.
    End,
    /// The bytes at `pos` are not a valid batch (torn, garbage, zeros, bad CRC).
    Invalid {
        pos: u64,
        reason: String,
    },
}

/// Walks batches of a log file through a read-ahead buffer, so scanning many small batches
/// costs few reads and large batches are skipped without reading them (unless verifying CRCs).
pub(crate) struct Walker<'a> {
    file: &'a dyn IoFile,
    pos: u64,
    limit: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
}

impl std::fmt::Debug for Walker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walker")
            .field("pos", &self.pos)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<'a> Walker<'a> {
    pub(crate) fn new(file: &'a dyn IoFile, pos: u64, limit: u64, chunk: usize) -> Self {
        Walker {
            file,
            pos,
            limit,
            chunk,
            buf: Vec::new(),
            buf_start: pos,
        }
    }

    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Makes `[pos, pos + len)` available in the buffer; `false` if the file ends first.
    fn fill(&mut self, pos: u64, len: usize) -> std::io::Result<bool> {
        let end = pos + len as u64;
        if pos >= self.buf_start && end <= self.buf_start + self.buf.len() as u64 {
            return Ok(true);
        }
        let want = (self.limit.saturating_sub(pos)).min(len.max(self.chunk) as u64) as usize;
        if want < len {
            return Ok(false);
        }
        self.buf.resize(want, 0);
        let n = read_full_at(self.file, &mut self.buf, pos)?;
        self.buf.truncate(n);
        self.buf_start = pos;
        Ok(n >= len)
    }

    fn slice(&self, pos: u64, len: usize) -> &[u8] {
        let at = (pos - self.buf_start) as usize;
        &self.buf[at..at + len]
    }

    /// The whole bytes of the batch just returned by `next(true)` (which reads it whole into
    /// the buffer to check its CRC); `None` if it is no longer buffered.
    pub(crate) fn batch_bytes(&self, b: &BatchInfo) -> Option<&[u8]> {
        let start = b.pos.checked_sub(self.buf_start)?;
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(b.size).ok()?)?;
        self.buf.get(start..end)
    }

    /// The next batch. With `verify`, the whole batch is read and its CRC checked.
    pub(crate) fn next(&mut self, verify: bool) -> std::io::Result<Step> {
        let pos = self.pos;
        if pos >= self.limit {
            return Ok(Step::End);
        }
        let invalid = |reason: String| Ok(Step::Invalid { pos, reason });
        if !self.fill(pos, BATCH_HEADER_LEN)? {
            return invalid(format!(
                "only {} bytes remain, fewer than a batch header",
                self.limit - pos
            ));
        }
        let header = self.slice(pos, BATCH_HEADER_LEN);
        let size = match eddy_protocol::batch::batch_size_at(header) {
            Some(s) if s >= BATCH_HEADER_LEN => s,
            _ => return invalid("the batch length field is invalid".to_owned()),
        };
        if pos + size as u64 > self.limit {
            return invalid(format!(
                "the batch announces {size} bytes but only {} remain",
                self.limit - pos
            ));
        }
        let parse_len = if verify { size } else { BATCH_HEADER_LEN };
        if !self.fill(pos, parse_len)? {
            return invalid("the file ended inside the batch".to_owned());
        }
        let bytes = self.slice(pos, parse_len);
        // Parsing a header-only prefix: give the parser the length it expects by checking
        // framing ourselves and parsing the header alone when not verifying.
        let info = if verify {
            let h = match BatchHeader::parse(bytes) {
                Ok(h) => h,
                Err(e) => return invalid(e.to_string()),
            };
            if let Err(e) = h.verify_stored() {
                return invalid(e.to_string());
            }
            info_of(&h, pos)
        } else {
            let mut header = [0u8; BATCH_HEADER_LEN];
            header.copy_from_slice(bytes);
            // Pretend the batch is header-only so `parse` checks magic without the records.
            let fake_len = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
            header[8..12].copy_from_slice(&fake_len.to_be_bytes());
            let h = match BatchHeader::parse(&header) {
                Ok(h) => h,
                Err(e) => return invalid(e.to_string()),
            };
            let mut info = info_of(&h, pos);
            info.size = size as u64;
            info
        };
        if info.last_offset < info.base_offset {
            // `last_offset` wraps on overflow, so this gives back the header's delta.
            let delta = info.last_offset.wrapping_sub(info.base_offset);
            return invalid(if delta < 0 {
                format!("the batch's last offset delta is negative ({delta})")
            } else {
                format!(
                    "the batch's offsets pass {}: base offset {} plus last offset delta {delta}",
                    i64::MAX,
                    info.base_offset
                )
            });
        }
        self.pos = pos + size as u64;
        Ok(Step::Batch(info))
    }
}

fn info_of(h: &BatchHeader<'_>, pos: u64) -> BatchInfo {
    BatchInfo {
        pos,
        size: h.size() as u64,
        base_offset: h.base_offset(),
        last_offset: h.last_offset(),
        max_ts: h.max_timestamp(),
    }
}

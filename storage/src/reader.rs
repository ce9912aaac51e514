//! [`LogReader`]: lock-free (apart from a pointer-sized read lock) reads of published batches,
//! safe to use from any number of threads while the writer appends and fsyncs.

use std::sync::Arc;

use bytes::Bytes;
use eddy_protocol::batch::{batch_size_at, BatchHeader};

use crate::error::{Result, StorageError};
use crate::log::{Shared, View};
use crate::records::record_timestamps;
use crate::segment::{BatchInfo, Segment, Step, Walker};

/// Bytes returned by [`LogReader::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole record batches, exactly as stored.
    pub bytes: Bytes,
    /// Log start offset when the read happened.
    pub log_start_offset: i64,
    /// Log end offset when the read happened.
    pub log_end_offset: i64,
}

/// A cheap, clonable handle for reading a partition log from any thread.
#[derive(Debug, Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

impl LogReader {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        LogReader { shared }
    }

    fn view(&self) -> Arc<View> {
        self.shared.view()
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.view().log_start
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.view().log_end()
    }

    /// Whole batches starting at the one containing `offset`, up to `max_bytes` in total; the
    /// first batch is returned whole even if larger (KIP-74). Reads stay within one segment,
    /// as Kafka's do. `offset` equal to the log end gives no bytes; outside
    /// `[log start, log end]` is [`StorageError::OffsetOutOfRange`].
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let view = self.view();
        let (start, end) = (view.log_start, view.log_end());
        let result = |bytes: Bytes| ReadResult {
            bytes,
            log_start_offset: start,
            log_end_offset: end,
        };
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        if offset == end {
            return Ok(result(Bytes::new()));
        }
        let first = view
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for seg in &view.segments[first..] {
            let limit = seg.committed_pos();
            if let Some(b) = seg.locate(offset, limit)? {
                let avail = limit - b.pos;
                let want = (max_bytes as u64).max(b.size).min(avail);
                let mut buf = seg.read_bytes(b.pos, want as usize)?;
                let mut cut = b.size as usize;
                while let Some(size) = batch_size_at(&buf[cut..]) {
                    if cut + size > buf.len() {
                        break;
                    }
                    cut += size;
                }
                buf.truncate(cut);
                return Ok(result(Bytes::from(buf)));
            }
        }
        Ok(result(Bytes::new()))
    }

    /// ListOffsets by timestamp: the first offset at or after the log start whose record
    /// timestamp is `>= ts`, with that timestamp. Exact for uncompressed CreateTime batches;
    /// for compressed batches the batch's first offset (see docs/storage.md).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let view = self.view();
        let start = view.log_start;
        for seg in &view.segments {
            if seg.max_timestamp() < ts || seg.next_offset() <= start {
                continue;
            }
            let limit = seg.committed_pos();
            let from = seg.time_floor(ts).max(start);
            let mut found = None;
            walk_from(seg, from, limit, |b| {
                if b.last_offset < start || b.max_ts < ts {
                    return Ok(true);
                }
                found = first_at_or_after(seg, &b, start, ts)?;
                Ok(found.is_none())
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the largest timestamp at or after the log start and the
    /// offset of the record holding it (the batch's first offset for compressed batches).
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let view = self.view();
        let start = view.log_start;
        // Segments wholly at or above the log start: their max timestamp is exact.
        let mut best: Option<(i64, usize)> = None;
        for (i, seg) in view.segments.iter().enumerate() {
            let ts = seg.max_timestamp();
            if seg.base_offset >= start
                && !seg.is_empty()
                && ts >= 0
                && best.is_none_or(|b| ts > b.0)
            {
                best = Some((ts, i));
            }
        }
        // The segment holding the log start may hold larger timestamps below it: scan it
        // (only when it could win).
        let mut partial: Option<(i64, i64)> = None;
        if let Some(seg) = view
            .segments
            .iter()
            .find(|s| s.base_offset < start && s.next_offset() > start)
        {
            if best.is_none_or(|b| seg.max_timestamp() >= b.0) {
                let limit = seg.committed_pos();
                walk_from(seg, start, limit, |b| {
                    if b.last_offset < start || partial.is_some_and(|p| b.max_ts <= p.0) {
                        return Ok(true);
                    }
                    if let Some(c) = max_in_batch(seg, &b, start)? {
                        if partial.is_none_or(|p| c.0 > p.0) {
                            partial = Some(c);
                        }
                    }
                    Ok(true)
                })?;
            }
        }
        let full = match best {
            Some((ts, i)) => {
                let seg = &view.segments[i];
                let limit = seg.committed_pos();
                let mut hit = None;
                walk_from(seg, seg.time_floor(ts), limit, |b| {
                    if b.max_ts != ts {
                        return Ok(true);
                    }
                    hit = max_in_batch(seg, &b, start)?;
                    Ok(hit.is_none())
                })?;
                hit
            }
            None => None,
        };
        Ok(match (partial, full) {
            (Some(p), Some(f)) => Some(if p.0 >= f.0 { p } else { f }),
            (p, f) => p.or(f),
        })
    }
}

/// Walks batches of `seg` from the indexed position at or below `from` up to `limit`, calling
/// `visit` until it returns `false`.
fn walk_from(
    seg: &Segment,
    from: i64,
    limit: u64,
    mut visit: impl FnMut(BatchInfo) -> Result<bool>,
) -> Result<()> {
    let (_, pos) = seg.floor_position(from);
    let mut walker = Walker::new(&*seg.log, pos.min(limit), limit, 16 * 1024);
    loop {
        match walker
            .next(false)
            .map_err(|e| StorageError::io("read from", &seg.paths.log, e))?
        {
            Step::End => return Ok(()),
            Step::Invalid { pos, reason } => {
                return Err(StorageError::Corrupt {
                    path: seg.paths.log.clone(),
                    position: pos,
                    reason,
                })
            }
            Step::Batch(b) => {
                if !visit(b)? {
                    return Ok(());
                }
            }
        }
    }
}

fn parse_stored<'a>(seg: &Segment, b: &BatchInfo, bytes: &'a [u8]) -> Result<BatchHeader<'a>> {
    BatchHeader::parse(bytes).map_err(|e| StorageError::Corrupt {
        path: seg.paths.log.clone(),
        position: b.pos,
        reason: e.to_string(),
    })
}

/// The first record at or after `min_offset` with timestamp `>= ts` in a batch whose max
/// timestamp reaches `ts`.
fn first_at_or_after(
    seg: &Segment,
    b: &BatchInfo,
    min_offset: i64,
    ts: i64,
) -> Result<Option<(i64, i64)>> {
    let bytes = seg.read_bytes(b.pos, b.size as usize)?;
    let h = parse_stored(seg, b, &bytes)?;
    Ok(match record_timestamps(&h) {
        Some(records) => records
            .into_iter()
            .find(|&(o, t)| o >= min_offset && t >= ts),
        None => {
            let first_is_it = !h.is_log_append_time()
                && h.base_timestamp() >= ts
                && h.base_offset() >= min_offset;
            let t = if first_is_it {
                h.base_timestamp()
            } else {
                h.max_timestamp()
            };
            Some((h.base_offset().max(min_offset), t))
        }
    })
}

/// The largest timestamp at or after `min_offset` in a batch, as `(timestamp, offset)`.
fn max_in_batch(seg: &Segment, b: &BatchInfo, min_offset: i64) -> Result<Option<(i64, i64)>> {
    let bytes = seg.read_bytes(b.pos, b.size as usize)?;
    let h = parse_stored(seg, b, &bytes)?;
    Ok(match record_timestamps(&h) {
        Some(records) => records.into_iter().filter(|&(o, _)| o >= min_offset).fold(
            None,
            |best: Option<(i64, i64)>, (o, t)| match best {
                Some(b) if b.0 >= t => Some(b),
                _ => Some((t, o)),
            },
        ),
        None => Some((h.max_timestamp(), h.base_offset().max(min_offset))),
    })
}

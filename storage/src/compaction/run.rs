//! [`CompactionPlan::run`]: the heavy part, on any thread. Two passes over the planned
//! segments: the first learns the latest offset of every key, the second filters each batch
//! and writes the survivors as new segments under `.cleaned` names, with their indexes, all
//! fsynced. The log is not touched; [`crate::PartitionLog::install_compaction`] swaps them in.
//!
//! Grouping: consecutive inputs are merged into one output while their input sizes add up to
//! at most `segment.bytes` (as Kafka does), so segments left small by earlier compactions
//! coalesce. An output is named after its first input and must end exactly where its last
//! input ended: the next segment's base offset is the previous one's end, which recovery
//! checks to detect lost data. A filtered batch keeps its last offset delta (`filter.rs`), so
//! it is enough that the last batch of each group keeps a record; groups are cut where that
//! holds (see `groups`), and where it cannot, one record of that batch is kept until a later
//! compaction. An output may start after its base offset (its first batches were removed):
//! readers and recovery accept that.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use eddy_protocol::batch::BatchHeader;

use super::filter::{filter, learn, survives, KeyMap, Outcome, Rules};
use super::{compaction_error, CompactedSegments, CompactionPlan, Counts, Output};
use crate::config::MAX_SEGMENT_BYTES;
use crate::error::{Result, StorageError};
use crate::index::{IndexBuilder, IndexBytes};
use crate::io::{IoFile, OpenMode};
use crate::segment::{BatchInfo, Indexes, Segment, SegmentPaths, Step, Walker};

/// Suffix of a compaction output before it is installed.
pub(super) const CLEANED: &str = ".cleaned";

impl CompactionPlan {
    /// Builds the key map, writes the cleaned segments as `.cleaned` files next to the
    /// originals (fsynced) and returns them for [`crate::PartitionLog::install_compaction`].
    /// Callable from any thread; reads only the planned segments, which stay readable through
    /// the plan's `Arc`s. On error the files written so far are deleted and the log is
    /// unchanged.
    pub fn run(self) -> Result<CompactedSegments> {
        let rules = Rules {
            tombstone_cutoff: self.tombstone_cutoff,
            delete_retention_ms: self.delete_retention_ms,
        };
        let (mut map, records_seen, unreadable) = self.learn_keys()?;
        let groups = self.groups(&self.ends_ok(&map, rules)?);
        let mut done = CompactedSegments {
            io: Arc::clone(&self.io),
            replaced: self.segments.clone(),
            outputs: Vec::new(),
            counts: Counts::default(),
            recheck_at_ms: map.recheck_at(rules),
            lease: Arc::clone(&self.lease),
            settled: false,
        };
        if !map.anything_to_remove(rules) && groups.len() == self.segments.len() {
            done.counts = Counts {
                records_kept: records_seen,
                batches_unreadable: unreadable,
                ..Counts::default()
            };
            return Ok(done);
        }
        for group in groups {
            let mut cleaned = None;
            let out = self.write_group(
                &self.segments[group],
                &mut map,
                rules,
                &mut done,
                &mut cleaned,
            );
            match out {
                Ok(o) => done.outputs.push(o),
                Err(e) => {
                    // Also delete the partly written group (its paths are not in `outputs`).
                    if let Some(paths) = cleaned {
                        for p in paths.all() {
                            let _ = self.io.remove(p);
                        }
                    }
                    return Err(e); // `done` deletes the finished groups when dropped
                }
            }
        }
        tracing::debug!(dir = %self.dir.display(), outputs = done.outputs.len(),
            "compaction output written");
        Ok(done)
    }

    /// First pass: the latest offset of every key, the number of records, and how many
    /// batches could not be read. Also checks that offsets strictly increase.
    fn learn_keys(&self) -> Result<(KeyMap, u64, u64)> {
        let mut map = KeyMap::default();
        let mut records = 0u64;
        let mut unreadable = 0u64;
        let mut prev_last: Option<i64> = None;
        for seg in &self.segments {
            for_each_batch(seg, |b, h| {
                if prev_last.is_some_and(|l| b.base_offset <= l)
                    || b.base_offset < seg.base_offset
                    || b.last_offset >= seg.next_offset()
                {
                    return Err(StorageError::Corrupt {
                        path: seg.paths.log.clone(),
                        position: b.pos,
                        reason: format!(
                            "batch offsets {} to {} do not follow the previous batch or leave \
                             the segment",
                            b.base_offset, b.last_offset
                        ),
                    });
                }
                prev_last = Some(b.last_offset);
                records += u64::try_from(h.records_count()).unwrap_or(0);
                if let Some(reason) = learn(h, &mut map) {
                    unreadable += 1;
                    tracing::warn!(file = %seg.paths.log.display(), position = b.pos,
                        offset = b.base_offset, reason = %reason,
                        "compaction keeps a batch it cannot read unchanged");
                }
                Ok(())
            })?;
        }
        Ok((map, records, unreadable))
    }

    /// Splits the inputs into groups, one output segment each. A group may only end after an
    /// input whose last batch keeps a record on its own (`ends_ok`, see the module doc), so:
    /// take the longest run of inputs whose sizes add up to at most `segment.bytes`; end it at
    /// the last input in it that may end a group; if none may, extend it past `segment.bytes`
    /// (up to the 2 GiB a segment can address) until one may. Only when that fails too does
    /// `filter` keep a record just to end the group. Empty inputs never form a group alone.
    fn groups(&self, ends_ok: &[bool]) -> Vec<Range<usize>> {
        let cap = self.segment_bytes.clamp(1, MAX_SEGMENT_BYTES);
        let sizes: Vec<u64> = self.segments.iter().map(|s| s.committed_pos()).collect();
        let n = sizes.len();
        // Whether input `next` can join a group starting at `start` without its relative
        // offsets overflowing 32 bits.
        let span_fits = |start: usize, next: usize| {
            self.segments[next].next_offset() - 1 - self.segments[start].base_offset
                <= i64::from(u32::MAX)
        };
        let mut groups = Vec::new();
        let mut start = 0usize;
        while start < n {
            let (mut end, mut size) = (start + 1, sizes[start]);
            while end < n
                && span_fits(start, end)
                && (size == 0 || sizes[end] == 0 || size + sizes[end] <= cap)
            {
                size += sizes[end];
                end += 1;
            }
            let may_end = |j: usize| ends_ok[j - 1] && sizes[start..j].iter().any(|s| *s > 0);
            if end < n {
                if let Some(j) = (start + 1..=end).rev().find(|&j| may_end(j)) {
                    end = j;
                } else {
                    while end < n
                        && !may_end(end)
                        && span_fits(start, end)
                        && size + sizes[end] <= MAX_SEGMENT_BYTES
                    {
                        size += sizes[end];
                        end += 1;
                    }
                }
            }
            groups.push(start..end);
            start = end;
        }
        groups
    }

    /// For each input, whether the last batch of the last non-empty input up to it keeps a
    /// record on its own.
    fn ends_ok(&self, map: &KeyMap, rules: Rules) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(self.segments.len());
        let mut prev = false;
        for seg in &self.segments {
            if !seg.is_empty() {
                prev = last_batch_survives(seg, map, rules)?;
            }
            out.push(prev);
        }
        Ok(out)
    }

    /// Second pass over one group: filters its batches into a new `.cleaned` segment.
    /// `cleaned` is set as soon as files may exist, so the caller can delete them on error.
    fn write_group(
        &self,
        group: &[Arc<Segment>],
        map: &mut KeyMap,
        rules: Rules,
        done: &mut CompactedSegments,
        cleaned: &mut Option<SegmentPaths>,
    ) -> Result<Output> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Err(compaction_error(&self.dir, "an empty group was planned"));
        };
        let (base, end) = (first.base_offset, last.next_offset());
        let paths = SegmentPaths::new(&self.dir, base);
        let tmp = cleaned.insert(paths.with_suffix(CLEANED)).clone();
        let create = |path: &std::path::Path| -> Result<Arc<dyn IoFile>> {
            let f = self
                .io
                .open(path, OpenMode::Create)
                .map_err(|e| StorageError::io("create", path, e))?;
            // A leftover of an abandoned run may exist under this name.
            f.set_len(0)
                .map_err(|e| StorageError::io("truncate", path, e))?;
            Ok(f)
        };
        let log = create(&tmp.log)?;
        let index_file = create(&tmp.index)?;
        let time_file = create(&tmp.timeindex)?;
        let mut w = GroupWriter {
            log: &*log,
            path: &tmp.log,
            base,
            pos: 0,
            last_offset: None,
            builder: IndexBuilder::new(self.index_interval_bytes),
            offsets: Vec::new(),
            times: Vec::new(),
        };
        let last_nonempty = group.iter().rposition(|s| !s.is_empty());
        for (i, seg) in group.iter().enumerate() {
            let limit = seg.committed_pos();
            for_each_batch(seg, |b, h| {
                let must_survive = Some(i) == last_nonempty && b.pos + b.size == limit;
                let outcome =
                    filter(h, map, rules, must_survive, &mut done.counts).map_err(|reason| {
                        compaction_error(
                            &self.dir,
                            format!(
                                "the batch at offset {} cannot be rewritten: {reason}",
                                b.base_offset
                            ),
                        )
                    })?;
                let bytes = match outcome {
                    Outcome::Dropped => return Ok(()),
                    Outcome::Unchanged => Cow::Borrowed(h.as_bytes()),
                    Outcome::Rewritten(v) => Cow::Owned(v),
                };
                w.write(&bytes, h).map_err(|e| match e {
                    Some(e) => e,
                    None => compaction_error(
                        &self.dir,
                        format!("the cleaned segment {base} would exceed 2 GiB or 2^32 offsets"),
                    ),
                })
            })?;
        }
        if w.last_offset.map(|l| l + 1) != Some(end) {
            let got = w
                .last_offset
                .map_or_else(|| "no batch".to_owned(), |l| format!("offset {}", l + 1));
            return Err(compaction_error(
                &self.dir,
                format!("the cleaned segment {base} would end at {got} instead of offset {end}"),
            ));
        }
        for (file, path, bytes) in [
            (&index_file, &tmp.index, &w.offsets),
            (&time_file, &tmp.timeindex, &w.times),
        ] {
            if !bytes.is_empty() {
                file.write_at(bytes, 0)
                    .map_err(|e| StorageError::io("write to", path, e))?;
            }
        }
        for (file, path) in [
            (&log, &tmp.log),
            (&index_file, &tmp.index),
            (&time_file, &tmp.timeindex),
        ] {
            file.sync_data()
                .map_err(|e| StorageError::io("fsync", path, e))?;
        }
        // Complete and never written again: safe to map (see mmap.rs).
        let map_or_own = |f: &Arc<dyn IoFile>, own: Vec<u8>| match f.map_readonly() {
            Ok(Some(m)) if m.len() == own.len() => IndexBytes::Mapped(m),
            _ => IndexBytes::Owned(own),
        };
        let (len, max_ts) = (w.pos, w.builder.max_ts());
        let indexes = Indexes {
            offsets: map_or_own(&index_file, w.offsets),
            times: map_or_own(&time_file, w.times),
        };
        let seg = Segment::new(base, paths, log, indexes, len, end, max_ts);
        *cleaned = None;
        Ok(Output {
            seg: Arc::new(seg),
            cleaned: tmp,
        })
    }
}

/// Appends batches to one output segment and builds its indexes with the rule `append` uses.
struct GroupWriter<'a> {
    log: &'a dyn IoFile,
    path: &'a std::path::Path,
    base: i64,
    pos: u64,
    last_offset: Option<i64>,
    builder: IndexBuilder,
    offsets: Vec<u8>,
    times: Vec<u8>,
}

impl GroupWriter<'_> {
    /// `Err(None)`: the batch does not fit the segment's 32-bit positions or offsets.
    fn write(&mut self, bytes: &[u8], h: &BatchHeader<'_>) -> Result<(), Option<StorageError>> {
        let size = bytes.len() as u64;
        // Both the batch's first and last offsets must fit relative to the segment base.
        u32::try_from(h.last_offset() - self.base).map_err(|_| None)?;
        let rel = u32::try_from(h.base_offset() - self.base).map_err(|_| None)?;
        let pos = u32::try_from(self.pos).map_err(|_| None)?;
        if self.pos + size > MAX_SEGMENT_BYTES {
            return Err(None);
        }
        self.log
            .write_at(bytes, self.pos)
            .map_err(|e| Some(StorageError::io("write to", self.path, e)))?;
        if let Some((o, t)) = self.builder.on_batch(rel, pos, size, h.max_timestamp()) {
            self.offsets.extend_from_slice(&o.encode());
            self.times.extend_from_slice(&t.encode());
        }
        self.pos += size;
        self.last_offset = Some(h.last_offset());
        Ok(())
    }
}

/// Whether the last batch of a non-empty sealed segment keeps a record on its own. Found
/// through the offset index, so this reads about one index interval.
fn last_batch_survives(seg: &Segment, map: &KeyMap, rules: Rules) -> Result<bool> {
    let limit = seg.committed_pos();
    let (_, from) = seg.floor_position(seg.next_offset() - 1);
    let mut walker = Walker::new(&*seg.log, from.min(limit), limit, 64 * 1024);
    let mut last = None;
    loop {
        match walker
            .next(false)
            .map_err(|e| StorageError::io("read from", &seg.paths.log, e))?
        {
            Step::End => break,
            Step::Batch(b) => last = Some(b),
            Step::Invalid { pos, reason } => {
                return Err(StorageError::Corrupt {
                    path: seg.paths.log.clone(),
                    position: pos,
                    reason,
                })
            }
        }
    }
    let Some(b) = last else {
        return Ok(false);
    };
    let bytes = seg.read_bytes(b.pos, b.size as usize)?;
    let h = BatchHeader::parse(&bytes).map_err(|e| StorageError::Corrupt {
        path: seg.paths.log.clone(),
        position: b.pos,
        reason: e.to_string(),
    })?;
    Ok(survives(&h, map, rules))
}

/// Calls `f` with every batch of a sealed segment, read whole and CRC-checked.
fn for_each_batch(
    seg: &Segment,
    mut f: impl FnMut(&BatchInfo, &BatchHeader<'_>) -> Result<()>,
) -> Result<()> {
    let corrupt = |position: u64, reason: String| StorageError::Corrupt {
        path: seg.paths.log.clone(),
        position,
        reason,
    };
    let mut walker = Walker::new(&*seg.log, 0, seg.committed_pos(), 1 << 20);
    loop {
        match walker
            .next(true)
            .map_err(|e| StorageError::io("read from", &seg.paths.log, e))?
        {
            Step::End => return Ok(()),
            Step::Invalid { pos, reason } => return Err(corrupt(pos, reason)),
            Step::Batch(b) => {
                let bytes = walker
                    .batch_bytes(&b)
                    .ok_or_else(|| corrupt(b.pos, "the batch could not be read whole".into()))?;
                let h = BatchHeader::parse(bytes).map_err(|e| corrupt(b.pos, e.to_string()))?;
                f(&b, &h)?;
            }
        }
    }
}

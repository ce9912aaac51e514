//! Checks for the storage engine's recovery path: arbitrary partition directories opened with
//! [`PartitionLog::open_with_io`] on the in-memory [`SimIo`]. Uses only `eddy_storage`,
//! `eddy_protocol` and `crc32fast` (a dependency of the storage crate), so
//! `storage/tests/fuzz_regressions.rs` can include this file as a module.
//!
//! Input layout (every field is optional: a short input just leaves the rest empty):
//!
//! ```text
//! byte 0  flags  0x01 write `<seg>.index` from the next chunk
//!                0x02 write `<seg>.timeindex` from the next chunk
//!                0x04 write `partition.checkpoint`
//!                0x08   ... well formed (valid CRC): log start offset and recovery point
//!                       from the next two bytes (see `number`), clean shutdown from 0x10;
//!                       otherwise the checkpoint is the next chunk, raw
//!                0x10   ... clean_shutdown=true
//!                0x20 two segments: the next byte is the second one's base offset (see
//!                     `number`), the first log is the next chunk, the second the rest
//!                0x40 recompute the CRC of every well-framed batch of each log, so inputs get
//!                     past the CRC check and reach the offset, index and checkpoint logic
//!                0x80 the index files belong to the last segment rather than the first
//! byte 1  flags  0x01 the second segment is a committed compaction's output (`.log.swap`)
//!                0x02 index every batch (`index_interval_bytes` = 1)
//! then    the chunks named above, in that order; a chunk is a u16 little-endian length and
//!         that many bytes (fewer if the input ends); last, the rest is the (last) `.log`.
//! ```
//!
//! Properties: opening returns Ok or Err, never panics. When it returns Ok and recovery
//! validated every segment (nothing was trusted on the word of a clean-shutdown
//! checkpoint, which by design skips validating what its indexes cover), reading the whole
//! log succeeds and returns only whole batches that pass `verify_stored`, in offset order;
//! and in every Ok case appending a fresh batch works and reads back byte for byte, and the
//! log closes and reopens to the same end.

use std::path::{Path, PathBuf};

use eddy_protocol::batch::{batch_size_at, build_batch, BatchHeader, BATCH_HEADER_LEN};
use eddy_storage::sim::SimIo;
use eddy_storage::{Io, LogConfig, PartitionLog, RecoveryReport};

const F_INDEX: u8 = 0x01;
const F_TIMEINDEX: u8 = 0x02;
const F_CHECKPOINT: u8 = 0x04;
const F_CHECKPOINT_WELL_FORMED: u8 = 0x08;
const F_CLEAN: u8 = 0x10;
const F_TWO_SEGMENTS: u8 = 0x20;
const F_FIX_CRCS: u8 = 0x40;
const F_INDEX_ON_LAST: u8 = 0x80;
const G_SWAP: u8 = 0x01;
const G_INDEX_EVERY_BATCH: u8 = 0x02;

/// Offsets worth trying that a byte cannot spell: the edges of the offset types.
const SPECIAL: [i64; 16] = [
    i64::MAX,
    i64::MAX - 1,
    i64::MIN,
    i64::MIN + 1,
    -1,
    -2,
    i32::MAX as i64,
    i32::MAX as i64 + 1,
    u32::MAX as i64,
    u32::MAX as i64 + 1,
    1 << 40,
    1_000,
    4_096,
    65_535,
    (i64::MAX / 2) + 1,
    i64::MAX - 65_535,
];

/// A byte as an offset: 0..=239 as themselves, 240..=255 the edges in [`SPECIAL`].
pub fn number(b: u8) -> i64 {
    match b {
        0..=239 => i64::from(b),
        _ => SPECIAL[usize::from(b - 240)],
    }
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn chunk(&mut self) -> &'a [u8] {
        let len = usize::from(u16::from_le_bytes([self.byte(), self.byte()]));
        let (chunk, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        chunk
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// Recomputes the CRC of each batch of `log` while the length fields frame whole v2 batches.
fn fix_crcs(log: &mut [u8]) {
    let mut pos = 0usize;
    while let Some(size) = batch_size_at(&log[pos..]) {
        if size < BATCH_HEADER_LEN || size > log.len() - pos {
            return;
        }
        let batch = &mut log[pos..pos + size];
        let Ok(h) = BatchHeader::parse(batch) else {
            return;
        };
        let crc = h.compute_crc();
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        pos += size;
    }
}

/// A `partition.checkpoint` as the storage engine writes it (see `storage/src/checkpoint.rs`).
fn checkpoint(log_start_offset: i64, recovery_point: i64, clean_shutdown: bool) -> Vec<u8> {
    let body = format!(
        "eddy partition checkpoint v1\nlog_start_offset={log_start_offset}\n\
         recovery_point={recovery_point}\nclean_shutdown={clean_shutdown}\n"
    );
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body}crc32={crc:08x}\n").into_bytes()
}

fn segment_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Lays the input out as a partition directory in a fresh [`SimIo`].
fn build_dir(data: &[u8], dir: &Path) -> (SimIo, LogConfig) {
    let mut input = Input(data);
    let flags = input.byte();
    let more = input.byte();
    let index = (flags & F_INDEX != 0).then(|| input.chunk());
    let timeindex = (flags & F_TIMEINDEX != 0).then(|| input.chunk());
    let ckpt = if flags & F_CHECKPOINT == 0 {
        None
    } else if flags & F_CHECKPOINT_WELL_FORMED != 0 {
        let (start, point) = (number(input.byte()), number(input.byte()));
        Some(checkpoint(start, point, flags & F_CLEAN != 0))
    } else {
        Some(input.chunk().to_vec())
    };
    let mut logs: Vec<(i64, &[u8])> = Vec::new();
    if flags & F_TWO_SEGMENTS != 0 {
        let second = number(input.byte());
        logs.push((0, input.chunk()));
        logs.push((second, input.rest()));
    } else {
        logs.push((0, input.rest()));
    }

    let io = SimIo::new();
    io.create_dir_all(dir).expect("the sim creates directories");
    let last = logs.len() - 1;
    for (i, (base, bytes)) in logs.iter().enumerate() {
        let mut bytes = bytes.to_vec();
        if flags & F_FIX_CRCS != 0 {
            fix_crcs(&mut bytes);
        }
        let ext = if i > 0 && more & G_SWAP != 0 {
            "log.swap"
        } else {
            "log"
        };
        io.write_file(&segment_path(dir, *base, ext), &bytes);
    }
    let index_base = if flags & F_INDEX_ON_LAST != 0 {
        logs[last].0
    } else {
        0
    };
    if let Some(bytes) = index {
        io.write_file(&segment_path(dir, index_base, "index"), bytes);
    }
    if let Some(bytes) = timeindex {
        io.write_file(&segment_path(dir, index_base, "timeindex"), bytes);
    }
    if let Some(bytes) = ckpt {
        io.write_file(&dir.join("partition.checkpoint"), &bytes);
    }
    let mut config = LogConfig::default();
    if more & G_INDEX_EVERY_BATCH != 0 {
        config.index_interval_bytes = 1;
    }
    (io, config)
}

/// Reads every batch from the log start to the log end. With `strict` (every segment was
/// validated at open) any read error, empty read or invalid batch is a bug; otherwise reads
/// must only not panic.
fn read_all(log: &PartitionLog, strict: bool) {
    let reader = log.reader();
    let (start, end) = (reader.log_start_offset(), reader.log_end_offset());
    assert!(start <= end, "log start {start} is after log end {end}");
    let mut offset = start;
    while offset < end {
        let result = match reader.read(offset, 64 * 1024) {
            Ok(r) => r,
            Err(e) if strict => panic!("reading offset {offset} of [{start}, {end}) failed: {e}"),
            Err(_) => return,
        };
        if result.bytes.is_empty() {
            assert!(
                !strict,
                "reading offset {offset} of [{start}, {end}) gave no bytes"
            );
            return;
        }
        let mut rest: &[u8] = &result.bytes;
        while !rest.is_empty() {
            let h = match BatchHeader::parse(rest) {
                Ok(h) => h,
                Err(e) if strict => panic!("read at {offset} returned a bad batch: {e}"),
                // Trusted segments may hold anything their indexes skip over.
                Err(_) => return,
            };
            if strict {
                if let Err(e) = h.verify_stored() {
                    panic!("read at {offset} returned a batch that fails verify_stored: {e}");
                }
                assert!(
                    h.last_offset() >= offset,
                    "read at {offset} returned batch {}..={} wholly below it",
                    h.base_offset(),
                    h.last_offset()
                );
                assert!(
                    h.last_offset() < end,
                    "batch {}..={} reaches past the log end {end}",
                    h.base_offset(),
                    h.last_offset()
                );
            } else if h.last_offset() < offset {
                return;
            }
            match h.last_offset().checked_add(1) {
                Some(next) => offset = next,
                None => return,
            }
            rest = &rest[h.size()..];
        }
    }
}

/// Appends a fresh batch, reads it back byte for byte, closes, reopens and reads it again.
fn append_and_reopen(
    mut log: PartitionLog,
    io: &SimIo,
    dir: &Path,
    config: &LogConfig,
    mode: Mode,
) {
    let end = log.log_end_offset();
    let mut batch = build_batch(0, 1_700_000_000_000, &[b"fuzz".as_slice(), b"again"]);
    let Some(new_end) = end.checked_add(2) else {
        // No room for two more offsets: the append must be refused, not wrap around.
        if mode == Mode::Strict {
            assert!(
                log.append(&mut batch).is_err(),
                "appending past offset i64::MAX succeeded (log end {end})"
            );
        }
        return;
    };
    let info = match log.append(&mut batch) {
        Ok(info) => info,
        Err(e) => panic!("appending to a log recovered up to offset {end} failed: {e}"),
    };
    assert_eq!(
        info.base_offset, end,
        "the appended batch must start at the old log end"
    );
    assert_eq!(log.log_end_offset(), new_end);
    let got = log
        .reader()
        .read(info.base_offset, 1 << 20)
        .unwrap_or_else(|e| panic!("reading back the appended batch at {end} failed: {e}"));
    assert_eq!(
        &got.bytes[..],
        &batch[..],
        "the appended batch reads back changed"
    );
    if let Err(e) = log.close() {
        panic!("closing the log after an append failed: {e}");
    }
    let (again, report) = match PartitionLog::open_with_io(dir, config.clone(), io.as_io()) {
        Ok(r) => r,
        Err(e) => panic!("reopening after a clean close failed: {e}"),
    };
    assert!(
        report.truncations.is_empty() && report.segments_deleted.is_empty(),
        "reopening after a clean close changed the log: {report}"
    );
    assert_eq!(again.log_end_offset(), new_end, "{report}");
    let got = again
        .reader()
        .read(info.base_offset, 1 << 20)
        .unwrap_or_else(|e| panic!("reading the appended batch after reopening failed: {e}"));
    assert_eq!(
        &got.bytes[..],
        &batch[..],
        "the appended batch changed across a reopen"
    );
}

/// Which properties to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything in the module documentation.
    Strict,
}

/// Target `storage_recovery`: see the module documentation for the input layout and the
/// properties.
pub fn storage_recovery(data: &[u8]) {
    let _ = open_and_check(data, Mode::Strict);
}

/// The `storage_recovery` check in `mode`, returning what the first open reported (`None` if
/// it failed).
pub fn open_and_check(data: &[u8], mode: Mode) -> Option<RecoveryReport> {
    let dir = Path::new("/fuzz/topic-0");
    let (io, config) = build_dir(data, dir);
    let (log, report) = PartitionLog::open_with_io(dir, config.clone(), io.as_io()).ok()?;
    assert_eq!(log.log_start_offset(), report.log_start_offset);
    assert_eq!(log.log_end_offset(), report.log_end_offset);
    let strict = report.segments_trusted.is_empty();
    read_all(&log, strict);
    append_and_reopen(log, &io, dir, &config, mode);
    Some(report)
}

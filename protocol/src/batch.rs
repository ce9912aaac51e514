//! A zero-copy view of a Kafka v2 record batch header, and the checks the broker and the
//! storage engine run on batches.
//!
//! Layout (big-endian), offsets in bytes from the start of the batch:
//!
//! ```text
//!  0 base_offset i64          | not covered by the CRC: the broker patches it
//!  8 batch_length i32         | bytes after this field
//! 12 partition_leader_epoch   | not covered by the CRC
//! 16 magic i8 (= 2)
//! 17 crc u32                  | CRC-32C of bytes [21..end)
//! 21 attributes i16           | bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
//! 23 last_offset_delta i32
//! 27 base_timestamp i64
//! 35 max_timestamp i64
//! 43 producer_id i64
//! 51 producer_epoch i16
//! 53 base_sequence i32
//! 57 records_count i32
//! 61 records...
//! ```

use thiserror::Error;

/// Size of the fixed v2 batch header, i.e. the smallest valid batch (zero records).
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batch_length`'s payload starts: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;

const OFF_LENGTH: usize = 8;
const OFF_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORDS_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why a record batch was rejected. Each maps to a Kafka error code in the broker.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a batch header, or than the length field announces.
    #[error("record batch is truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// The length field is smaller than a header or negative.
    #[error("record batch length field {0} is invalid")]
    BadLength(i32),
    /// Only the v2 format (Kafka 0.11+) is accepted.
    #[error("record batch magic {0} is not supported (only v2 batches are accepted)")]
    UnsupportedMagic(i8),
    /// The stored CRC-32C does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// Record count and last offset delta disagree, or a count is negative.
    #[error("record batch has inconsistent counts: {records_count} records, last offset delta {last_offset_delta}")]
    InconsistentCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// Compression codec id outside 0..=4.
    #[error("record batch uses unknown compression codec {0}")]
    UnknownCompression(i16),
    /// A record inside the batch is malformed (only checked for uncompressed batches).
    #[error("record {index} in batch is malformed: {reason}")]
    BadRecord { index: i32, reason: &'static str },
}

/// Compression codec carried in the batch attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// A read-only view over the header of one v2 record batch. Never copies the batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Reads the total size (header included) of the batch starting at `bytes`, from its length
/// field alone. `None` if fewer than 12 bytes are available or the length is negative.
pub fn batch_size_at(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < LOG_OVERHEAD {
        return None;
    }
    let len = be_i32(bytes, OFF_LENGTH);
    if len < 0 {
        return None;
    }
    Some(LOG_OVERHEAD + len as usize)
}

impl<'a> BatchHeader<'a> {
    /// Parses the header of the batch at the start of `bytes`. Checks that the whole batch
    /// (as announced by its length field) is present and that the magic is 2; does not check
    /// the CRC (see [`BatchHeader::verify_crc`]). Trailing bytes after the batch are ignored:
    /// the view covers exactly one batch.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: bytes.len(),
            });
        }
        let len = be_i32(bytes, OFF_LENGTH);
        if len < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(len));
        }
        let total = LOG_OVERHEAD + len as usize;
        if bytes.len() < total {
            return Err(BatchError::Truncated {
                needed: total,
                available: bytes.len(),
            });
        }
        let magic = bytes[OFF_MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(Self {
            bytes: &bytes[..total],
        })
    }

    /// The batch's bytes, exactly `size()` long.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Total size in bytes, header included.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, 0)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, OFF_EPOCH)
    }
    pub fn crc(&self) -> u32 {
        be_u32(self.bytes, OFF_CRC)
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, OFF_ATTRIBUTES)
    }
    pub fn compression_id(&self) -> i16 {
        self.attributes() & ATTR_COMPRESSION_MASK
    }
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.compression_id() {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_LOG_APPEND_TIME != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, OFF_LAST_OFFSET_DELTA)
    }
    /// Offset of the last record: `base_offset + last_offset_delta`. Wraps around on a header
    /// whose sum overflows (only a corrupt one can), so such a batch ends below its base
    /// offset, which is what callers already reject (as for a negative delta).
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta()))
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, OFF_BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, OFF_MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, OFF_PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, OFF_PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, OFF_BASE_SEQUENCE)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.bytes, OFF_RECORDS_COUNT)
    }
    /// The bytes after the fixed header: records, possibly compressed.
    pub fn records_payload(&self) -> &'a [u8] {
        &self.bytes[BATCH_HEADER_LEN..]
    }

    /// CRC-32C of bytes from `attributes` to the end, as the batch format defines it.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[OFF_ATTRIBUTES..])
    }

    /// Checks the stored CRC against the bytes.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let computed = self.compute_crc();
        let stored = self.crc();
        if computed == stored {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch { stored, computed })
        }
    }

    /// The checks recovery needs to trust a stored batch: framing, magic and CRC.
    pub fn verify_stored(&self) -> Result<(), BatchError> {
        self.verify_crc()
    }

    /// Full validation of a batch a producer sent: CRC, known codec, consistent record count
    /// and last offset delta, and (for uncompressed batches) that each record is well framed
    /// with offset deltas 0, 1, 2, ... .
    pub fn validate_produced(&self) -> Result<(), BatchError> {
        self.verify_crc()?;
        let compression = self.compression()?;
        let count = self.records_count();
        let lod = self.last_offset_delta();
        if count <= 0 || lod != count - 1 {
            return Err(BatchError::InconsistentCount {
                records_count: count,
                last_offset_delta: lod,
            });
        }
        if compression == Compression::None {
            check_uncompressed_records(self.records_payload(), count)?;
        }
        Ok(())
    }
}

/// Reads a zig-zag varint (as the record format uses) from `buf[*pos..]`, advancing `pos`;
/// `None` if the bytes end first or the varint is longer than 64 bits.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// Walks the records of an uncompressed batch: each record's length must fit, and its offset
/// delta must equal its position. Does not decode keys, values or headers beyond framing.
fn check_uncompressed_records(payload: &[u8], count: i32) -> Result<(), BatchError> {
    let mut pos = 0usize;
    for index in 0..count {
        let len = read_varint(payload, &mut pos).ok_or(BatchError::BadRecord {
            index,
            reason: "bad length varint",
        })?;
        if len < 0 || pos + len as usize > payload.len() {
            return Err(BatchError::BadRecord {
                index,
                reason: "length runs past the batch",
            });
        }
        let record = &payload[pos..pos + len as usize];
        let mut rpos = 1usize; // attributes byte
        let _timestamp_delta = read_varint(record, &mut rpos).ok_or(BatchError::BadRecord {
            index,
            reason: "bad timestamp delta",
        })?;
        let offset_delta = read_varint(record, &mut rpos).ok_or(BatchError::BadRecord {
            index,
            reason: "bad offset delta",
        })?;
        if offset_delta != i64::from(index) {
            return Err(BatchError::BadRecord {
                index,
                reason: "offset delta out of sequence",
            });
        }
        pos += len as usize;
    }
    if pos != payload.len() {
        return Err(BatchError::BadRecord {
            index: count,
            reason: "trailing bytes after the last record",
        });
    }
    Ok(())
}

/// Mutating helpers for a batch the broker owns (after validation).
pub mod patch {
    use super::*;

    /// Sets the base offset. Not covered by the CRC, so the CRC stays valid.
    pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
        batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    }

    /// Sets the partition leader epoch. Not covered by the CRC.
    pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
        batch[OFF_EPOCH..OFF_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    }

    /// Marks the batch as LogAppendTime with `now` as its max timestamp and recomputes the
    /// CRC (attributes and timestamps are covered by it).
    pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
        let attrs = be_i16(batch, OFF_ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
        batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        batch[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
        batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Sets producer id, epoch and base sequence (idempotent producers) and recomputes the CRC.
pub fn set_producer(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    batch[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Builds a valid uncompressed v2 batch of `values` (null keys, no headers). For tests,
/// benchmarks and the broker's own internal records.
pub fn build_batch(base_offset: i64, timestamp_ms: i64, values: &[&[u8]]) -> Vec<u8> {
    build_batch_with_keys(
        base_offset,
        timestamp_ms,
        &values.iter().map(|v| (None, *v)).collect::<Vec<_>>(),
    )
}

fn write_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Like [`build_batch`] with optional keys. Record timestamps all equal `timestamp_ms`.
pub fn build_batch_with_keys(
    base_offset: i64,
    timestamp_ms: i64,
    records: &[(Option<&[u8]>, &[u8])],
) -> Vec<u8> {
    let mut b = BatchBuilder::default();
    for (key, value) in records {
        b.push(timestamp_ms, *key, Some(value), &[]);
    }
    let mut out = b.finish();
    patch::set_base_offset(&mut out, base_offset);
    out
}

/// Builds one uncompressed v2 record batch record by record, with per-record timestamps,
/// null keys or values (tombstones) and headers. Base offset 0 (the log assigns the real one),
/// no producer id unless [`set_producer`] is applied afterwards.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    /// Room for the header (filled in by `finish`, so the batch is never copied), then the
    /// records. Empty until the first push.
    records: Vec<u8>,
    count: i32,
    first_ts: Option<i64>,
    max_ts: i64,
}

/// A record header: key and optional value.
pub type Header<'a> = (&'a [u8], Option<&'a [u8]>);

impl BatchBuilder {
    /// Appends one record. Timestamps are stored as deltas from the first record's.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) {
        let first = *self.first_ts.get_or_insert(timestamp_ms);
        self.max_ts = if self.count == 0 {
            timestamp_ms
        } else {
            self.max_ts.max(timestamp_ms)
        };
        // The record's length prefix comes first: compute it, then write the fields straight
        // into the batch buffer (no per-record scratch buffer).
        let ts_delta = timestamp_ms - first;
        let offset_delta = i64::from(self.count);
        let bytes_len = |b: Option<&[u8]>| match b {
            Some(b) => varint_len(b.len() as i64) + b.len(),
            None => varint_len(-1),
        };
        let mut len = 1 + varint_len(ts_delta) + varint_len(offset_delta);
        len += bytes_len(key) + bytes_len(value) + varint_len(headers.len() as i64);
        for (k, v) in headers {
            len += bytes_len(Some(k)) + bytes_len(*v);
        }
        let out = &mut self.records;
        if out.is_empty() {
            out.resize(BATCH_HEADER_LEN, 0);
        }
        out.reserve(varint_len(len as i64) + len);
        write_varint(out, len as i64);
        out.push(0); // attributes
        write_varint(out, ts_delta);
        write_varint(out, offset_delta);
        write_bytes(out, key);
        write_bytes(out, value);
        write_varint(out, headers.len() as i64);
        for (k, v) in headers {
            write_bytes(out, Some(k));
            write_bytes(out, *v);
        }
        self.count += 1;
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the finished batch will take.
    pub fn size(&self) -> usize {
        self.records.len().max(BATCH_HEADER_LEN)
    }

    /// The finished batch with a valid CRC.
    pub fn finish(self) -> Vec<u8> {
        let first_ts = self.first_ts.unwrap_or(0);
        let n = self.count;
        let mut b = self.records;
        if b.is_empty() {
            b.resize(BATCH_HEADER_LEN, 0);
        }
        let mut h = Vec::with_capacity(BATCH_HEADER_LEN);
        h.extend_from_slice(&0i64.to_be_bytes()); // base offset
        h.extend_from_slice(&((b.len() - LOG_OVERHEAD) as i32).to_be_bytes());
        h.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        h.push(2); // magic
        h.extend_from_slice(&0u32.to_be_bytes()); // crc placeholder
        h.extend_from_slice(&0i16.to_be_bytes()); // attributes
        h.extend_from_slice(&(n - 1).max(0).to_be_bytes()); // last offset delta
        h.extend_from_slice(&first_ts.to_be_bytes());
        h.extend_from_slice(&self.max_ts.max(first_ts).to_be_bytes());
        h.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        h.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        h.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        h.extend_from_slice(&n.to_be_bytes());
        b[..BATCH_HEADER_LEN].copy_from_slice(&h);
        let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }
}

/// Bytes the zigzag varint encoding of `v` takes.
fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            write_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => write_varint(out, -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_validates_and_reads_back() {
        let b = build_batch(0, 1234, &[b"a", b"bc", b"def"]);
        let h = BatchHeader::parse(&b).expect("parse");
        h.validate_produced().expect("valid");
        assert_eq!(h.records_count(), 3);
        assert_eq!(h.last_offset_delta(), 2);
        assert_eq!(h.max_timestamp(), 1234);
        assert_eq!(h.size(), b.len());
    }

    #[test]
    fn varint_len_matches_the_encoder() {
        for v in [
            0,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i64::MAX,
            i64::MIN,
            300,
            -300,
        ] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
    }

    #[test]
    fn builder_writes_timestamps_tombstones_and_headers_that_decoders_read() {
        let mut b = BatchBuilder::default();
        b.push(1_000, Some(b"k1"), Some(b"v1"), &[(b"h", Some(b"x"))]);
        b.push(1_500, Some(b"k2"), None, &[]);
        b.push(900, None, Some(b"v3"), &[]);
        let bytes = b.finish();
        let h = BatchHeader::parse(&bytes).expect("parse");
        h.validate_produced().expect("valid");
        assert_eq!((h.base_timestamp(), h.max_timestamp()), (1_000, 1_500));
        let mut buf = bytes::Bytes::from(bytes);
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decode");
        let r = &set.records;
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].timestamp, 1_000);
        assert_eq!(r[0].headers.len(), 1);
        assert_eq!(r[1].value, None);
        assert_eq!((r[2].timestamp, r[2].offset), (900, 2));
        assert_eq!(r[2].key, None);
    }

    #[test]
    fn patching_offset_keeps_crc_valid() {
        let mut b = build_batch(0, 1, &[b"x"]);
        patch::set_base_offset(&mut b, 42);
        let h = BatchHeader::parse(&b).expect("parse");
        assert_eq!(h.base_offset(), 42);
        h.verify_crc().expect("crc still valid");
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut b = build_batch(0, 1, &[b"x"]);
        patch::set_log_append_time(&mut b, 99);
        let h = BatchHeader::parse(&b).expect("parse");
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp(), 99);
        h.verify_crc().expect("crc recomputed");
    }

    #[test]
    fn flipped_byte_fails_crc() {
        let mut b = build_batch(0, 1, &[b"hello"]);
        let last = b.len() - 1;
        b[last] ^= 0x01;
        let h = BatchHeader::parse(&b).expect("parse");
        assert!(matches!(
            h.verify_crc(),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn truncated_and_bad_magic_rejected() {
        let b = build_batch(0, 1, &[b"hello"]);
        assert!(matches!(
            BatchHeader::parse(&b[..b.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut m = b.clone();
        m[16] = 1;
        assert!(matches!(
            BatchHeader::parse(&m),
            Err(BatchError::UnsupportedMagic(1))
        ));
    }

    #[test]
    fn inconsistent_count_rejected() {
        let mut b = build_batch(0, 1, &[b"a", b"b"]);
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let h = BatchHeader::parse(&b).expect("parse");
        assert!(matches!(
            h.validate_produced(),
            Err(BatchError::InconsistentCount { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(h) = BatchHeader::parse(&bytes) {
                let _ = h.validate_produced();
            }
        }
    }
}

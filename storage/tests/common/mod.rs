//! Helpers shared by the storage integration tests.
#![allow(dead_code, unreachable_pub)]

use eddy_protocol::batch::{
    batch_size_at, build_batch, BatchBuilder, BatchHeader, Compression, BATCH_HEADER_LEN,
    LOG_OVERHEAD,
};
use eddy_storage::{LogConfig, LogReader};

/// A batch of `records` records of `value_len` bytes each, all at `ts`.
pub fn batch(ts: i64, records: usize, value_len: usize) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
    build_batch(0, ts, &values)
}

/// An uncompressed batch with one record per timestamp (base timestamp = the first, max =
/// the largest), so timestamp lookups can be checked record by record. `compression` sets the
/// codec bits without compressing (the payload stays opaque to storage).
pub fn batch_with_timestamps(timestamps: &[i64], compression: i16) -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    for ts in timestamps {
        builder.push(*ts, None, Some(b"x"), &[]);
    }
    let mut b = builder.finish();
    // Codec bits only (bytes 21..23 are the attributes, covered by the CRC from byte 21).
    b[21..23].copy_from_slice(&compression.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Small segments and a dense index, so a few appends exercise rolling and index lookups.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_ms: None,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 128,
        segment_index_bytes: 10 * 1024 * 1024,
        ..LogConfig::default()
    }
}

/// Splits concatenated batches.
pub fn split_batches(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(size) = batch_size_at(bytes) {
        assert!(size <= bytes.len(), "read returned a partial batch");
        out.push(bytes[..size].to_vec());
        bytes = &bytes[size..];
    }
    assert!(bytes.is_empty(), "read returned trailing bytes");
    out
}

/// Every batch from `from` to the end, read in small steps.
pub fn read_everything(reader: &LogReader, from: i64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = from;
    let end = reader.log_end_offset();
    while next < end {
        let r = reader.read(next, 1000).expect("read");
        let batches = split_batches(&r.bytes);
        assert!(
            !batches.is_empty(),
            "read at {next} below end {end} returned nothing"
        );
        for b in batches {
            let h = eddy_protocol::batch::BatchHeader::parse(&b).expect("stored batch parses");
            next = h.last_offset() + 1;
            out.push(b);
        }
    }
    out
}

/// Base offset of a stored batch.
pub fn base_of(batch: &[u8]) -> i64 {
    i64::from_be_bytes(batch[..8].try_into().expect("8 bytes"))
}

/// One record for [`keyed_batch`]: key and value, `None` for null (a null value is a
/// tombstone).
pub type Kv<'a> = (Option<&'a str>, Option<&'a str>);

/// A batch of keyed records, all at `ts`, compressed with `codec`.
pub fn keyed_batch(ts: i64, records: &[Kv<'_>], codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::default();
    for (k, v) in records {
        b.push(ts, k.map(str::as_bytes), v.map(str::as_bytes), &[]);
    }
    let plain = b.finish();
    if codec == Compression::None {
        return plain;
    }
    let payload =
        eddy_protocol::compress::compress(codec, &plain[BATCH_HEADER_LEN..]).expect("compress");
    let mut out = plain[..BATCH_HEADER_LEN].to_vec();
    out.extend_from_slice(&payload);
    let len = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&len.to_be_bytes());
    let id: i16 = match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    };
    let attrs = i16::from_be_bytes([out[21], out[22]]) | id;
    out[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

/// Every record of stored batches, decoded by kafka-protocol's decoder (which checks each
/// batch's CRC and decompresses), checking that offsets strictly increase.
pub fn decode_records(batches: &[Vec<u8>]) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    for b in batches {
        let h = BatchHeader::parse(b).expect("stored batch parses");
        h.verify_crc().expect("stored batch CRC");
        let mut bytes = bytes::Bytes::from(b.clone());
        let set = eddy_protocol::kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes)
            .expect("kafka-protocol decodes the batch");
        assert_eq!(set.records.len(), h.records_count() as usize);
        for r in set.records {
            assert!(r.offset >= h.base_offset() && r.offset <= h.last_offset());
            if let Some(prev) = out.last() {
                assert!(r.offset > prev.offset, "offsets must strictly increase");
            }
            out.push(Rec {
                offset: r.offset,
                key: r.key.map(|k| k.to_vec()),
                value: r.value.map(|v| v.to_vec()),
                timestamp: r.timestamp,
            });
        }
    }
    out
}

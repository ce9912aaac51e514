//! Reading the records of a v2 record batch without building `kafka_protocol` record structs:
//! the varint framing is walked straight over the batch's bytes, and keys, values and header
//! values are handed out as slices of them (no copy). A compressed batch is decompressed once
//! and walked the same way.
//!
//! The result equals `kafka_protocol::records::RecordBatchDecoder::decode` record for record
//! (offset = base offset + offset delta, timestamp = base timestamp + timestamp delta, both
//! wrapping; a record's bytes past its headers are ignored, as are bytes past the announced
//! record count), with one deliberate difference: headers stay a list, duplicates included,
//! as Kafka defines them (that decoder keeps the last value of a repeated header key).

use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use thiserror::Error;

use crate::batch::{read_varint, BatchError, BatchHeader, Compression, BATCH_HEADER_LEN};
use crate::compress::{decompress, CompressError};

/// One record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Header keys are UTF-8 (checked), values any bytes.
    pub headers: Vec<(StrBytes, Option<Bytes>)>,
}

/// Why the records of a batch could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordsError {
    /// The batch header is malformed, or its CRC does not match.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The compressed payload cannot be decompressed.
    #[error(transparent)]
    Compress(#[from] CompressError),
    /// A record is malformed.
    #[error("record {index} in the batch at offset {base_offset} is malformed: {reason}")]
    BadRecord {
        base_offset: i64,
        index: i32,
        reason: &'static str,
    },
}

/// Calls `f` with each record of the one batch `batch` holds (trailing bytes after it are
/// ignored), after checking its CRC. Control batches are walked like any other; callers that
/// skip them check [`BatchHeader::is_control`] first.
pub fn for_each_record(batch: &Bytes, mut f: impl FnMut(RecordView)) -> Result<(), RecordsError> {
    let h = BatchHeader::parse(batch)?;
    h.verify_crc()?;
    let count = h.records_count();
    if count < 0 {
        return Err(BatchError::InconsistentCount {
            records_count: count,
            last_offset_delta: h.last_offset_delta(),
        }
        .into());
    }
    let payload = match h.compression()? {
        Compression::None => batch.slice(BATCH_HEADER_LEN..h.size()),
        codec => Bytes::from(decompress(codec, h.records_payload())?),
    };
    let (base_offset, base_ts) = (h.base_offset(), h.base_timestamp());
    let bad = |index: i32, reason: &'static str| RecordsError::BadRecord {
        base_offset,
        index,
        reason,
    };
    let mut pos = 0usize;
    for index in 0..count {
        let len = read_i32(&payload, &mut pos).ok_or(bad(index, "bad length"))?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= payload.len())
            .ok_or(bad(index, "length runs past the batch"))?;
        // Fields are read within `payload[start..end]`; only keys and values are sliced out
        // as `Bytes` (one reference count each, none for the record itself).
        let start = pos;
        pos = end;
        let rec = &payload[..end];
        let mut p = start + 1; // attributes
        if start == end {
            return Err(bad(index, "empty record"));
        }
        let ts_delta = read_varint(rec, &mut p).ok_or(bad(index, "bad timestamp delta"))?;
        let offset_delta = read_i32(rec, &mut p).ok_or(bad(index, "bad offset delta"))?;
        let key = read_bytes(&payload, end, &mut p).ok_or(bad(index, "bad key"))?;
        let value = read_bytes(&payload, end, &mut p).ok_or(bad(index, "bad value"))?;
        let n = read_i32(rec, &mut p)
            .filter(|n| *n >= 0)
            .ok_or(bad(index, "bad header count"))?;
        let mut headers = Vec::new();
        for _ in 0..n {
            let k = read_bytes(&payload, end, &mut p)
                .ok_or(bad(index, "bad header key"))?
                .ok_or(bad(index, "null header key"))?;
            let k = StrBytes::from_utf8(k).map_err(|_| bad(index, "header key is not UTF-8"))?;
            let v = read_bytes(&payload, end, &mut p).ok_or(bad(index, "bad header value"))?;
            headers.push((k, v));
        }
        f(RecordView {
            offset: base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp: base_ts.wrapping_add(ts_delta),
            key,
            value,
            headers,
        });
    }
    Ok(())
}

/// A varint that must fit an i32 (lengths, counts, offset deltas).
fn read_i32(buf: &[u8], pos: &mut usize) -> Option<i32> {
    read_varint(buf, pos).and_then(|v| i32::try_from(v).ok())
}

/// A length-prefixed byte string (`-1`: null) as a slice of `buf`, which it must not run
/// past `limit` (the end of its record).
fn read_bytes(buf: &Bytes, limit: usize, pos: &mut usize) -> Option<Option<Bytes>> {
    let len = read_i32(&buf[..limit], pos)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let end = pos.checked_add(len).filter(|&e| e <= limit)?;
    let b = buf.slice(*pos..end);
    *pos = end;
    Some(Some(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
        RecordEncodeOptions, TimestampType,
    };
    use proptest::prelude::*;

    type Rec = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn views_of(batch: &Bytes) -> Vec<RecordView> {
        let mut out = Vec::new();
        for_each_record(batch, |r| out.push(r)).expect("walk");
        out
    }

    fn decoded_by_kafka_protocol(batch: &Bytes) -> Vec<RecordView> {
        let mut b = batch.clone();
        let set = RecordBatchDecoder::decode(&mut b).expect("decode");
        set.records
            .into_iter()
            .map(|r| RecordView {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers.into_iter().collect(),
            })
            .collect()
    }

    fn encode(base_offset: i64, recs: &[Rec], codec: KCompression, producer_id: i64) -> Bytes {
        let records: Vec<Record> = recs
            .iter()
            .enumerate()
            .map(|(i, (ts, k, v, hs))| {
                let mut headers = IndexMap::new();
                for (hk, hv) in hs {
                    headers.insert(
                        StrBytes::from_string(hk.clone()),
                        hv.clone().map(Bytes::from),
                    );
                }
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id,
                    producer_epoch: 0,
                    timestamp_type: TimestampType::Creation,
                    offset: base_offset + i as i64,
                    sequence: i as i32,
                    timestamp: *ts,
                    key: k.clone().map(Bytes::from),
                    value: v.clone().map(Bytes::from),
                    headers,
                }
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    fn rec() -> impl Strategy<Value = Rec> {
        (
            -1_000_000i64..1_000_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            // Distinct header keys: kafka_protocol keeps headers in a map.
            proptest::collection::btree_map(
                "[a-z\u{e9}]{0,6}",
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
                0..4,
            )
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
        )
    }

    proptest! {
        #[test]
        fn walking_equals_kafka_protocols_decoder(
            base in 0i64..1 << 40,
            recs in proptest::collection::vec(rec(), 1..20),
            codec in prop_oneof![
                Just(KCompression::None),
                Just(KCompression::Gzip),
                Just(KCompression::Snappy),
                Just(KCompression::Lz4),
                Just(KCompression::Zstd),
            ],
        ) {
            let batch = encode(base, &recs, codec, -1);
            prop_assert_eq!(views_of(&batch), decoded_by_kafka_protocol(&batch));
        }

        #[test]
        fn damaged_batches_are_errors_not_panics(
            recs in proptest::collection::vec(rec(), 1..5),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let batch = encode(0, &recs, KCompression::None, -1);
            let mut bytes = batch.to_vec();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            // With a valid CRC, so that the damage reaches the record walker.
            if bytes.len() > 21 {
                let crc = crc32c::crc32c(&bytes[21..]);
                bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            }
            let _ = for_each_record(&Bytes::from(bytes), |_| {});
        }
    }

    #[test]
    fn uncompressed_records_are_slices_of_the_batch() {
        let batch = encode(
            5,
            &[(10, Some(b"k".to_vec()), Some(b"value".to_vec()), vec![])],
            KCompression::None,
            -1,
        );
        let views = views_of(&batch);
        let v = views[0].value.as_ref().expect("value");
        let range = batch.as_ptr() as usize..batch.as_ptr() as usize + batch.len();
        assert!(range.contains(&(v.as_ptr() as usize)));
        assert_eq!(views[0].offset, 5);
    }

    #[test]
    fn a_bad_crc_is_refused() {
        let batch = encode(
            0,
            &[(1, None, Some(b"x".to_vec()), vec![])],
            KCompression::None,
            -1,
        );
        let mut bytes = batch.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let e = for_each_record(&Bytes::from(bytes), |_| {}).expect_err("crc");
        assert!(
            matches!(e, RecordsError::Batch(BatchError::CrcMismatch { .. })),
            "{e}"
        );
    }
}

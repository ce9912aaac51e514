//! Just enough record decoding for what needs record semantics: timestamp lookups (the
//! offset and timestamp of each record of an uncompressed CreateTime batch) and compaction
//! (each record's offset, key and whether its value is null, plus its exact bytes so a kept
//! record is copied unchanged). Everything else stays opaque bytes.

use eddy_protocol::batch::{read_varint, BatchHeader};

/// One record of a decoded (decompressed) records payload, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRef<'a> {
    /// The record exactly as stored: its length varint and body.
    pub(crate) framed: &'a [u8],
    pub(crate) offset_delta: i64,
    /// `None` for a null key.
    pub(crate) key: Option<&'a [u8]>,
    /// A null value marks a tombstone.
    pub(crate) value_is_null: bool,
}

/// Reads a varint length field: -1 is null, other negatives are invalid.
fn read_len(buf: &[u8], pos: &mut usize) -> Option<Option<usize>> {
    match read_varint(buf, pos)? {
        -1 => Some(None),
        n => usize::try_from(n).ok().map(Some),
    }
}

/// Splits a decompressed records payload into `count` records. `None` if the bytes are not
/// exactly `count` well-framed records with strictly increasing offset deltas in
/// `0..=last_offset_delta` (a batch we cannot read is then kept as it is).
pub(crate) fn split_records(
    payload: &[u8],
    count: usize,
    last_offset_delta: i32,
) -> Option<Vec<RecordRef<'_>>> {
    let mut out = Vec::with_capacity(count.min(payload.len()));
    let mut pos = 0usize;
    let mut prev_delta = -1i64;
    for _ in 0..count {
        let start = pos;
        let len = usize::try_from(read_varint(payload, &mut pos)?).ok()?;
        let end = pos.checked_add(len)?;
        let body = payload.get(pos..end)?;
        let mut rpos = 1usize; // attributes byte
        let _timestamp_delta = read_varint(body, &mut rpos)?;
        let offset_delta = read_varint(body, &mut rpos)?;
        if offset_delta <= prev_delta || offset_delta > i64::from(last_offset_delta) {
            return None;
        }
        prev_delta = offset_delta;
        let key = match read_len(body, &mut rpos)? {
            None => None,
            Some(n) => {
                let k = body.get(rpos..rpos.checked_add(n)?)?;
                rpos += n;
                Some(k)
            }
        };
        let value_is_null = match read_len(body, &mut rpos)? {
            None => true,
            Some(n) => {
                body.get(rpos..rpos.checked_add(n)?)?;
                false
            }
        };
        out.push(RecordRef {
            framed: &payload[start..end],
            offset_delta,
            key,
            value_is_null,
        });
        pos = end;
    }
    (pos == payload.len()).then_some(out)
}

/// `(offset, timestamp)` of every record, or `None` if the batch is compressed, uses
/// LogAppendTime (all records then carry the batch max timestamp) or is malformed.
pub(crate) fn record_timestamps(h: &BatchHeader<'_>) -> Option<Vec<(i64, i64)>> {
    if h.compression_id() != 0 || h.is_log_append_time() {
        return None;
    }
    let payload = h.records_payload();
    let count = usize::try_from(h.records_count()).ok()?;
    let mut out = Vec::with_capacity(count.min(payload.len()));
    let mut pos = 0usize;
    for _ in 0..count {
        let len = usize::try_from(read_varint(payload, &mut pos)?).ok()?;
        let record = payload.get(pos..pos.checked_add(len)?)?;
        let mut rpos = 1usize; // attributes byte
        let ts_delta = read_varint(record, &mut rpos)?;
        let offset_delta = read_varint(record, &mut rpos)?;
        out.push((
            h.base_offset().checked_add(offset_delta)?,
            h.base_timestamp().checked_add(ts_delta)?,
        ));
        pos += len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_protocol::batch::build_batch;

    #[test]
    fn splits_records_with_keys_tombstones_and_headers() {
        let mut b = eddy_protocol::batch::BatchBuilder::default();
        b.push(1, Some(b"k1"), Some(b"v1"), &[(b"h", Some(b"x"))]);
        b.push(2, None, Some(b"v2"), &[]);
        b.push(3, Some(b""), None, &[]);
        let bytes = b.finish();
        let h = BatchHeader::parse(&bytes).expect("valid batch");
        let payload = h.records_payload();
        let records = split_records(payload, 3, 2).expect("well framed");
        let summary: Vec<_> = records
            .iter()
            .map(|r| (r.offset_delta, r.key, r.value_is_null))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, Some(&b"k1"[..]), false),
                (1, None, false),
                (2, Some(&b""[..]), true)
            ]
        );
        let joined: Vec<u8> = records.iter().flat_map(|r| r.framed.to_vec()).collect();
        assert_eq!(joined, payload);
        assert!(split_records(payload, 2, 2).is_none(), "trailing record");
        assert!(split_records(payload, 4, 3).is_none(), "missing record");
        assert!(
            split_records(payload, 3, 1).is_none(),
            "delta past the batch"
        );
        assert!(split_records(&payload[..payload.len() - 1], 3, 2).is_none());
    }

    #[test]
    fn reads_offsets_and_timestamps_of_built_batch() {
        let mut b = build_batch(0, 500, &[b"a", b"bb", b"ccc"]);
        eddy_protocol::batch::patch::set_base_offset(&mut b, 10);
        let h = BatchHeader::parse(&b).expect("valid batch");
        assert_eq!(
            record_timestamps(&h),
            Some(vec![(10, 500), (11, 500), (12, 500)])
        );
    }
}

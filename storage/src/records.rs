//! Just enough record decoding for timestamp lookups: the (offset, timestamp) of each record
//! in an uncompressed, CreateTime batch. Everything else stays opaque bytes.

use eddy_protocol::batch::{read_varint, BatchHeader};

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

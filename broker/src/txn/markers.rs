//! Transaction markers: the control batches that end a transaction in a partition.
//!
//! A marker is a v2 batch with the transactional and control attribute bits, the producer's
//! id and epoch, base sequence -1 and one record: key = version (i16, 0) + type (i16: 0 abort,
//! 1 commit), value = version (i16, 0) + coordinator epoch (i32). Clients recognise the
//! batch by its control bit and never hand it to the application.

use eddy_protocol::batch::{read_varint, set_producer, BatchBuilder, BatchHeader};

const ATTRIBUTES_AT: usize = 21;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// What a control batch says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Abort,
    Commit,
}

/// Builds the marker batch for `producer_id` at `epoch` (base offset 0; the log assigns it).
pub(crate) fn build(producer_id: i64, epoch: i16, marker: Marker, now_ms: i64) -> Vec<u8> {
    let kind: i16 = match marker {
        Marker::Abort => 0,
        Marker::Commit => 1,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    // Coordinator epoch: Eddy has one coordinator that never moves.
    value.extend_from_slice(&0i32.to_be_bytes());
    let mut b = BatchBuilder::default();
    b.push(now_ms, Some(&key), Some(&value), &[]);
    let mut batch = b.finish();
    let attrs = ATTR_TRANSACTIONAL | ATTR_CONTROL;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    // Also recomputes the CRC, which covers the attributes just set.
    set_producer(&mut batch, producer_id, epoch, -1);
    batch
}

/// The marker a control batch carries; `None` for anything else (or an unreadable record).
pub(crate) fn parse(h: &BatchHeader<'_>) -> Option<Marker> {
    if !h.is_control() || h.compression_id() != 0 {
        return None;
    }
    let p = h.records_payload();
    let mut pos = 0usize;
    let _len = read_varint(p, &mut pos)?;
    pos += 1; // record attributes
    let _ts = read_varint(p, &mut pos)?;
    let _delta = read_varint(p, &mut pos)?;
    let key_len = read_varint(p, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = p.get(pos..pos + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(Marker::Abort),
        1 => Some(Marker::Commit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_validate() {
        for m in [Marker::Abort, Marker::Commit] {
            let b = build(42, 3, m, 1_000);
            let h = BatchHeader::parse(&b).expect("parse");
            h.verify_crc().expect("crc");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id(), h.producer_epoch()), (42, 3));
            assert_eq!(h.base_sequence(), -1);
            assert_eq!(parse(&h), Some(m));
            // The record decodes with Kafka's decoder too.
            let mut bytes = bytes::Bytes::from(b.clone());
            let set =
                kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).expect("decode");
            assert_eq!(set.records.len(), 1);
            assert!(set.records[0].control);
        }
        let plain = eddy_protocol::batch::build_batch(0, 1, &[b"x"]);
        assert_eq!(parse(&BatchHeader::parse(&plain).expect("parse")), None);
    }
}

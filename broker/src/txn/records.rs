//! Records of the internal `__transaction_state` topic: one per state change, keyed by
//! transactional id, the latest one per key being the state (the topic is compacted).
//!
//! Key: version (i16, 0), transactional id (string) — Kafka's layout.
//! Value: Kafka's value v0 layout (version 0, producer id i64, epoch i16, timeout i32,
//! state i8, partitions `[topic string, [i32]]`, last update i64, start i64) followed by
//! Eddy's additions: the consumer groups of the transaction `[string]` and the offsets it
//! commits `[group, topic, partition i32, offset i64, leader epoch i32, metadata]`. Strings
//! are i16-length-prefixed, arrays i32-count-prefixed.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMeta, TxnOffset, TxnState};

fn put_str(b: &mut BytesMut, s: &str) {
    let n = s.len().min(i16::MAX as usize);
    b.put_i16(n as i16);
    b.put_slice(&s.as_bytes()[..n]);
}

fn get_str(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let n = b.get_i16();
    if n < 0 || b.remaining() < n as usize {
        return None;
    }
    String::from_utf8(b.split_to(n as usize).to_vec()).ok()
}

fn get_count(b: &mut Bytes, min_item: usize) -> Option<usize> {
    if b.remaining() < 4 {
        return None;
    }
    let n = b.get_i32();
    if n < 0 {
        return Some(0);
    }
    // Bound the count by what the bytes can hold before allocating for it.
    let n = n as usize;
    (n.saturating_mul(min_item) <= b.remaining()).then_some(n)
}

pub(crate) fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

pub(crate) fn decode_key(mut b: Bytes) -> Option<String> {
    if b.remaining() < 2 || b.get_i16() != 0 {
        return None;
    }
    get_str(&mut b)
}

pub(crate) fn encode_value(m: &TxnMeta) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.id());
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t, vec![*p])),
        }
    }
    b.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        put_str(&mut b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
    b.put_i64(m.updated_ms);
    b.put_i64(m.start_ms);
    b.put_i32(m.groups.len() as i32);
    for g in &m.groups {
        put_str(&mut b, g);
    }
    b.put_i32(m.offsets.len() as i32);
    for o in &m.offsets {
        put_str(&mut b, &o.group);
        put_str(&mut b, &o.topic);
        b.put_i32(o.partition);
        b.put_i64(o.offset);
        b.put_i32(o.leader_epoch);
        put_str(&mut b, &o.metadata);
    }
    b.freeze()
}

pub(crate) fn decode_value(transactional_id: &str, mut b: Bytes) -> Option<TxnMeta> {
    if b.remaining() < 2 + 8 + 2 + 4 + 1 || b.get_i16() != 0 {
        return None;
    }
    let producer_id = b.get_i64();
    let epoch = b.get_i16();
    let timeout_ms = b.get_i32();
    let state = TxnState::from_id(b.get_i8())?;
    let mut partitions = BTreeSet::new();
    for _ in 0..get_count(&mut b, 6)? {
        let topic = get_str(&mut b)?;
        for _ in 0..get_count(&mut b, 4)? {
            if b.remaining() < 4 {
                return None;
            }
            partitions.insert((topic.clone(), b.get_i32()));
        }
    }
    if b.remaining() < 16 {
        return None;
    }
    let updated_ms = b.get_i64();
    let start_ms = b.get_i64();
    let mut groups = BTreeSet::new();
    let mut offsets = Vec::new();
    // Kafka's own records end here; Eddy's carry groups and offsets.
    if b.has_remaining() {
        for _ in 0..get_count(&mut b, 2)? {
            groups.insert(get_str(&mut b)?);
        }
        for _ in 0..get_count(&mut b, 24)? {
            let group = get_str(&mut b)?;
            let topic = get_str(&mut b)?;
            if b.remaining() < 16 {
                return None;
            }
            let partition = b.get_i32();
            let offset = b.get_i64();
            let leader_epoch = b.get_i32();
            let metadata = get_str(&mut b)?;
            offsets.push(TxnOffset {
                group,
                topic,
                partition,
                offset,
                leader_epoch,
                metadata,
            });
        }
    }
    Some(TxnMeta {
        transactional_id: transactional_id.to_string(),
        producer_id,
        epoch,
        last_epoch: -1,
        timeout_ms,
        state,
        partitions,
        groups,
        offsets,
        start_ms,
        updated_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut m = TxnMeta::new("tx-1", 1234, 60_000, 99);
        m.epoch = 5;
        m.state = TxnState::PrepareCommit;
        m.start_ms = 50;
        m.partitions.insert(("a".into(), 0));
        m.partitions.insert(("a".into(), 2));
        m.partitions.insert(("b".into(), 1));
        m.groups.insert("g".into());
        m.offsets.push(TxnOffset {
            group: "g".into(),
            topic: "in".into(),
            partition: 3,
            offset: 77,
            leader_epoch: 0,
            metadata: "meta".into(),
        });
        assert_eq!(decode_key(encode_key("tx-1")).as_deref(), Some("tx-1"));
        assert_eq!(decode_value("tx-1", encode_value(&m)), Some(m));
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        let good = encode_value(&TxnMeta::new("t", 1, 1, 1));
        for n in 0..good.len() {
            let _ = decode_value("t", good.slice(..n));
        }
        for n in 0..64u8 {
            let b = Bytes::from((0..n).map(|i| i.wrapping_mul(37)).collect::<Vec<u8>>());
            let _ = decode_key(b.clone());
            let _ = decode_value("t", b);
        }
    }
}

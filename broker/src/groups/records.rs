//! The internal `__consumer_offsets` record formats, byte-compatible with Kafka's
//! (offset commit key v1 / value v3, group metadata key v2 / value v3), so tools that read
//! Kafka's offsets topic can read Eddy's.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetValue {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp: i64,
}

/// One member in a persisted group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberValue {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    pub(crate) subscription: Bytes,
    pub(crate) assignment: Bytes,
}

/// A persisted group (after each completed rebalance, and when it empties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupValue {
    pub(crate) protocol_type: String,
    pub(crate) generation: i32,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) state_timestamp: i64,
    pub(crate) members: Vec<MemberValue>,
}

/// A decoded key of the offsets topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn get_str(b: &mut Bytes) -> Option<String> {
    get_nullable_str(b)?
}

fn get_nullable_str(b: &mut Bytes) -> Option<Option<String>> {
    if b.remaining() < 2 {
        return None;
    }
    let n = b.get_i16();
    if n < 0 {
        return Some(None);
    }
    let n = n as usize;
    if b.remaining() < n {
        return None;
    }
    let s = b.split_to(n);
    Some(Some(String::from_utf8(s.to_vec()).ok()?))
}

fn get_bytes(b: &mut Bytes) -> Option<Bytes> {
    if b.remaining() < 4 {
        return None;
    }
    let n = b.get_i32();
    if n < 0 {
        return Some(Bytes::new());
    }
    let n = n as usize;
    if b.remaining() < n {
        return None;
    }
    Some(b.split_to(n))
}

impl Key {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Key::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(1);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            Key::Group { group } => {
                b.put_i16(2);
                put_str(&mut b, group);
            }
        }
        b.freeze()
    }

    pub(crate) fn decode(mut b: Bytes) -> Option<Key> {
        if b.remaining() < 2 {
            return None;
        }
        match b.get_i16() {
            0 | 1 => {
                let group = get_str(&mut b)?;
                let topic = get_str(&mut b)?;
                if b.remaining() < 4 {
                    return None;
                }
                let partition = b.get_i32();
                Some(Key::Offset {
                    group,
                    topic,
                    partition,
                })
            }
            2 => Some(Key::Group {
                group: get_str(&mut b)?,
            }),
            _ => None,
        }
    }
}

impl OffsetValue {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp);
        b.freeze()
    }

    pub(crate) fn decode(mut b: Bytes) -> Option<OffsetValue> {
        if b.remaining() < 2 {
            return None;
        }
        let version = b.get_i16();
        if !(0..=3).contains(&version) || b.remaining() < 8 {
            return None;
        }
        let offset = b.get_i64();
        let leader_epoch = if version >= 3 {
            if b.remaining() < 4 {
                return None;
            }
            b.get_i32()
        } else {
            -1
        };
        let metadata = get_str(&mut b)?;
        if b.remaining() < 8 {
            return None;
        }
        let commit_timestamp = b.get_i64();
        Some(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

impl GroupValue {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_nullable_str(&mut b, self.protocol.as_deref());
        put_nullable_str(&mut b, self.leader.as_deref());
        b.put_i64(self.state_timestamp);
        b.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut b, &m.member_id);
            put_nullable_str(&mut b, m.instance_id.as_deref());
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            put_bytes(&mut b, &m.subscription);
            put_bytes(&mut b, &m.assignment);
        }
        b.freeze()
    }

    pub(crate) fn decode(mut b: Bytes) -> Option<GroupValue> {
        if b.remaining() < 2 || b.get_i16() != 3 {
            return None;
        }
        let protocol_type = get_str(&mut b)?;
        if b.remaining() < 4 {
            return None;
        }
        let generation = b.get_i32();
        let protocol = get_nullable_str(&mut b)?;
        let leader = get_nullable_str(&mut b)?;
        if b.remaining() < 12 {
            return None;
        }
        let state_timestamp = b.get_i64();
        let n = b.get_i32();
        if n < 0 || n as usize > b.remaining() {
            return None;
        }
        let mut members = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let member_id = get_str(&mut b)?;
            let instance_id = get_nullable_str(&mut b)?;
            let client_id = get_str(&mut b)?;
            let client_host = get_str(&mut b)?;
            if b.remaining() < 8 {
                return None;
            }
            let rebalance_timeout_ms = b.get_i32();
            let session_timeout_ms = b.get_i32();
            let subscription = get_bytes(&mut b)?;
            let assignment = get_bytes(&mut b)?;
            members.push(MemberValue {
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Some(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            state_timestamp,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let k = Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(Key::decode(k.encode()), Some(k));
        let k = Key::Group { group: "g".into() };
        assert_eq!(Key::decode(k.encode()), Some(k));
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp: 7,
        };
        assert_eq!(OffsetValue::decode(v.encode()), Some(v));
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            state_timestamp: 9,
            members: vec![MemberValue {
                member_id: "a".into(),
                instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"s"),
                assignment: Bytes::from_static(b"x"),
            }],
        };
        assert_eq!(GroupValue::decode(g.encode()), Some(g));
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        for n in 0..40u8 {
            let b = Bytes::from((0..n).collect::<Vec<u8>>());
            let _ = Key::decode(b.clone());
            let _ = OffsetValue::decode(b.clone());
            let _ = GroupValue::decode(b);
        }
    }
}

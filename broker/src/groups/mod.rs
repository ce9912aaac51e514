//! The group coordinator: membership (`state`), committed offsets, and their persistence in
//! the internal `__consumer_offsets` topic (`records`), rebuilt at start-up.
//!
//! Every change runs under `persist` (a tokio mutex) so that the order in which changes hit
//! the in-memory state is the order their records are queued on the offsets partition.
//! The std mutex around the state is never held across an await.

pub(crate) mod records;
pub(crate) mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::oneshot;

use crate::error::BrokerError;
use crate::handlers::now_ms;
use crate::partition::{AppendResult, Durability, Partition};
use crate::topics::Topics;
use records::{GroupValue, Key, OffsetValue};
use state::Group;
pub(crate) use state::{Answer, GroupSettings, GroupState, JoinRequest, JoinResult, SyncResult};

/// Name of the internal topic holding committed offsets and group metadata.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<String, Group>,
    /// Committed offsets per group, by (topic, partition).
    offsets: HashMap<String, BTreeMap<(String, i32), OffsetValue>>,
}

/// The coordinator for every group (Eddy is a single node).
#[derive(Debug)]
pub(crate) struct Coordinator {
    inner: Mutex<Inner>,
    persist: tokio::sync::Mutex<()>,
    settings: GroupSettings,
    log: Arc<Partition>,
    offsets_retention: Duration,
    metadata_max_bytes: usize,
}

/// A record for the offsets topic: key and value (None is a tombstone).
type Write = (Key, Option<Bytes>);

impl Coordinator {
    /// Opens (creating if needed) the offsets topic and rebuilds groups and offsets from it.
    pub(crate) async fn load(
        topics: &Topics,
        settings: GroupSettings,
        offsets_retention: Duration,
        metadata_max_bytes: usize,
    ) -> Result<Coordinator, BrokerError> {
        let topic = match topics.get(OFFSETS_TOPIC) {
            Some(t) => t,
            None => {
                let mut cfg = BTreeMap::new();
                cfg.insert("retention.ms".to_string(), "-1".to_string());
                // As in Kafka: the latest commit per (group, partition) and the latest group
                // metadata are all that replay needs; the cleaner drops the rest.
                cfg.insert("cleanup.policy".to_string(), "compact".to_string());
                cfg.insert("segment.bytes".to_string(), "104857600".to_string());
                match topics.create(OFFSETS_TOPIC, 1, cfg, false).await {
                    Ok(t) => t,
                    Err(BrokerError::TopicExists(_)) => topics
                        .get(OFFSETS_TOPIC)
                        .ok_or_else(|| BrokerError::Internal("offsets topic vanished".into()))?,
                    Err(e) => return Err(e),
                }
            }
        };
        let log = topic
            .partition(0)
            .cloned()
            .ok_or_else(|| BrokerError::Internal("offsets topic has no partition 0".into()))?;
        let reader = log.reader().clone();
        let (inner, count) = tokio::task::spawn_blocking(move || replay(&reader))
            .await
            .map_err(|e| BrokerError::Internal(format!("loading groups panicked: {e}")))??;
        let groups = inner.groups.len();
        tracing::info!(groups, records = count, "group coordinator loaded");
        Ok(Coordinator {
            inner: Mutex::new(inner),
            persist: tokio::sync::Mutex::new(()),
            settings,
            log,
            offsets_retention,
            metadata_max_bytes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues records on the offsets partition (in call order) and returns the receiver
    /// for their durability.
    async fn queue(&self, writes: Vec<Write>) -> Option<oneshot::Receiver<AppendResult>> {
        if writes.is_empty() {
            return None;
        }
        let now = now_ms();
        let records: Vec<Record> = writes
            .into_iter()
            .map(|(k, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: now,
                key: Some(k.encode()),
                value: v,
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        // Offsets in the batch are relative; the record encoder numbers them from 0.
        let records: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.offset = i as i64;
                // Keeps `offset - sequence` constant so the encoder emits one batch, with
                // base sequence -1 (no producer id).
                r.sequence = i as i32 - 1;
                r
            })
            .collect();
        if let Err(e) = RecordBatchEncoder::encode(&mut buf, records.iter(), &opts) {
            tracing::error!(error = %e, "cannot encode group records");
            return None;
        }
        match self.log.append(buf.to_vec(), Durability::Synced).await {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::error!(error = ?e, "cannot write group records");
                None
            }
        }
    }

    fn group_writes(g: &mut Group) -> Vec<Write> {
        if !g.dirty {
            return Vec::new();
        }
        g.dirty = false;
        let v = g.snapshot(now_ms());
        vec![(
            Key::Group {
                group: g.id.clone(),
            },
            Some(v.encode()),
        )]
    }

    pub(crate) async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        let answer = {
            let _p = self.persist.lock().await;
            let (answer, writes) = {
                let mut inner = self.lock();
                let now_ms = now_ms();
                let g = inner
                    .groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Group::new(group_id, now_ms));
                let a = g.join(req, Instant::now(), now_ms, &self.settings);
                (a, Self::group_writes(g))
            };
            let _ = self.queue(writes).await;
            answer
        };
        match answer {
            Answer::Now(r) => r,
            Answer::Later(rx) => rx.await.unwrap_or_else(|_| JoinResult {
                error: kafka_protocol::error::ResponseError::RebalanceInProgress.code(),
                generation: -1,
                ..Default::default()
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let (answer, durable) = {
            let _p = self.persist.lock().await;
            let (answer, writes) = {
                let mut inner = self.lock();
                match inner.groups.get_mut(group_id) {
                    None => (
                        Answer::Now(SyncResult {
                            error: kafka_protocol::error::ResponseError::UnknownMemberId.code(),
                            ..Default::default()
                        }),
                        Vec::new(),
                    ),
                    Some(g) => {
                        let a = g.sync(
                            member_id,
                            instance_id,
                            generation,
                            protocol_type,
                            protocol,
                            assignments,
                            Instant::now(),
                        );
                        (a, Self::group_writes(g))
                    }
                }
            };
            let rx = self.queue(writes).await;
            (answer, rx)
        };
        // The leader's sync persisted the assignment; answer after it is durable.
        if let Some(rx) = durable {
            let _ = rx.await;
        }
        match answer {
            Answer::Now(r) => r,
            Answer::Later(rx) => rx.await.unwrap_or_else(|_| SyncResult {
                error: kafka_protocol::error::ResponseError::RebalanceInProgress.code(),
                ..Default::default()
            }),
        }
    }

    pub(crate) async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut inner = self.lock();
        match inner.groups.get_mut(group_id) {
            None => kafka_protocol::error::ResponseError::UnknownMemberId.code(),
            Some(g) => g.heartbeat(member_id, instance_id, generation, Instant::now()),
        }
    }

    pub(crate) async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let _p = self.persist.lock().await;
        let (codes, writes) = {
            let mut inner = self.lock();
            let Some(g) = inner.groups.get_mut(group_id) else {
                return Err(kafka_protocol::error::ResponseError::UnknownMemberId.code());
            };
            let codes = g.leave(members, Instant::now(), now_ms(), &self.settings);
            (codes, Self::group_writes(g))
        };
        let _ = self.queue(writes).await;
        Ok(codes)
    }

    /// Commits offsets after validating the member; answers after they are durable.
    /// `commits` are (topic, partition, offset, leader epoch, metadata); the result has an
    /// error code per commit.
    pub(crate) async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        commits: Vec<(String, i32, i64, i32, String)>,
        topic_exists: impl Fn(&str, i32) -> bool,
    ) -> Vec<i16> {
        let (codes, rx) = {
            let _p = self.persist.lock().await;
            let mut writes = Vec::new();
            let codes = {
                let mut inner = self.lock();
                let now_ms = now_ms();
                let g = inner
                    .groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Group::new(group_id, now_ms));
                let check = g.check_commit(member_id, instance_id, generation, Instant::now());
                let mut codes = Vec::with_capacity(commits.len());
                let mut accepted = Vec::new();
                for (topic, partition, offset, epoch, metadata) in commits {
                    let code = if check != 0 {
                        check
                    } else if metadata.len() > self.metadata_max_bytes {
                        kafka_protocol::error::ResponseError::OffsetMetadataTooLarge.code()
                    } else if !topic_exists(&topic, partition) {
                        kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        let v = OffsetValue {
                            offset,
                            leader_epoch: epoch,
                            metadata,
                            commit_timestamp: now_ms,
                        };
                        writes.push((
                            Key::Offset {
                                group: group_id.to_string(),
                                topic: topic.clone(),
                                partition,
                            },
                            Some(v.encode()),
                        ));
                        accepted.push(((topic, partition), v));
                        0
                    };
                    codes.push(code);
                }
                let entry = inner.offsets.entry(group_id.to_string()).or_default();
                for (k, v) in accepted {
                    entry.insert(k, v);
                }
                codes
            };
            (codes, self.queue(writes).await)
        };
        if let Some(rx) = rx {
            match rx.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(group = %group_id, error = %e, "offset commit not durable");
                    let err = BrokerError::from(e).code();
                    return codes
                        .iter()
                        .map(|c| if *c == 0 { err } else { *c })
                        .collect();
                }
                Err(_) => {
                    let err = BrokerError::NotAvailable.code();
                    return codes
                        .iter()
                        .map(|c| if *c == 0 { err } else { *c })
                        .collect();
                }
            }
        }
        codes
    }

    /// TxnOffsetCommit's membership check: a request naming a member or generation must
    /// come from a current member (as OffsetCommit); one naming neither is not checked
    /// (producers that only know the group id, before TxnOffsetCommit v3).
    pub(crate) fn check_txn_member(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            return 0;
        }
        let mut inner = self.lock();
        match inner.groups.get_mut(group_id) {
            None => kafka_protocol::error::ResponseError::UnknownMemberId.code(),
            Some(g) => g.check_commit(member_id, instance_id, generation, Instant::now()),
        }
    }

    /// Commits the offsets of a committed transaction; returns once they are durable.
    /// `decided_ms` is when the commit was decided: an offset committed later (possible
    /// only when a commit interrupted by a crash is finished at start-up) is kept.
    pub(crate) async fn commit_txn_offsets(
        &self,
        offsets: &[crate::txn::state::TxnOffset],
        decided_ms: i64,
    ) -> Result<(), BrokerError> {
        let rx = {
            let _p = self.persist.lock().await;
            let writes = {
                let mut inner = self.lock();
                let now_ms = now_ms();
                let mut writes = Vec::new();
                for o in offsets {
                    let entry = inner.offsets.entry(o.group.clone()).or_default();
                    let key = (o.topic.clone(), o.partition);
                    if entry
                        .get(&key)
                        .is_some_and(|v| v.commit_timestamp > decided_ms)
                    {
                        continue;
                    }
                    let v = OffsetValue {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                        commit_timestamp: now_ms,
                    };
                    writes.push((
                        Key::Offset {
                            group: o.group.clone(),
                            topic: o.topic.clone(),
                            partition: o.partition,
                        },
                        Some(v.encode()),
                    ));
                    entry.insert(key, v);
                }
                writes
            };
            if writes.is_empty() {
                return Ok(());
            }
            self.queue(writes)
                .await
                .ok_or_else(|| BrokerError::Internal("cannot queue transactional offsets".into()))?
        };
        match rx.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(BrokerError::NotAvailable),
        }
    }

    /// Committed offsets of a group: all of them (`None`) or the given partitions.
    pub(crate) fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, i32)>>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let inner = self.lock();
        let offsets = inner.offsets.get(group_id);
        match wanted {
            Some(list) => list
                .into_iter()
                .map(|(t, p)| {
                    let v = offsets.and_then(|o| o.get(&(t.clone(), p)).cloned());
                    (t, p, v)
                })
                .collect(),
            None => offsets
                .map(|o| {
                    o.iter()
                        .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Group ids with their protocol type and state.
    pub(crate) fn list(&self) -> Vec<(String, String, GroupState)> {
        let inner = self.lock();
        let mut ids: Vec<&String> = inner.groups.keys().chain(inner.offsets.keys()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .map(|id| match inner.groups.get(id) {
                Some(g) => (
                    id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                ),
                None => (id.clone(), String::new(), GroupState::Empty),
            })
            .collect()
    }

    /// A description of one group, `None` if unknown.
    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let inner = self.lock();
        let g = inner.groups.get(group_id);
        if g.is_none() && !inner.offsets.contains_key(group_id) {
            return None;
        }
        let Some(g) = g else {
            return Some(GroupDescription {
                state: GroupState::Empty,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            });
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Deletes an empty group and its offsets.
    pub(crate) async fn delete_group(&self, group_id: &str) -> i16 {
        use kafka_protocol::error::ResponseError;
        let _p = self.persist.lock().await;
        let writes = {
            let mut inner = self.lock();
            let known = inner.groups.contains_key(group_id) || inner.offsets.contains_key(group_id);
            if !known {
                return ResponseError::GroupIdNotFound.code();
            }
            if let Some(g) = inner.groups.get(group_id) {
                if g.state != GroupState::Empty {
                    return ResponseError::NonEmptyGroup.code();
                }
            }
            inner.groups.remove(group_id);
            let offsets = inner.offsets.remove(group_id).unwrap_or_default();
            let mut writes: Vec<Write> = offsets
                .into_keys()
                .map(|(topic, partition)| {
                    (
                        Key::Offset {
                            group: group_id.to_string(),
                            topic,
                            partition,
                        },
                        None,
                    )
                })
                .collect();
            writes.push((
                Key::Group {
                    group: group_id.to_string(),
                },
                None,
            ));
            writes
        };
        if let Some(rx) = self.queue(writes).await {
            drop(_p);
            if let Ok(Err(e)) = rx.await {
                return BrokerError::from(e).code();
            }
        }
        tracing::info!(group = %group_id, "deleted group");
        0
    }

    /// OffsetDelete: removes committed offsets of partitions the group does not consume.
    /// Returns a group-level error, or per-partition codes.
    pub(crate) async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<i16>, i16> {
        use kafka_protocol::error::ResponseError;
        let _p = self.persist.lock().await;
        let (codes, writes) = {
            let mut inner = self.lock();
            let subscribed = match inner.groups.get(group_id) {
                Some(g) if g.state != GroupState::Empty => subscribed_topics(g),
                _ => Vec::new(),
            };
            let Some(offsets) = inner.offsets.get_mut(group_id) else {
                return Err(ResponseError::GroupIdNotFound.code());
            };
            let mut writes = Vec::new();
            let codes = partitions
                .into_iter()
                .map(|(t, p)| {
                    if subscribed.contains(&t) {
                        return ResponseError::GroupSubscribedToTopic.code();
                    }
                    if offsets.remove(&(t.clone(), p)).is_some() {
                        writes.push((
                            Key::Offset {
                                group: group_id.to_string(),
                                topic: t,
                                partition: p,
                            },
                            None,
                        ));
                    }
                    0
                })
                .collect();
            (codes, writes)
        };
        let _ = self.queue(writes).await;
        Ok(codes)
    }

    /// Timers of every group, and expiry of offsets of groups empty for longer than
    /// `offsets.retention.minutes`.
    pub(crate) async fn tick(&self) {
        let _p = self.persist.lock().await;
        let writes = {
            let mut inner = self.lock();
            let now = Instant::now();
            let now_ms = now_ms();
            let mut writes = Vec::new();
            for g in inner.groups.values_mut() {
                g.tick(now, now_ms, &self.settings);
                writes.extend(Self::group_writes(g));
            }
            let retention = self.offsets_retention.as_millis() as i64;
            let Inner { groups, offsets } = &mut *inner;
            for (gid, map) in offsets.iter_mut() {
                let empty_since = match groups.get(gid) {
                    Some(g) if g.state != GroupState::Empty => continue,
                    Some(g) => g.empty_since_ms,
                    None => i64::MIN,
                };
                map.retain(|(topic, partition), v| {
                    let since = v.commit_timestamp.max(empty_since);
                    let keep = now_ms - since < retention;
                    if !keep {
                        writes.push((
                            Key::Offset {
                                group: gid.clone(),
                                topic: topic.clone(),
                                partition: *partition,
                            },
                            None,
                        ));
                    }
                    keep
                });
            }
            offsets.retain(|gid, map| !map.is_empty() || groups.contains_key(gid));
            groups.retain(|gid, g| {
                g.state != GroupState::Empty || offsets.contains_key(gid) || g.generation > 0
            });
            writes
        };
        if !writes.is_empty() {
            tracing::debug!(records = writes.len(), "group coordinator housekeeping");
        }
        let _ = self.queue(writes).await;
    }

    /// Runs [`Coordinator::tick`] until shutdown.
    pub(crate) async fn run_timers(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = every.tick() => self.tick().await,
                _ = shutdown.changed() => break,
            }
        }
    }
}

/// Topics a group's members subscribe to (consumer protocol), for OffsetDelete.
fn subscribed_topics(g: &Group) -> Vec<String> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let Some(protocol) = g.protocol.as_deref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in g.members.values() {
        let mut md = m.metadata_for(protocol);
        if md.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([md[0], md[1]]);
        let _ = bytes::Buf::get_i16(&mut md);
        if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut md, version.clamp(0, 3)) {
            out.extend(sub.topics.iter().map(|t| t.to_string()));
        }
    }
    out
}

/// What DescribeGroups reports.
#[derive(Debug)]
pub(crate) struct GroupDescription {
    pub(crate) state: GroupState,
    pub(crate) protocol_type: String,
    pub(crate) protocol: String,
    pub(crate) members: Vec<MemberDescription>,
}

#[derive(Debug)]
pub(crate) struct MemberDescription {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) metadata: Bytes,
    pub(crate) assignment: Bytes,
}

/// Reads the offsets topic from its start and rebuilds the latest value of every key.
fn replay(reader: &eddy_storage::LogReader) -> Result<(Inner, usize), BrokerError> {
    let mut latest: HashMap<Key, Option<Bytes>> = HashMap::new();
    let mut order: Vec<Key> = Vec::new();
    let mut count = 0usize;
    crate::topics::replay_internal(reader, OFFSETS_TOPIC, |key, value| {
        if let Some(k) = Key::decode(key) {
            if !latest.contains_key(&k) {
                order.push(k.clone());
            }
            latest.insert(k, value);
            count += 1;
        }
    })?;
    let mut inner = Inner::default();
    let now = Instant::now();
    let now_ms = now_ms();
    for k in order {
        let Some(Some(v)) = latest.remove(&k) else {
            continue;
        };
        match k {
            Key::Offset {
                group,
                topic,
                partition,
            } => {
                if let Some(val) = OffsetValue::decode(v) {
                    inner
                        .offsets
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), val);
                }
            }
            Key::Group { group } => {
                if let Some(gv) = GroupValue::decode(v) {
                    let g = Group::restore(&group, &gv, now, now_ms);
                    inner.groups.insert(group, g);
                }
            }
        }
    }
    Ok((inner, count))
}

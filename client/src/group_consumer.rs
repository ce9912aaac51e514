//! A consumer-group member (classic protocol, eager `range` assignment): joins, syncs,
//! heartbeats in the background, fetches its partitions from their committed offsets, and
//! commits what it has returned.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::cluster::Cluster;
use crate::consumer::{ConsumedRecord, Consumer, ConsumerConfig, StartAt};
use crate::error::ClientError;
use crate::groups::decode_assignment;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Group member settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Where to start partitions without a committed offset.
    pub reset: StartAt,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            reset: StartAt::Latest,
        }
    }
}

/// One member of a consumer group.
#[derive(Debug)]
pub struct GroupConsumer {
    cluster: Arc<Cluster>,
    group: String,
    topics: Vec<String>,
    config: GroupConfig,
    fetch: ConsumerConfig,
    member_id: String,
    generation: i32,
    consumer: Option<Consumer>,
    /// Set by the heartbeat task when the coordinator asks us to rejoin.
    rejoin: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

fn encode_versioned<T: Encodable>(v: &T, version: i16) -> Result<Bytes, ClientError> {
    let mut b = BytesMut::new();
    b.put_i16(version);
    v.encode(&mut b, version).map_err(|e| ClientError::Encode {
        api: "consumer protocol".into(),
        reason: e.to_string(),
    })?;
    Ok(b.freeze())
}

impl GroupConsumer {
    pub fn new(
        cluster: Arc<Cluster>,
        group: &str,
        topics: Vec<String>,
        config: GroupConfig,
        fetch: ConsumerConfig,
    ) -> GroupConsumer {
        GroupConsumer {
            cluster,
            group: group.to_string(),
            topics,
            config,
            fetch,
            member_id: String::new(),
            generation: -1,
            consumer: None,
            rejoin: Arc::new(AtomicBool::new(true)),
            heartbeat: None,
        }
    }

    /// Partitions currently assigned to this member.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.consumer
            .as_ref()
            .map(|c| c.positions().keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The next offset this member will read from `topic`/`partition`, if assigned.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.consumer
            .as_ref()
            .and_then(|c| c.positions().get(&(topic.to_string(), partition)).copied())
    }

    async fn join(&mut self) -> Result<(), ClientError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let conn = self.cluster.coordinator(&self.group).await?;
        let sub = ConsumerProtocolSubscription::default()
            .with_topics(self.topics.iter().map(|t| sb(t)).collect());
        let metadata = encode_versioned(&sub, 0)?;
        let (resp, v) = loop {
            let mut req = JoinGroupRequest::default();
            req.group_id = GroupId(sb(&self.group));
            req.session_timeout_ms = self.config.session_timeout.as_millis() as i32;
            req.rebalance_timeout_ms = self.config.rebalance_timeout.as_millis() as i32;
            req.member_id = sb(&self.member_id);
            req.protocol_type = sb("consumer");
            let mut p = JoinGroupRequestProtocol::default();
            p.name = sb("range");
            p.metadata = metadata.clone();
            req.protocols = vec![p];
            let v = conn.version_for::<JoinGroupRequest>()?;
            let resp = conn.send(&req).await?;
            if resp.error_code == ResponseError::MemberIdRequired.code() {
                self.member_id = resp.member_id.to_string();
                continue;
            }
            if resp.error_code == ResponseError::UnknownMemberId.code() {
                self.member_id.clear();
                continue;
            }
            if resp.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("join group '{}'", self.group),
                    resp.error_code,
                    None,
                ));
            }
            break (resp, v);
        };
        let _ = v;
        self.member_id = resp.member_id.to_string();
        self.generation = resp.generation_id;
        let mut assignments = Vec::new();
        if resp.leader.as_str() == self.member_id {
            let mut subs: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for m in &resp.members {
                let mut md = m.metadata.clone();
                let version = if md.len() >= 2 {
                    i16::from_be_bytes([md[0], md[1]]).clamp(0, 3)
                } else {
                    0
                };
                let topics = if md.len() >= 2 {
                    let _ = bytes::Buf::get_i16(&mut md);
                    ConsumerProtocolSubscription::decode(&mut md, version)
                        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                subs.insert(m.member_id.to_string(), topics);
            }
            assignments = self.range_assign(&subs).await?;
        }
        let mut sync = SyncGroupRequest::default();
        sync.group_id = GroupId(sb(&self.group));
        sync.generation_id = self.generation;
        sync.member_id = sb(&self.member_id);
        if conn.version_for::<SyncGroupRequest>()? >= 5 {
            sync.protocol_type = Some(sb("consumer"));
            sync.protocol_name = Some(sb("range"));
        }
        sync.assignments = assignments;
        let sresp = conn.send(&sync).await?;
        if sresp.error_code != 0 {
            return Err(ClientError::kafka(
                format!("sync group '{}'", self.group),
                sresp.error_code,
                None,
            ));
        }
        let mine = decode_assignment(&sresp.assignment);
        let committed = self.cluster.group_offsets(&self.group).await?;
        let mut consumer = Consumer::new(self.cluster.clone(), self.fetch.clone());
        for (t, p) in mine {
            let start = committed
                .get(&(t.clone(), p))
                .map(|(o, _)| StartAt::Offset(*o))
                .unwrap_or(self.config.reset);
            consumer.assign(&t, p, start).await?;
        }
        self.consumer = Some(consumer);
        self.rejoin.store(false, Ordering::Relaxed);
        self.heartbeat = Some(tokio::spawn(heartbeats(
            conn,
            self.group.clone(),
            self.member_id.clone(),
            self.generation,
            self.config.heartbeat_interval,
            self.rejoin.clone(),
        )));
        Ok(())
    }

    /// Range assignment per topic, as the Java client's RangeAssignor does it.
    async fn range_assign(
        &self,
        subs: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let mut per_member: BTreeMap<String, BTreeMap<String, Vec<i32>>> =
            subs.keys().map(|m| (m.clone(), BTreeMap::new())).collect();
        let mut topics: Vec<&String> = subs.values().flatten().collect();
        topics.sort();
        topics.dedup();
        for topic in topics {
            let n = self.cluster.topic(topic).await?.leaders.len() as i32;
            let members: Vec<&String> = subs
                .iter()
                .filter(|(_, ts)| ts.contains(topic))
                .map(|(m, _)| m)
                .collect();
            let k = members.len() as i32;
            if k == 0 {
                continue;
            }
            let (per, extra) = (n / k, n % k);
            let mut next = 0;
            for (i, m) in members.iter().enumerate() {
                let count = per + i32::from((i as i32) < extra);
                let parts: Vec<i32> = (next..next + count).collect();
                next += count;
                if let Some(x) = per_member.get_mut(*m) {
                    x.insert(topic.clone(), parts);
                }
            }
        }
        per_member
            .into_iter()
            .map(|(m, topics)| {
                let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            AssignedTopic::default()
                                .with_topic(TopicName(sb(&t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
                let mut s = SyncGroupRequestAssignment::default();
                s.member_id = sb(&m);
                s.assignment = encode_versioned(&a, 0)?;
                Ok(s)
            })
            .collect()
    }

    /// Fetches the next records, (re)joining the group first when needed.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, ClientError> {
        if self.rejoin.load(Ordering::Relaxed) || self.consumer.is_none() {
            self.join().await?;
        }
        match self.consumer.as_mut() {
            Some(c) => c.poll().await,
            None => Ok(Vec::new()),
        }
    }

    /// Commits the positions of everything returned so far.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let Some(c) = self.consumer.as_ref() else {
            return Ok(());
        };
        let positions = c.positions().clone();
        self.commit_offsets(&positions).await
    }

    /// Commits the given next-offsets (e.g. one past the last record actually processed).
    /// A refusal because the group is rebalancing makes the next poll rejoin.
    pub async fn commit_offsets(
        &mut self,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        if offsets.is_empty() || self.generation < 0 {
            return Ok(());
        }
        let r = self
            .cluster
            .commit_offsets_as(&self.group, self.generation, &self.member_id, offsets)
            .await;
        if let Err(e) = &r {
            let rejoin = [
                ResponseError::RebalanceInProgress.code(),
                ResponseError::IllegalGeneration.code(),
                ResponseError::UnknownMemberId.code(),
            ];
            if e.code().is_some_and(|c| rejoin.contains(&c)) {
                self.rejoin.store(true, Ordering::Relaxed);
            }
        }
        r
    }

    /// Leaves the group so the others rebalance at once.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.member_id.is_empty() {
            return Ok(());
        }
        let conn = self.cluster.coordinator(&self.group).await?;
        let mut req = LeaveGroupRequest::default();
        req.group_id = GroupId(sb(&self.group));
        if conn.version_for::<LeaveGroupRequest>()? >= 3 {
            let mut m = MemberIdentity::default();
            m.member_id = sb(&self.member_id);
            req.members = vec![m];
        } else {
            req.member_id = sb(&self.member_id);
        }
        let _ = conn.send(&req).await?;
        Ok(())
    }
}

async fn heartbeats(
    conn: Arc<crate::conn::Connection>,
    group: String,
    member: String,
    generation: i32,
    every: Duration,
    rejoin: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(sb(&group));
        req.member_id = sb(&member);
        req.generation_id = generation;
        match conn.send(&req).await {
            Ok(r) if r.error_code == 0 => {}
            Ok(r) => {
                tracing::debug!(group = %group, code = r.error_code, "heartbeat asks to rejoin");
                rejoin.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(group = %group, error = %e, "heartbeat failed");
                rejoin.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

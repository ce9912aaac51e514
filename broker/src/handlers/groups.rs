//! Consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, ResponseKind, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, Reply};
use crate::groups::JoinRequest;
use crate::server::Broker;

fn sb(s: &str) -> StrBytes {
    str_bytes(s)
}

fn invalid_group(id: &str) -> Option<i16> {
    id.is_empty().then(|| ResponseError::InvalidGroupId.code())
}

pub(super) fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> ResponseKind {
    let mut resp = FindCoordinatorResponse::default();
    let answer = |key_type: i8| -> (i16, Option<String>) {
        match key_type {
            // Groups and transactional ids: this node coordinates every one.
            0 | 1 => (0, None),
            other => (
                ResponseError::InvalidRequest.code(),
                Some(format!("unknown coordinator key type {other}")),
            ),
        }
    };
    if version < 4 {
        let (code, msg) = answer(req.key_type);
        resp.error_code = code;
        resp.error_message = msg.map(|m| sb(&m));
        if code == 0 {
            resp.node_id = broker.node_id.into();
            resp.host = sb(&broker.host);
            resp.port = broker.port;
        } else {
            resp.node_id = (-1).into();
            resp.port = -1;
        }
    } else {
        for key in req.coordinator_keys {
            let (code, msg) = answer(req.key_type);
            let mut c = CoordinatorEntry::default();
            c.key = key;
            c.error_code = code;
            c.error_message = msg.map(|m| sb(&m));
            if code == 0 {
                c.node_id = broker.node_id.into();
                c.host = sb(&broker.host);
                c.port = broker.port;
            } else {
                c.node_id = (-1).into();
                c.port = -1;
            }
            resp.coordinators.push(c);
        }
    }
    ResponseKind::FindCoordinator(resp)
}

pub(super) fn join_group(
    broker: Arc<Broker>,
    req: JoinGroupRequest,
    version: i16,
    peer: SocketAddr,
    client_id: String,
) -> Reply {
    Reply::Later(Box::pin(async move {
        let mut resp = JoinGroupResponse::default();
        resp.generation_id = -1;
        if let Some(code) = invalid_group(&req.group_id) {
            resp.error_code = code;
            resp.member_id = req.member_id;
            return ResponseKind::JoinGroup(resp);
        }
        let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        let rebalance = if version >= 1 {
            Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64)
        } else {
            session
        };
        let jr = JoinRequest {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id,
            client_host: format!("/{}", peer.ip()),
            session_timeout: session,
            rebalance_timeout: rebalance,
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: version >= 4,
        };
        let r = broker.groups.join(&req.group_id, jr).await;
        resp.error_code = r.error;
        resp.generation_id = r.generation;
        resp.protocol_type = r.protocol_type.as_deref().map(sb);
        resp.protocol_name = if version >= 7 {
            r.protocol.as_deref().map(sb)
        } else {
            Some(sb(r.protocol.as_deref().unwrap_or("")))
        };
        resp.leader = sb(&r.leader);
        resp.member_id = sb(&r.member_id);
        resp.members = r
            .members
            .into_iter()
            .map(|(id, instance, metadata)| {
                let mut m = JoinGroupResponseMember::default();
                m.member_id = sb(&id);
                m.group_instance_id = instance.as_deref().map(sb);
                m.metadata = metadata;
                m
            })
            .collect();
        ResponseKind::JoinGroup(resp)
    }))
}

pub(super) fn sync_group(broker: Arc<Broker>, req: SyncGroupRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        let mut resp = SyncGroupResponse::default();
        if let Some(code) = invalid_group(&req.group_id) {
            resp.error_code = code;
            return ResponseKind::SyncGroup(resp);
        }
        let assignments = req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect();
        let r = broker
            .groups
            .sync(
                &req.group_id,
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id,
                req.protocol_type.as_deref(),
                req.protocol_name.as_deref(),
                assignments,
            )
            .await;
        resp.error_code = r.error;
        resp.protocol_type = r.protocol_type.as_deref().map(sb);
        resp.protocol_name = r.protocol.as_deref().map(sb);
        resp.assignment = r.assignment;
        ResponseKind::SyncGroup(resp)
    }))
}

pub(super) async fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> ResponseKind {
    let mut resp = HeartbeatResponse::default();
    resp.error_code = match invalid_group(&req.group_id) {
        Some(c) => c,
        None => {
            broker
                .groups
                .heartbeat(
                    &req.group_id,
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                    req.generation_id,
                )
                .await
        }
    };
    ResponseKind::Heartbeat(resp)
}

pub(super) async fn leave_group(
    broker: &Broker,
    req: LeaveGroupRequest,
    version: i16,
) -> ResponseKind {
    let mut resp = LeaveGroupResponse::default();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match broker.groups.leave(&req.group_id, &members).await {
        Err(code) => resp.error_code = code,
        Ok(codes) => {
            if version >= 3 {
                for ((id, instance), code) in members.iter().zip(codes) {
                    let mut m = MemberResponse::default();
                    m.member_id = sb(id);
                    m.group_instance_id = instance.as_deref().map(sb);
                    m.error_code = code;
                    resp.members.push(m);
                }
            } else {
                resp.error_code = codes.first().copied().unwrap_or(0);
            }
        }
    }
    ResponseKind::LeaveGroup(resp)
}

pub(super) fn offset_commit(broker: Arc<Broker>, req: OffsetCommitRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        let mut commits = Vec::new();
        for t in &req.topics {
            for p in &t.partitions {
                commits.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_deref().unwrap_or("").to_string(),
                ));
            }
        }
        let codes = if let Some(code) = invalid_group(&req.group_id) {
            vec![code; commits.len()]
        } else {
            let b = broker.clone();
            broker
                .groups
                .commit(
                    &req.group_id,
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                    req.generation_id_or_member_epoch,
                    commits,
                    move |t, p| {
                        b.topics
                            .get(t)
                            .and_then(|tp| tp.partition(p).cloned())
                            .is_some()
                    },
                )
                .await
        };
        let mut resp = OffsetCommitResponse::default();
        let mut it = codes.into_iter();
        for t in req.topics {
            let mut tr = OffsetCommitResponseTopic::default();
            tr.name = t.name;
            tr.topic_id = t.topic_id;
            for p in t.partitions {
                let mut pr = OffsetCommitResponsePartition::default();
                pr.partition_index = p.partition_index;
                pr.error_code = it.next().unwrap_or(0);
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        ResponseKind::OffsetCommit(resp)
    }))
}

/// Requested partitions of one group: `None` means all committed offsets.
type Wanted = Option<Vec<(String, i32)>>;

/// One partition's committed offset, in the shape both OffsetFetch layouts (v8+ with several
/// groups, and older) carry it.
struct FetchedOffset {
    partition: i32,
    error_code: i16,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

/// The committed offsets of `group` for `wanted`, grouped by topic in first-seen order.
fn fetched_offsets(
    broker: &Broker,
    group: &str,
    wanted: Wanted,
    unstable: impl Fn(&str, &str, i32) -> Option<i16>,
) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut topics: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for (t, p, v) in broker.groups.fetch_offsets(group, wanted) {
        let row = FetchedOffset {
            partition: p,
            error_code: unstable(group, &t, p).unwrap_or(0),
            offset: v.as_ref().map_or(-1, |v| v.offset),
            leader_epoch: v.as_ref().map_or(-1, |v| v.leader_epoch),
            metadata: v.map(|v| v.metadata.to_string()).unwrap_or_default(),
        };
        match topics.iter_mut().find(|(name, _)| *name == t) {
            Some((_, rows)) => rows.push(row),
            None => topics.push((t, vec![row])),
        }
    }
    topics
}

pub(super) fn offset_fetch(broker: &Broker, req: OffsetFetchRequest, version: i16) -> ResponseKind {
    let mut resp = OffsetFetchResponse::default();
    // v7+: a consumer that asks for stable offsets must wait while a transaction holds an
    // uncommitted offset for the partition (it retries on UNSTABLE_OFFSET_COMMIT).
    let unstable = |group: &str, topic: &str, partition: i32| {
        (req.require_stable && broker.txn.has_pending_offset(group, topic, partition))
            .then(|| ResponseError::UnstableOffsetCommit.code())
    };
    if version >= 8 {
        for g in req.groups {
            let wanted: Wanted = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(move |p| (t.name.0.to_string(), *p))
                    })
                    .collect()
            });
            let mut gr = OffsetFetchResponseGroup::default();
            gr.group_id = g.group_id.clone();
            gr.error_code = invalid_group(&g.group_id).unwrap_or(0);
            for (t, rows) in fetched_offsets(broker, &g.group_id, wanted, unstable) {
                let mut x = OffsetFetchResponseTopics::default();
                x.name = TopicName(sb(&t));
                for r in rows {
                    let mut pr = OffsetFetchResponsePartitions::default();
                    pr.partition_index = r.partition;
                    pr.error_code = r.error_code;
                    pr.committed_offset = r.offset;
                    pr.committed_leader_epoch = r.leader_epoch;
                    pr.metadata = Some(sb(&r.metadata));
                    x.partitions.push(pr);
                }
                gr.topics.push(x);
            }
            resp.groups.push(gr);
        }
    } else {
        let wanted: Wanted = req.topics.as_ref().map(|ts| {
            ts.iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(move |p| (t.name.0.to_string(), *p))
                })
                .collect()
        });
        resp.error_code = invalid_group(&req.group_id).unwrap_or(0);
        for (t, rows) in fetched_offsets(broker, &req.group_id, wanted, unstable) {
            let mut x = OffsetFetchResponseTopic::default();
            x.name = TopicName(sb(&t));
            for r in rows {
                let mut pr = OffsetFetchResponsePartition::default();
                pr.partition_index = r.partition;
                pr.error_code = r.error_code;
                pr.committed_offset = r.offset;
                pr.committed_leader_epoch = r.leader_epoch;
                pr.metadata = Some(sb(&r.metadata));
                x.partitions.push(pr);
            }
            resp.topics.push(x);
        }
    }
    ResponseKind::OffsetFetch(resp)
}

pub(super) fn list_groups(broker: &Broker, req: ListGroupsRequest) -> ResponseKind {
    let mut resp = ListGroupsResponse::default();
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    for (id, protocol_type, state) in broker.groups.list() {
        if !states.is_empty() && !states.contains(&state.name().to_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.contains(&"classic".to_string()) {
            continue;
        }
        let mut g = ListedGroup::default();
        g.group_id = GroupId(sb(&id));
        g.protocol_type = sb(&protocol_type);
        g.group_state = sb(state.name());
        g.group_type = sb("classic");
        resp.groups.push(g);
    }
    ResponseKind::ListGroups(resp)
}

pub(super) fn describe_groups(broker: &Broker, req: DescribeGroupsRequest) -> ResponseKind {
    let mut resp = DescribeGroupsResponse::default();
    for id in req.groups {
        let mut g = DescribedGroup::default();
        g.group_id = id.clone();
        g.authorized_operations = i32::MIN;
        if let Some(code) = invalid_group(&id) {
            g.error_code = code;
            resp.groups.push(g);
            continue;
        }
        match broker.groups.describe(&id) {
            None => {
                // Kafka describes an unknown group as Dead with no members.
                g.group_state = sb("Dead");
            }
            Some(d) => {
                g.group_state = sb(d.state.name());
                g.protocol_type = sb(&d.protocol_type);
                g.protocol_data = sb(&d.protocol);
                g.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut x = DescribedGroupMember::default();
                        x.member_id = sb(&m.member_id);
                        x.group_instance_id = m.instance_id.as_deref().map(sb);
                        x.client_id = sb(&m.client_id);
                        x.client_host = sb(&m.client_host);
                        x.member_metadata = m.metadata;
                        x.member_assignment = m.assignment;
                        x
                    })
                    .collect();
            }
        }
        resp.groups.push(g);
    }
    ResponseKind::DescribeGroups(resp)
}

pub(super) async fn delete_groups(broker: &Broker, req: DeleteGroupsRequest) -> ResponseKind {
    let mut resp = DeleteGroupsResponse::default();
    for id in req.groups_names {
        let mut r = DeletableGroupResult::default();
        r.error_code = match invalid_group(&id) {
            Some(c) => c,
            None => broker.groups.delete_group(&id).await,
        };
        r.group_id = id;
        resp.results.push(r);
    }
    ResponseKind::DeleteGroups(resp)
}

pub(super) async fn offset_delete(broker: &Broker, req: OffsetDeleteRequest) -> ResponseKind {
    let mut resp = OffsetDeleteResponse::default();
    let parts: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    match broker.groups.delete_offsets(&req.group_id, parts).await {
        Err(code) => resp.error_code = code,
        Ok(codes) => {
            let mut it = codes.into_iter();
            for t in req.topics {
                let mut tr = OffsetDeleteResponseTopic::default();
                tr.name = t.name;
                for p in t.partitions {
                    let mut pr = OffsetDeleteResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    pr.error_code = it.next().unwrap_or(0);
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
        }
    }
    ResponseKind::OffsetDelete(resp)
}

//! Consumer-group administration over the protocol: list, describe (members, assignments,
//! committed offsets, lag) and offset resets. Works against any Kafka-compatible cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::cluster::Cluster;
use crate::conn::Connection;
use crate::error::ClientError;

/// One member of a described group.
#[derive(Debug, Clone)]
pub struct GroupMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// (topic, partition) assigned to this member (consumer protocol only).
    pub assignment: Vec<(String, i32)>,
}

/// A described group.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Decodes consumer-protocol assignment bytes (i16 version prefix, then the struct).
pub fn decode_assignment(bytes: &Bytes) -> Vec<(String, i32)> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, 3);
    let mut body = bytes.slice(2..);
    match ConsumerProtocolAssignment::decode(&mut body, version) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(move |p| (tp.topic.0.to_string(), *p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

impl Cluster {
    /// The coordinator of `group`.
    pub async fn coordinator(&self, group: &str) -> Result<Arc<Connection>, ClientError> {
        let conn = self.any().await?;
        let mut req = FindCoordinatorRequest::default();
        let v = conn.version_for::<FindCoordinatorRequest>()?;
        if v >= 4 {
            req.coordinator_keys = vec![sb(group)];
        } else {
            req.key = sb(group);
        }
        let resp = conn.send(&req).await?;
        let (code, node) = if v >= 4 {
            match resp.coordinators.first() {
                Some(c) => (c.error_code, c.node_id.0),
                None => (-1, -1),
            }
        } else {
            (resp.error_code, resp.node_id.0)
        };
        if code != 0 {
            return Err(ClientError::kafka(
                format!("find coordinator of group '{group}'"),
                code,
                None,
            ));
        }
        self.refresh(Some(&[])).await?;
        self.node(node).await
    }

    /// Every group: (id, protocol type, state).
    pub async fn list_groups(&self) -> Result<Vec<(String, String, String)>, ClientError> {
        let conn = self.any().await?;
        let resp = conn.send(&ListGroupsRequest::default()).await?;
        if resp.error_code != 0 {
            return Err(ClientError::kafka("list groups", resp.error_code, None));
        }
        let mut out: Vec<_> = resp
            .groups
            .into_iter()
            .map(|g| {
                (
                    g.group_id.0.to_string(),
                    g.protocol_type.to_string(),
                    g.group_state.to_string(),
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }

    pub async fn describe_group(&self, group: &str) -> Result<GroupInfo, ClientError> {
        let conn = self.coordinator(group).await?;
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(sb(group))];
        let resp = conn.send(&req).await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Decode {
                api: "DescribeGroups".into(),
                reason: "empty answer".into(),
            })?;
        if g.error_code != 0 {
            return Err(ClientError::kafka(
                format!("describe group '{group}'"),
                g.error_code,
                None,
            ));
        }
        Ok(GroupInfo {
            group: group.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    instance_id: m.group_instance_id.map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: decode_assignment(&m.member_assignment),
                })
                .collect(),
        })
    }

    /// Committed offsets of a group: (topic, partition) -> (offset, metadata).
    pub async fn group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), (i64, String)>, ClientError> {
        let conn = self.coordinator(group).await?;
        let v = conn.version_for::<OffsetFetchRequest>()?;
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            let mut g =
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default();
            g.group_id = GroupId(sb(group));
            g.topics = None;
            req.groups = vec![g];
        } else {
            req.group_id = GroupId(sb(group));
            req.topics = None;
        }
        let resp = conn.send(&req).await?;
        let mut out = BTreeMap::new();
        if v >= 8 {
            for g in resp.groups {
                if g.error_code != 0 {
                    return Err(ClientError::kafka(
                        format!("fetch offsets of '{group}'"),
                        g.error_code,
                        None,
                    ));
                }
                for t in g.topics {
                    for p in t.partitions {
                        if p.committed_offset >= 0 {
                            out.insert(
                                (t.name.0.to_string(), p.partition_index),
                                (
                                    p.committed_offset,
                                    p.metadata.map(|m| m.to_string()).unwrap_or_default(),
                                ),
                            );
                        }
                    }
                }
            }
        } else {
            if resp.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("fetch offsets of '{group}'"),
                    resp.error_code,
                    None,
                ));
            }
            for t in resp.topics {
                for p in t.partitions {
                    if p.committed_offset >= 0 {
                        out.insert(
                            (t.name.0.to_string(), p.partition_index),
                            (
                                p.committed_offset,
                                p.metadata.map(|m| m.to_string()).unwrap_or_default(),
                            ),
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// Commits offsets for a group with no active members (generation -1).
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        self.commit_offsets_as(group, -1, "", offsets)
            .await
            .map_err(|e| match e {
                ClientError::Kafka {
                    context,
                    code,
                    name,
                    message,
                } => ClientError::Kafka {
                    context: format!("{context} (is the group empty?)"),
                    code,
                    name,
                    message,
                },
                other => other,
            })
    }

    /// OffsetCommit for `group` as member `member` of `generation` (-1 and "" for a group
    /// with no members); fails on the first partition the coordinator refused.
    pub async fn commit_offsets_as(
        &self,
        group: &str,
        generation: i32,
        member: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        let conn = self.coordinator(group).await?;
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(sb(group));
        req.generation_id_or_member_epoch = generation;
        req.member_id = sb(member);
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for ((t, p), off) in offsets {
            let mut rp = OffsetCommitRequestPartition::default();
            rp.partition_index = *p;
            rp.committed_offset = *off;
            rp.committed_leader_epoch = -1;
            rp.committed_metadata = Some(sb(""));
            match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
                Some(x) => x.partitions.push(rp),
                None => {
                    let mut x = OffsetCommitRequestTopic::default();
                    x.name = TopicName(sb(t));
                    x.partitions.push(rp);
                    topics.push(x);
                }
            }
        }
        req.topics = topics;
        let resp = conn.send(&req).await?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(ClientError::kafka(
                        format!(
                            "commit offset of {}-{} for group '{group}'",
                            t.name.0.as_str(),
                            p.partition_index
                        ),
                        p.error_code,
                        None,
                    ));
                }
            }
        }
        Ok(())
    }
}

//! Bootstrap, metadata and connections to every broker of a cluster, plus the admin calls
//! the CLI needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, ListOffsetsRequest,
    MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;

use crate::conn::Connection;
use crate::error::ClientError;

/// What the client knows of one topic.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: String,
    pub internal: bool,
    /// Leader node id per partition index.
    pub leaders: Vec<i32>,
}

/// A connection pool and metadata cache for one cluster.
#[derive(Debug)]
pub struct Cluster {
    bootstrap: Vec<String>,
    client_id: String,
    brokers: Mutex<HashMap<i32, String>>,
    conns: Mutex<HashMap<String, Arc<Connection>>>,
    topics: Mutex<HashMap<String, TopicInfo>>,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Cluster {
    /// Connects to the first reachable bootstrap server (comma-separated list).
    pub async fn connect(bootstrap: &str, client_id: &str) -> Result<Arc<Cluster>, ClientError> {
        let c = Arc::new(Cluster {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            client_id: client_id.to_string(),
            brokers: Mutex::default(),
            conns: Mutex::default(),
            topics: Mutex::default(),
        });
        c.any().await?;
        Ok(c)
    }

    async fn conn_to(&self, addr: &str) -> Result<Arc<Connection>, ClientError> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(addr) {
            return Ok(c.clone());
        }
        let c = Arc::new(Connection::connect(addr, &self.client_id).await?);
        conns.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Forgets a connection that failed so the next call reconnects.
    pub async fn drop_conn(&self, addr: &str) {
        self.conns.lock().await.remove(addr);
    }

    /// A connection to any broker (bootstrap servers first).
    pub async fn any(&self) -> Result<Arc<Connection>, ClientError> {
        let mut errors = Vec::new();
        let known: Vec<String> = self.brokers.lock().await.values().cloned().collect();
        for addr in self.bootstrap.iter().chain(known.iter()) {
            match self.conn_to(addr).await {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(ClientError::NoBroker(errors.join("; ")))
    }

    /// A connection to broker `node`.
    pub async fn node(&self, node: i32) -> Result<Arc<Connection>, ClientError> {
        let addr = self.brokers.lock().await.get(&node).cloned();
        match addr {
            Some(a) => self.conn_to(&a).await,
            None => self.any().await,
        }
    }

    /// Refreshes metadata for `topics` (all topics when `None`). Unknown topics are not
    /// created.
    pub async fn refresh(&self, topics: Option<&[&str]>) -> Result<Vec<TopicInfo>, ClientError> {
        self.refresh_inner(topics, false).await
    }

    /// Metadata of one topic, letting the broker auto-create it if it is configured to
    /// (as producers do).
    pub async fn topic_or_create(&self, name: &str) -> Result<TopicInfo, ClientError> {
        if let Some(t) = self.topics.lock().await.get(name).cloned() {
            return Ok(t);
        }
        self.refresh_inner(Some(&[name]), true).await?;
        self.topics
            .lock()
            .await
            .get(name)
            .cloned()
            .ok_or_else(|| ClientError::UnknownTopic(name.to_string()))
    }

    async fn refresh_inner(
        &self,
        topics: Option<&[&str]>,
        auto_create: bool,
    ) -> Result<Vec<TopicInfo>, ClientError> {
        let conn = self.any().await?;
        let mut req = MetadataRequest::default();
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    let mut m = MetadataRequestTopic::default();
                    m.name = Some(TopicName(sb(t)));
                    m
                })
                .collect()
        });
        req.allow_auto_topic_creation = auto_create;
        let resp = conn.send(&req).await?;
        {
            let mut b = self.brokers.lock().await;
            for br in &resp.brokers {
                b.insert(br.node_id.0, format!("{}:{}", br.host.as_str(), br.port));
            }
        }
        let mut out = Vec::new();
        let mut cache = self.topics.lock().await;
        for t in resp.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code != 0 {
                if t.error_code == 3 {
                    cache.remove(&name);
                    continue;
                }
                return Err(ClientError::kafka(
                    format!("metadata for topic '{name}'"),
                    t.error_code,
                    None,
                ));
            }
            let mut parts: Vec<_> = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0))
                .collect();
            parts.sort();
            let info = TopicInfo {
                name: name.clone(),
                id: t.topic_id.to_string(),
                internal: t.is_internal,
                leaders: parts.into_iter().map(|(_, l)| l).collect(),
            };
            cache.insert(name, info.clone());
            out.push(info);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Metadata of one topic, refreshing if unknown.
    pub async fn topic(&self, name: &str) -> Result<TopicInfo, ClientError> {
        if let Some(t) = self.topics.lock().await.get(name).cloned() {
            return Ok(t);
        }
        self.refresh(Some(&[name])).await?;
        self.topics
            .lock()
            .await
            .get(name)
            .cloned()
            .ok_or_else(|| ClientError::UnknownTopic(name.to_string()))
    }

    /// Connection to the leader of `topic`/`partition`.
    pub async fn leader(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Connection>, ClientError> {
        let t = self.topic(topic).await?;
        let leader = *t
            .leaders
            .get(partition as usize)
            .ok_or(ClientError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            })?;
        self.node(leader).await
    }

    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ClientError> {
        let conn = self.any().await?;
        let mut t = CreatableTopic::default();
        t.name = TopicName(sb(name));
        t.num_partitions = partitions;
        t.replication_factor = -1;
        t.configs = configs
            .iter()
            .map(|(k, v)| {
                let mut c = CreatableTopicConfig::default();
                c.name = sb(k);
                c.value = Some(sb(v));
                c
            })
            .collect();
        let mut req = CreateTopicsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 30_000;
        let resp = conn.send(&req).await?;
        for r in resp.topics {
            if r.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("create topic '{name}'"),
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let conn = self.any().await?;
        let mut req = DeleteTopicsRequest::default();
        let mut st = DeleteTopicState::default();
        st.name = Some(TopicName(sb(name)));
        req.topics = vec![st];
        req.topic_names = vec![TopicName(sb(name))];
        req.timeout_ms = 30_000;
        let resp = conn.send(&req).await?;
        for r in resp.responses {
            if r.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("delete topic '{name}'"),
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                ));
            }
        }
        self.topics.lock().await.remove(name);
        Ok(())
    }

    /// A topic's effective configs: (name, value, is_default).
    pub async fn topic_configs(
        &self,
        name: &str,
    ) -> Result<Vec<(String, String, bool)>, ClientError> {
        let conn = self.any().await?;
        let mut res = DescribeConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(name);
        res.configuration_keys = None;
        let mut req = DescribeConfigsRequest::default();
        req.resources = vec![res];
        let resp = conn.send(&req).await?;
        let mut out = Vec::new();
        for r in resp.results {
            if r.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("describe configs of '{name}'"),
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                ));
            }
            for c in r.configs {
                out.push((
                    c.name.to_string(),
                    c.value.map(|v| v.to_string()).unwrap_or_default(),
                    c.config_source == 5,
                ));
            }
        }
        Ok(out)
    }

    /// ListOffsets for one partition: `-2` earliest, `-1` latest, or a timestamp.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        at: i64,
    ) -> Result<i64, ClientError> {
        self.list_offset_isolated(topic, partition, at, false).await
    }

    /// [`Cluster::list_offset`] with an isolation level: read_committed answers the last
    /// stable offset for `-1` (latest), where transactions still open end the readable log.
    pub async fn list_offset_isolated(
        &self,
        topic: &str,
        partition: i32,
        at: i64,
        read_committed: bool,
    ) -> Result<i64, ClientError> {
        let conn = self.leader(topic, partition).await?;
        let mut p = ListOffsetsPartition::default();
        p.partition_index = partition;
        p.timestamp = at;
        p.current_leader_epoch = -1;
        let mut t = ListOffsetsTopic::default();
        t.name = TopicName(sb(topic));
        t.partitions = vec![p];
        let mut req = ListOffsetsRequest::default();
        req.replica_id = (-1).into();
        req.isolation_level = i8::from(read_committed);
        req.topics = vec![t];
        let resp = conn.send(&req).await?;
        let first = resp.topics.into_iter().flat_map(|t| t.partitions).next();
        if let Some(p) = first {
            if p.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("list offsets of {topic}-{partition}"),
                    p.error_code,
                    None,
                ));
            }
            return Ok(p.offset);
        }
        Err(ClientError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        })
    }
}

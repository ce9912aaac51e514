//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! DeleteRecords.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind, TopicName,
};
use uuid::Uuid;

use super::str_bytes;
use crate::config::{self, Def};
use crate::error::{BrokerError, NONE};
use crate::server::Broker;

/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub(super) async fn create_topics(
    broker: &Broker,
    req: CreateTopicsRequest,
    version: i16,
) -> ResponseKind {
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        let result = async {
            if !(t.replication_factor == -1 || t.replication_factor == 1) {
                return Err(BrokerError::InvalidReplicationFactor(t.replication_factor));
            }
            let partitions = if !t.assignments.is_empty() {
                if t.num_partitions != -1 {
                    return Err(BrokerError::InvalidRequest(
                        "give either num_partitions or a replica assignment, not both".into(),
                    ));
                }
                for a in &t.assignments {
                    if a.broker_ids.iter().any(|b| b.0 != broker.node_id) || a.broker_ids.len() != 1
                    {
                        return Err(BrokerError::InvalidReplicationFactor(
                            a.broker_ids.len() as i16
                        ));
                    }
                }
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                broker.config.long("num.partitions") as i32
            } else {
                t.num_partitions
            };
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                if let Some(v) = &c.value {
                    configs.insert(c.name.to_string(), v.to_string());
                }
            }
            broker
                .topics
                .create(&name, partitions, configs, req.validate_only)
                .await
        }
        .await;
        match result {
            Ok(topic) => {
                r.error_code = NONE;
                r.topic_id = if req.validate_only {
                    Uuid::nil()
                } else {
                    topic.id
                };
                r.num_partitions = if req.validate_only {
                    t.num_partitions
                        .max(broker.config.long("num.partitions") as i32)
                } else {
                    topic.partitions.len() as i32
                };
                r.replication_factor = 1;
                if version >= 5 {
                    r.configs = Some(
                        config::topic_defs()
                            .filter_map(|d| d.topic_name)
                            .map(|name| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = str_bytes(name);
                                c.value = Some(str_bytes(config::topic_value(
                                    &broker.config,
                                    &topic.configs,
                                    name,
                                )));
                                c.config_source = if topic.configs.contains_key(name) {
                                    SOURCE_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                };
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => {
                tracing::debug!(topic = %name, error = %e, "create topic refused");
                r.error_code = e.code();
                r.error_message = Some(str_bytes(&e.to_string()));
            }
        }
        resp.topics.push(r);
    }
    ResponseKind::CreateTopics(resp)
}

pub(super) async fn delete_topics(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
) -> ResponseKind {
    let mut resp = DeleteTopicsResponse::default();
    // v6 names topics (by name or id) in `topics`; older versions list names.
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    for (name, id) in wanted {
        let mut r = DeletableTopicResult::default();
        let resolved = match (&name, id) {
            (Some(n), _) => Ok(n.clone()),
            (None, id) => broker
                .topics
                .get_by_id(id)
                .map(|t| t.name.clone())
                .ok_or(BrokerError::UnknownTopicId(id)),
        };
        let outcome = match resolved {
            Ok(n) => {
                r.name = Some(TopicName(str_bytes(&n)));
                broker.topics.delete(&n).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(tid) => {
                r.topic_id = tid;
                r.error_code = NONE;
            }
            Err(e) => {
                r.topic_id = id;
                r.error_code = e.code();
                r.error_message = Some(str_bytes(&e.to_string()));
            }
        }
        resp.responses.push(r);
    }
    ResponseKind::DeleteTopics(resp)
}

pub(super) async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> ResponseKind {
    let mut resp = CreatePartitionsResponse::default();
    for t in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        match broker
            .topics
            .add_partitions(&t.name.0, t.count, req.validate_only)
            .await
        {
            Ok(()) => r.error_code = NONE,
            Err(e) => {
                r.error_code = e.code();
                r.error_message = Some(str_bytes(&e.to_string()));
            }
        }
        resp.results.push(r);
    }
    ResponseKind::CreatePartitions(resp)
}

fn config_entry(
    def: &Def,
    name: &str,
    value: &str,
    source: i8,
    synonyms: Vec<DescribeConfigsSynonym>,
    include_docs: bool,
) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = str_bytes(name);
    c.value = Some(str_bytes(value));
    c.read_only = false;
    c.config_source = source;
    c.is_sensitive = false;
    c.synonyms = synonyms;
    c.config_type = def.kind.type_code();
    c.documentation = include_docs.then(|| str_bytes(def.doc));
    c
}

pub(super) fn describe_configs(
    broker: &Broker,
    req: DescribeConfigsRequest,
    _version: i16,
) -> ResponseKind {
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let keys: Option<Vec<String>> = res
            .configuration_keys
            .as_ref()
            .map(|k| k.iter().map(|s| s.to_string()).collect());
        let wanted = |n: &str| {
            keys.as_ref()
                .map(|k| k.iter().any(|x| x == n))
                .unwrap_or(true)
        };
        match res.resource_type {
            RESOURCE_TOPIC => match broker.topics.get(&res.resource_name) {
                None => {
                    let e = BrokerError::UnknownTopic(res.resource_name.to_string());
                    out.error_code = e.code();
                    out.error_message = Some(str_bytes(&e.to_string()));
                }
                Some(topic) => {
                    for def in config::topic_defs() {
                        let Some(name) = def.topic_name else { continue };
                        if !wanted(name) {
                            continue;
                        }
                        let broker_value = broker.config.get(def.name);
                        let broker_source = if broker.config.is_explicit(def.name) {
                            SOURCE_STATIC_BROKER
                        } else {
                            SOURCE_DEFAULT
                        };
                        let mut synonyms = Vec::new();
                        let (value, source) = match topic.configs.get(name) {
                            Some(v) => {
                                if req.include_synonyms {
                                    let mut s = DescribeConfigsSynonym::default();
                                    s.name = str_bytes(name);
                                    s.value = Some(str_bytes(v));
                                    s.source = SOURCE_TOPIC;
                                    synonyms.push(s);
                                }
                                (v.as_str(), SOURCE_TOPIC)
                            }
                            None => (broker_value, broker_source),
                        };
                        if req.include_synonyms {
                            let mut s = DescribeConfigsSynonym::default();
                            s.name = str_bytes(def.name);
                            s.value = Some(str_bytes(broker_value));
                            s.source = broker_source;
                            synonyms.push(s);
                        }
                        out.configs.push(config_entry(
                            def,
                            name,
                            value,
                            source,
                            synonyms,
                            req.include_documentation,
                        ));
                    }
                }
            },
            RESOURCE_BROKER => {
                let me = broker.node_id.to_string();
                if !res.resource_name.is_empty() && res.resource_name.as_str() != me {
                    let e = BrokerError::InvalidRequest(format!(
                        "broker '{}' is not this broker (node id {me})",
                        res.resource_name.as_str()
                    ));
                    out.error_code = e.code();
                    out.error_message = Some(str_bytes(&e.to_string()));
                } else {
                    for (def, value) in broker.config.entries() {
                        if !wanted(def.name) {
                            continue;
                        }
                        let source = if broker.config.is_explicit(def.name) {
                            SOURCE_STATIC_BROKER
                        } else {
                            SOURCE_DEFAULT
                        };
                        let mut e = config_entry(
                            def,
                            def.name,
                            value,
                            source,
                            Vec::new(),
                            req.include_documentation,
                        );
                        e.read_only = true;
                        out.configs.push(e);
                    }
                }
            }
            other => {
                let e = BrokerError::InvalidRequest(format!(
                    "config resource type {other} is not supported (use 2 for topics, 4 for brokers)"
                ));
                out.error_code = e.code();
                out.error_message = Some(str_bytes(&e.to_string()));
            }
        }
        resp.results.push(out);
    }
    ResponseKind::DescribeConfigs(resp)
}

pub(super) async fn delete_records(broker: &Broker, req: DeleteRecordsRequest) -> ResponseKind {
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let topic = broker.topics.get(&t.name.0);
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut r = DeleteRecordsPartitionResult::default();
            r.partition_index = p.partition_index;
            r.low_watermark = -1;
            match topic
                .as_ref()
                .and_then(|tp| tp.partition(p.partition_index))
            {
                None => r.error_code = BrokerError::UnknownTopic(String::new()).code(),
                Some(part) => {
                    let end = part.reader().log_end_offset();
                    // -1 means "up to the high watermark".
                    let target = if p.offset == -1 { end } else { p.offset };
                    if target < 0 || target > end {
                        r.error_code =
                            kafka_protocol::error::ResponseError::OffsetOutOfRange.code();
                    } else {
                        match part.delete_records(target).await {
                            Ok(low) => {
                                r.error_code = NONE;
                                r.low_watermark = low;
                            }
                            Err(e) => r.error_code = BrokerError::from(e).code(),
                        }
                    }
                }
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    ResponseKind::DeleteRecords(resp)
}

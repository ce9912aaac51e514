//! Metadata: brokers, topics, partitions; auto-creates unknown topics when allowed.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, ResponseKind, TopicName};
use std::collections::BTreeMap;

use super::str_bytes;
use crate::error::{BrokerError, NONE};
use crate::server::Broker;
use crate::topics::Topic;

pub(super) async fn metadata(broker: &Broker, req: MetadataRequest, version: i16) -> ResponseKind {
    let mut resp = MetadataResponse::default();
    let mut b = MetadataResponseBroker::default();
    b.node_id = broker.node_id.into();
    b.host = str_bytes(&broker.host);
    b.port = broker.port;
    resp.brokers = vec![b];
    resp.cluster_id = Some(str_bytes(&broker.cluster_id));
    resp.controller_id = broker.node_id.into();
    resp.cluster_authorized_operations = i32::MIN;

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let wanted = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create = broker.config.bool("auto.create.topics.enable")
        && (version < 4 || req.allow_auto_topic_creation);
    match wanted {
        None => {
            for t in broker.topics.all() {
                resp.topics.push(topic_entry(broker, &t));
            }
        }
        Some(list) => {
            for rt in list {
                let name = rt.name.as_ref().map(|n| n.0.to_string());
                let entry = match name {
                    Some(name) => match broker.topics.get(&name) {
                        Some(t) => topic_entry(broker, &t),
                        None if auto_create => {
                            let n = broker.config.long("num.partitions") as i32;
                            match broker.topics.create(&name, n, BTreeMap::new(), false).await {
                                Ok(t) => topic_entry(broker, &t),
                                Err(BrokerError::TopicExists(_)) => {
                                    match broker.topics.get(&name) {
                                        Some(t) => topic_entry(broker, &t),
                                        None => error_entry(
                                            Some(name),
                                            BrokerError::UnknownTopic(String::new()).code(),
                                        ),
                                    }
                                }
                                Err(e) => error_entry(Some(name), e.code()),
                            }
                        }
                        None => {
                            error_entry(Some(name.clone()), BrokerError::UnknownTopic(name).code())
                        }
                    },
                    None => match broker.topics.get_by_id(rt.topic_id) {
                        Some(t) => topic_entry(broker, &t),
                        None => {
                            let mut e =
                                error_entry(None, BrokerError::UnknownTopicId(rt.topic_id).code());
                            e.topic_id = rt.topic_id;
                            e
                        }
                    },
                };
                resp.topics.push(entry);
            }
        }
    }
    ResponseKind::Metadata(resp)
}

fn error_entry(name: Option<String>, code: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = code;
    t.name = name.map(|n| TopicName(str_bytes(&n)));
    t.topic_authorized_operations = i32::MIN;
    t
}

fn topic_entry(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = NONE;
    t.name = Some(TopicName(str_bytes(&topic.name)));
    t.topic_id = topic.id;
    t.is_internal = crate::topics::is_internal(&topic.name);
    t.topic_authorized_operations = i32::MIN;
    t.partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let mut mp = MetadataResponsePartition::default();
            mp.error_code = NONE;
            mp.partition_index = p.index;
            mp.leader_id = broker.node_id.into();
            mp.leader_epoch = 0;
            mp.replica_nodes = vec![broker.node_id.into()];
            mp.isr_nodes = vec![broker.node_id.into()];
            mp
        })
        .collect();
    t
}

//! Produce: validate each partition's batch (a zero-copy header view, CRC-32C, counts,
//! size), patch nothing but the header fields the CRC does not cover (plus LogAppendTime,
//! which recomputes the CRC), and queue it on the partition's writer. Records are never
//! re-encoded. Transactional batches are checked against the producer's transaction by the
//! writer.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_protocol::batch::{patch, BatchHeader};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind, TopicName};
use tokio::sync::oneshot;

use super::{now_ms, str_bytes, Reply};
use crate::config;
use crate::error::{BrokerError, NONE};
use crate::partition::{AppendResult, Durability};
use crate::server::Broker;
use crate::topics::Topic;

/// Outcome of one partition's part of a produce request.
enum Slot {
    Queued {
        rx: oneshot::Receiver<AppendResult>,
        log_append_time: Option<i64>,
        topic: Arc<Topic>,
        index: i32,
    },
    Failed(BrokerError),
}

pub(super) async fn produce(broker: Arc<Broker>, req: ProduceRequest, _version: i16) -> Reply {
    let acks = req.acks;
    let durability = match acks {
        -1 if broker.config.long("log.flush.interval.ms") < 0 => Durability::Synced,
        -1..=1 => Durability::Written,
        _ => {
            return Reply::now(ResponseKind::Produce(error_all(
                &req,
                ResponseError::InvalidRequiredAcks.code(),
                &format!("acks={acks} is invalid; use 0, 1 or -1 (all)"),
            )));
        }
    };
    let mut slots: Vec<(TopicName, Vec<(i32, Slot)>)> = Vec::new();
    for td in req.topic_data {
        let name = td.name.0.to_string();
        let topic = resolve_topic(&broker, &name).await;
        let mut parts = Vec::new();
        for pd in td.partition_data {
            let slot = match &topic {
                Err(e) => Slot::Failed(e.clone()),
                Ok(t) => queue(&broker, t, pd.index, pd.records, durability).await,
            };
            parts.push((pd.index, slot));
        }
        slots.push((td.name, parts));
    }
    let fut = async move {
        let mut resp = ProduceResponse::default();
        for (name, parts) in slots {
            let mut tr = TopicProduceResponse::default();
            tr.name = name;
            for (index, slot) in parts {
                tr.partition_responses.push(finish(index, slot).await);
            }
            resp.responses.push(tr);
        }
        ResponseKind::Produce(resp)
    };
    if acks == 0 {
        Reply::Nothing(Box::pin(async move {
            let _ = fut.await;
        }))
    } else {
        Reply::Later(Box::pin(fut))
    }
}

async fn resolve_topic(broker: &Broker, name: &str) -> Result<Arc<Topic>, BrokerError> {
    if let Some(t) = broker.topics.get(name) {
        return Ok(t);
    }
    if !broker.config.bool("auto.create.topics.enable") {
        return Err(BrokerError::UnknownTopic(name.to_string()));
    }
    let n = broker.config.long("num.partitions") as i32;
    match broker.topics.create(name, n, BTreeMap::new(), false).await {
        Ok(t) => Ok(t),
        Err(BrokerError::TopicExists(_)) => broker
            .topics
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string())),
        Err(e) => Err(e),
    }
}

async fn queue(
    broker: &Broker,
    topic: &Arc<Topic>,
    index: i32,
    records: Option<bytes::Bytes>,
    durability: Durability,
) -> Slot {
    let Some(partition) = topic.partition(index) else {
        return Slot::Failed(BrokerError::UnknownTopic(format!("{}-{index}", topic.name)));
    };
    let max = config::topic_value(&broker.config, &topic.configs, "max.message.bytes")
        .parse::<usize>()
        .unwrap_or(1_048_588);
    let log_append_time =
        config::topic_value(&broker.config, &topic.configs, "message.timestamp.type")
            == "LogAppendTime";
    let batch = match validate(records.as_deref().unwrap_or(&[]), max) {
        Ok(()) => records.unwrap_or_default(),
        Err(e) => {
            tracing::debug!(topic = %topic.name, partition = index, error = %e, "rejected batch");
            return Slot::Failed(e);
        }
    };
    let mut owned = batch.to_vec();
    patch::set_partition_leader_epoch(&mut owned, 0);
    let append_time = if log_append_time {
        let now = now_ms();
        patch::set_log_append_time(&mut owned, now);
        Some(now)
    } else {
        None
    };
    match partition.append(owned, durability).await {
        Ok(rx) => Slot::Queued {
            rx,
            log_append_time: append_time,
            topic: topic.clone(),
            index,
        },
        Err(e) => Slot::Failed(e.into()),
    }
}

/// The checks a produced batch must pass before it is written.
fn validate(bytes: &[u8], max: usize) -> Result<(), BrokerError> {
    if bytes.is_empty() {
        return Err(BrokerError::InvalidRequest(
            "produce request has no records for a partition".into(),
        ));
    }
    let header = BatchHeader::parse(bytes)?;
    if header.size() != bytes.len() {
        return Err(BrokerError::InvalidRequest(format!(
            "a produce request must carry exactly one record batch per partition; found {} trailing bytes",
            bytes.len() - header.size()
        )));
    }
    if header.size() > max {
        return Err(BrokerError::MessageTooLarge {
            size: header.size(),
            max,
        });
    }
    header.validate_produced()?;
    if header.is_control() {
        return Err(BrokerError::InvalidRequest(
            "clients may not write control batches; transaction markers are written by the coordinator".into(),
        ));
    }
    if header.is_transactional() && header.producer_id() < 0 {
        return Err(BrokerError::InvalidTxnState(
            "a transactional batch needs a producer id from InitProducerId".into(),
        ));
    }
    // Whether the partition is in the producer's ongoing transaction is checked by the
    // partition writer as it appends (see txn::gate), so no marker can overtake it.
    Ok(())
}

async fn finish(index: i32, slot: Slot) -> PartitionProduceResponse {
    let mut pr = PartitionProduceResponse::default();
    pr.index = index;
    pr.log_append_time_ms = -1;
    pr.log_start_offset = -1;
    match slot {
        Slot::Failed(e) => {
            pr.error_code = e.code();
            pr.base_offset = -1;
            pr.error_message = Some(str_bytes(&e.to_string()));
        }
        Slot::Queued {
            rx,
            log_append_time,
            topic,
            index,
        } => match rx.await {
            Ok(Ok(info)) => {
                pr.error_code = NONE;
                pr.base_offset = info.base_offset;
                pr.log_append_time_ms = log_append_time.unwrap_or(-1);
                if let Some(p) = topic.partition(index) {
                    pr.log_start_offset = p.reader().log_start_offset();
                }
            }
            Ok(Err(e)) => {
                let e = BrokerError::from(e);
                pr.error_code = e.code();
                pr.base_offset = -1;
                pr.error_message = Some(str_bytes(&e.to_string()));
            }
            Err(_) => {
                let e = BrokerError::NotAvailable;
                pr.error_code = e.code();
                pr.base_offset = -1;
            }
        },
    }
    pr
}

fn error_all(req: &ProduceRequest, code: i16, msg: &str) -> ProduceResponse {
    let mut resp = ProduceResponse::default();
    for td in &req.topic_data {
        let mut tr = TopicProduceResponse::default();
        tr.name = td.name.clone();
        for pd in &td.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.error_code = code;
            pr.base_offset = -1;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = -1;
            pr.error_message = Some(str_bytes(msg));
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    resp
}

//! Producer and transaction APIs: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn, and for operators ListTransactions, DescribeTransactions and
//! DescribeProducers. The state machine lives in `crate::txn`; these translate requests.
//!
//! Each runs to completion before the next request on its connection is read, so a
//! request that follows (a produce after AddPartitionsToTxn) sees its effect.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState as DescribedProducer, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedTxn,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ResponseKind, TopicName, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

use super::{now_ms, str_bytes};
use crate::error::{BrokerError, NONE};
use crate::server::Broker;
use crate::txn::state::{TxnOffset, TxnState};
use crate::txn::Env;

fn env(broker: &Broker) -> Env<'_> {
    Env {
        topics: &broker.topics,
        groups: &broker.groups,
        ids: &broker.producer_ids,
    }
}

fn partition_exists(broker: &Broker, topic: &str, partition: i32) -> bool {
    broker
        .topics
        .get(topic)
        .is_some_and(|t| t.partition(partition).is_some())
}

/// InitProducerId: for a transactional id through the coordinator; otherwise a fresh
/// idempotent producer id, or the next epoch of the given one (KIP-360).
pub(super) async fn init_producer_id(
    broker: &Arc<Broker>,
    req: InitProducerIdRequest,
    version: i16,
) -> ResponseKind {
    let mut r = InitProducerIdResponse::default();
    r.producer_id = (-1).into();
    r.producer_epoch = -1;
    if let Some(tid) = req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        match broker
            .txn
            .init_producer_id(
                tid,
                req.transaction_timeout_ms,
                req.producer_id.0,
                req.producer_epoch,
                &env(broker),
            )
            .await
        {
            Ok((pid, epoch)) => {
                r.producer_id = pid.into();
                r.producer_epoch = epoch;
            }
            Err(e) => {
                tracing::debug!(transactional_id = %tid.as_str(), error = %e, "InitProducerId refused");
                r.error_code = e.code_fenced(version >= 4);
            }
        }
        return ResponseKind::InitProducerId(r);
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        r.producer_id = req.producer_id;
        r.producer_epoch = req.producer_epoch + 1;
        return ResponseKind::InitProducerId(r);
    }
    let ids = broker.producer_ids.clone();
    match tokio::task::spawn_blocking(move || ids.next()).await {
        Ok(Ok(id)) => {
            r.producer_id = id.into();
            r.producer_epoch = 0;
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            r.error_code = ResponseError::KafkaStorageError.code();
        }
        Err(_) => r.error_code = ResponseError::UnknownServerError.code(),
    }
    ResponseKind::InitProducerId(r)
}

/// AddPartitionsToTxn v0-3. If any partition does not exist, it gets
/// UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED, and nothing is added.
pub(super) async fn add_partitions_to_txn(
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> ResponseKind {
    let wanted: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
        .collect();
    let missing: Vec<bool> = wanted
        .iter()
        .map(|(t, p)| !partition_exists(broker, t, *p))
        .collect();
    let codes: Vec<i16> = if missing.iter().any(|m| *m) {
        missing
            .iter()
            .map(|m| {
                if *m {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect()
    } else {
        let code = match broker
            .txn
            .add_partitions(
                &req.v3_and_below_transactional_id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &wanted,
            )
            .await
        {
            Ok(()) => NONE,
            Err(e) => {
                tracing::debug!(transactional_id = %req.v3_and_below_transactional_id.as_str(), error = %e, "AddPartitionsToTxn refused");
                e.code_fenced(version >= 2)
            }
        };
        vec![code; wanted.len()]
    };
    let mut resp = AddPartitionsToTxnResponse::default();
    let mut it = codes.into_iter();
    for t in req.v3_and_below_topics {
        let mut tr = AddPartitionsToTxnTopicResult::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = AddPartitionsToTxnPartitionResult::default();
            pr.partition_index = p;
            pr.partition_error_code = it.next().unwrap_or(NONE);
            tr.results_by_partition.push(pr);
        }
        resp.results_by_topic_v3_and_below.push(tr);
    }
    ResponseKind::AddPartitionsToTxn(resp)
}

pub(super) async fn add_offsets_to_txn(
    broker: &Broker,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> ResponseKind {
    let mut resp = AddOffsetsToTxnResponse::default();
    resp.error_code = if req.group_id.is_empty() {
        ResponseError::InvalidGroupId.code()
    } else {
        match broker
            .txn
            .add_offsets(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                &req.group_id,
            )
            .await
        {
            Ok(()) => NONE,
            Err(e) => {
                tracing::debug!(transactional_id = %req.transactional_id.as_str(), error = %e, "AddOffsetsToTxn refused");
                e.code_fenced(version >= 2)
            }
        }
    };
    ResponseKind::AddOffsetsToTxn(resp)
}

/// TxnOffsetCommit: the offsets are held with the transaction and committed to the group
/// only if it commits.
pub(super) async fn txn_offset_commit(
    broker: &Broker,
    req: TxnOffsetCommitRequest,
) -> ResponseKind {
    let metadata_max = broker.config.long("offset.metadata.max.bytes").max(0) as usize;
    let group = req.group_id.to_string();
    let member_check = if group.is_empty() {
        ResponseError::InvalidGroupId.code()
    } else {
        broker.groups.check_txn_member(
            &group,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        )
    };
    // Per-partition problems first; the rest share the coordinator's answer.
    let mut codes: Vec<i16> = Vec::new();
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or("").to_string();
            let code = if member_check != NONE {
                member_check
            } else if metadata.len() > metadata_max {
                ResponseError::OffsetMetadataTooLarge.code()
            } else if !partition_exists(broker, &t.name, p.partition_index) {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                offsets.push(TxnOffset {
                    group: group.clone(),
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                });
                NONE
            };
            codes.push(code);
        }
    }
    if !offsets.is_empty() {
        if let Err(e) = broker
            .txn
            .txn_offset_commit(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                &group,
                offsets,
            )
            .await
        {
            tracing::debug!(transactional_id = %req.transactional_id.as_str(), error = %e, "TxnOffsetCommit refused");
            // TxnOffsetCommit v0-3 predate PRODUCER_FENCED.
            let code = e.code_fenced(false);
            for c in codes.iter_mut().filter(|c| **c == NONE) {
                *c = code;
            }
        }
    }
    let mut resp = TxnOffsetCommitResponse::default();
    let mut it = codes.into_iter();
    for t in req.topics {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = it.next().unwrap_or(NONE);
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    ResponseKind::TxnOffsetCommit(resp)
}

/// EndTxn: answered once every partition has its marker and the outcome is durable.
pub(super) async fn end_txn(broker: &Broker, req: EndTxnRequest, version: i16) -> ResponseKind {
    let mut resp = EndTxnResponse::default();
    resp.producer_id = (-1).into();
    resp.producer_epoch = -1;
    resp.error_code = match broker
        .txn
        .end_txn(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            &env(broker),
        )
        .await
    {
        Ok(()) => NONE,
        Err(e) => {
            tracing::debug!(transactional_id = %req.transactional_id.as_str(), commit = req.committed, error = %e, "EndTxn refused");
            e.code_fenced(version >= 2)
        }
    };
    ResponseKind::EndTxn(resp)
}

pub(super) fn list_transactions(broker: &Broker, req: ListTransactionsRequest) -> ResponseKind {
    let mut resp = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for f in &req.state_filters {
        match TxnState::ALL.iter().find(|s| s.name() == f.as_str()) {
            Some(s) => states.push(*s),
            None => resp.unknown_state_filters.push(f.clone()),
        }
    }
    let now = now_ms();
    for m in broker.txn.list() {
        if !req.state_filters.is_empty() && !states.contains(&m.state) {
            continue;
        }
        if !req.producer_id_filters.is_empty()
            && !req.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
        {
            continue;
        }
        // v1: only transactions running longer than the duration.
        if req.duration_filter >= 0
            && (m.start_ms < 0 || now.saturating_sub(m.start_ms) < req.duration_filter)
        {
            continue;
        }
        let mut t = ListedTxn::default();
        t.transactional_id = TransactionalId(str_bytes(&m.transactional_id));
        t.producer_id = m.producer_id.into();
        t.transaction_state = str_bytes(m.state.name());
        resp.transaction_states.push(t);
    }
    ResponseKind::ListTransactions(resp)
}

pub(super) fn describe_transactions(
    broker: &Broker,
    req: DescribeTransactionsRequest,
) -> ResponseKind {
    let mut resp = DescribeTransactionsResponse::default();
    for tid in req.transactional_ids {
        let mut d = DescribedTxn::default();
        d.transactional_id = tid.clone();
        match broker.txn.describe(&tid) {
            None => {
                d.error_code = BrokerError::TransactionalIdNotFound(tid.to_string()).code();
                d.transaction_state = str_bytes("");
                d.producer_id = (-1).into();
                d.producer_epoch = -1;
                d.transaction_start_time_ms = -1;
            }
            Some(m) => {
                d.transaction_state = str_bytes(m.state.name());
                d.transaction_timeout_ms = m.timeout_ms;
                d.transaction_start_time_ms = m.start_ms;
                d.producer_id = m.producer_id.into();
                d.producer_epoch = m.epoch;
                for (topic, p) in &m.partitions {
                    match d.topics.last_mut() {
                        Some(td) if td.topic.0.as_str() == topic => td.partitions.push(*p),
                        _ => {
                            let mut td = TopicData::default();
                            td.topic = TopicName(str_bytes(topic));
                            td.partitions.push(*p);
                            d.topics.push(td);
                        }
                    }
                }
            }
        }
        resp.transaction_states.push(d);
    }
    ResponseKind::DescribeTransactions(resp)
}

pub(super) async fn describe_producers(
    broker: &Broker,
    req: DescribeProducersRequest,
) -> ResponseKind {
    let mut resp = DescribeProducersResponse::default();
    for t in req.topics {
        let topic = broker.topics.get(&t.name);
        let mut tr = TopicResponse::default();
        tr.name = t.name.clone();
        for index in t.partition_indexes {
            let mut pr = PartitionResponse::default();
            pr.partition_index = index;
            let found = match topic.as_ref().and_then(|tp| tp.partition(index)) {
                None => Err(BrokerError::UnknownTopic(format!(
                    "{}-{index}",
                    t.name.as_str()
                ))),
                Some(part) => part.producers().await.map_err(BrokerError::from),
            };
            match found {
                Ok(list) => {
                    pr.active_producers = list
                        .into_iter()
                        .map(|p| {
                            let mut s = DescribedProducer::default();
                            s.producer_id = p.producer_id.into();
                            s.producer_epoch = i32::from(p.epoch);
                            s.last_sequence = p.last_sequence;
                            s.last_timestamp = p.last_timestamp;
                            s.coordinator_epoch = 0;
                            s.current_txn_start_offset = p.txn_start_offset;
                            s
                        })
                        .collect();
                }
                Err(e) => {
                    pr.error_code = e.code();
                    pr.error_message = Some(str_bytes(&e.to_string()));
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    ResponseKind::DescribeProducers(resp)
}

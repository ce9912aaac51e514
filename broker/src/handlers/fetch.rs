//! Fetch (long-poll that wakes on append), ListOffsets and OffsetForLeaderEpoch.
//!
//! `read_committed` (isolation level 1) fetches stop at the last stable offset and carry the
//! aborted transactions overlapping what they return; control batches go out as stored
//! (clients skip them).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_protocol::batch::{batch_size_at, BatchHeader};
use eddy_storage::{LogReader, StorageError};
use futures::FutureExt;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind, TopicName,
};
use tokio::sync::watch;

use super::{str_bytes, Reply};
use crate::error::{BrokerError, NONE};
use crate::partition::Partition;
use crate::server::Broker;
use crate::txn::index::AbortedTxn;

/// Upper bound on a client's max_wait_ms, so a bad value can't pin a request forever.
const MAX_WAIT_CAP_MS: i32 = 5 * 60 * 1000;

/// One requested partition, resolved.
struct Target {
    topic_slot: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    source: Result<(LogReader, watch::Receiver<i64>, Arc<Partition>), BrokerError>,
}

/// The result of reading one partition once.
struct ReadOut {
    error: i16,
    records: Bytes,
    start: i64,
    end: i64,
    /// Last stable offset (never above `end`).
    lso: i64,
    /// For read_committed: aborted transactions with data in the returned range.
    aborted: Option<Vec<AbortedTxn>>,
}

impl ReadOut {
    fn empty(error: i16, start: i64, end: i64, lso: i64) -> ReadOut {
        ReadOut {
            error,
            records: Bytes::new(),
            start,
            end,
            lso,
            aborted: None,
        }
    }
}

/// One partition to read: its reader and partition (for the transaction view), offset and
/// byte limit.
type Plan = (Option<(LogReader, Arc<Partition>)>, i64, usize);

pub(super) fn fetch(broker: Arc<Broker>, req: FetchRequest, version: i16) -> Reply {
    Reply::Later(Box::pin(async move {
        ResponseKind::Fetch(do_fetch(broker, req, version).await)
    }))
}

async fn do_fetch(broker: Arc<Broker>, req: FetchRequest, version: i16) -> FetchResponse {
    let mut resp = FetchResponse::default();
    let mut targets = Vec::new();
    for ft in &req.topics {
        let topic = if version >= 13 {
            broker
                .topics
                .get_by_id(ft.topic_id)
                .ok_or(BrokerError::UnknownTopicId(ft.topic_id))
        } else {
            let name = ft.topic.0.to_string();
            broker
                .topics
                .get(&name)
                .ok_or(BrokerError::UnknownTopic(name))
        };
        let mut tr = FetchableTopicResponse::default();
        tr.topic = ft.topic.clone();
        tr.topic_id = ft.topic_id;
        let slot = resp.responses.len();
        resp.responses.push(tr);
        for fp in &ft.partitions {
            let source = match &topic {
                Err(e) => Err(e.clone()),
                Ok(t) => match t.partition(fp.partition) {
                    Some(p) => Ok((p.reader(), p.watch_end(), Arc::clone(p))),
                    None => Err(BrokerError::UnknownTopic(format!(
                        "{}-{}",
                        t.name, fp.partition
                    ))),
                },
            };
            targets.push(Target {
                topic_slot: slot,
                partition: fp.partition,
                offset: fp.fetch_offset,
                max_bytes: fp.partition_max_bytes.max(0) as usize,
                source,
            });
        }
    }
    // The broker's cap bounds the memory one response takes, whatever the client asks for.
    let cap = broker.config.long("fetch.max.bytes").max(1024) as usize;
    let max_total = if req.max_bytes <= 0 {
        cap
    } else {
        (req.max_bytes as usize).min(cap)
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let read_committed = req.isolation_level == 1;
    let wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = broker.shutdown.clone();

    let outs = loop {
        // Mark the current end as seen before reading, so an append that lands during the
        // read wakes the wait below instead of being missed.
        let mut watchers: Vec<watch::Receiver<i64>> = targets
            .iter_mut()
            .filter_map(|t| match &mut t.source {
                Ok((_, w, _)) => {
                    w.borrow_and_update();
                    Some(w.clone())
                }
                Err(_) => None,
            })
            .collect();
        let plan: Vec<Plan> = targets
            .iter()
            .map(|t| {
                (
                    t.source
                        .as_ref()
                        .ok()
                        .map(|(r, _, p)| (r.clone(), Arc::clone(p))),
                    t.offset,
                    t.max_bytes,
                )
            })
            .collect();
        let outs =
            match tokio::task::spawn_blocking(move || read_all(plan, max_total, read_committed))
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(error = %e, "fetch read panicked");
                    resp.error_code = BrokerError::Internal(String::new()).code();
                    return resp;
                }
            };
        let total: usize = outs.iter().map(|o| o.records.len()).sum();
        let any_error =
            outs.iter().any(|o| o.error != NONE) || targets.iter().any(|t| t.source.is_err());
        if total >= min_bytes.max(1) || any_error || watchers.is_empty() || *shutdown.borrow() {
            break outs;
        }
        if tokio::time::Instant::now() >= deadline {
            break outs;
        }
        let changed = futures::future::select_all(watchers.iter_mut().map(|w| w.changed().boxed()));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    };

    for (t, out) in targets.iter().zip(outs) {
        let mut pd = PartitionData::default();
        pd.partition_index = t.partition;
        pd.aborted_transactions = None;
        match &t.source {
            Err(e) => {
                pd.error_code = e.code();
                pd.high_watermark = -1;
                pd.records = Some(Bytes::new());
            }
            Ok(_) => {
                pd.error_code = out.error;
                pd.high_watermark = out.end;
                pd.last_stable_offset = out.lso;
                pd.log_start_offset = out.start;
                pd.records = Some(out.records);
                pd.aborted_transactions = out.aborted.map(|list| {
                    list.into_iter()
                        .map(|a| {
                            let mut at = AbortedTransaction::default();
                            at.producer_id = a.producer_id.into();
                            at.first_offset = a.first_offset;
                            at
                        })
                        .collect()
                });
            }
        }
        resp.responses[t.topic_slot].partitions.push(pd);
    }
    resp
}

/// Reads every planned partition once, honouring the per-partition and total byte limits.
/// The first non-empty partition may return one batch larger than the limits (KIP-74).
/// With `read_committed` nothing at or above the last stable offset is returned.
fn read_all(plan: Vec<Plan>, max_total: usize, read_committed: bool) -> Vec<ReadOut> {
    let mut total = 0usize;
    plan.into_iter()
        .map(|(source, offset, part_max)| {
            let Some((reader, partition)) = source else {
                return ReadOut::empty(NONE, -1, -1, -1);
            };
            let start = reader.log_start_offset();
            let end = reader.log_end_offset();
            let remaining = max_total.saturating_sub(total);
            if total > 0 && remaining == 0 {
                let lso = partition.txn_view().lso.min(end);
                return ReadOut::empty(NONE, start, end, lso);
            }
            let limit = part_max.min(remaining);
            match reader.read(offset, limit) {
                Ok(r) => {
                    let mut records = r.bytes;
                    // The view after the read: it covers at least the data read, and its
                    // LSO and aborted list belong together.
                    let view = partition.txn_view();
                    let lso = view.lso.min(r.log_end_offset);
                    let mut aborted = None;
                    if read_committed {
                        records = below(records, lso);
                        let upto = last_offset(&records).map_or(offset, |l| l + 1);
                        aborted = Some(view.aborted_in(offset, upto));
                    }
                    if total > 0 && records.len() > limit {
                        // Only the first partition in the response may exceed the limits.
                        records = Bytes::new();
                    }
                    total += records.len();
                    ReadOut {
                        error: NONE,
                        records,
                        start: r.log_start_offset,
                        end: r.log_end_offset,
                        lso,
                        aborted,
                    }
                }
                Err(e) => {
                    let err = BrokerError::from(e);
                    if !matches!(err, BrokerError::Storage(ref s) if matches!(**s, StorageError::OffsetOutOfRange { .. }))
                    {
                        tracing::error!(error = %err, "fetch read failed");
                    }
                    let lso = partition.txn_view().lso.min(end);
                    ReadOut::empty(err.code(), start, end, lso)
                }
            }
        })
        .collect()
}

/// The whole batches of `records` that start below `lso` (a batch never straddles it: the
/// LSO is a transaction's first offset or the log end).
fn below(records: Bytes, lso: i64) -> Bytes {
    let mut pos = 0usize;
    while let Some(size) = batch_size_at(&records[pos..]) {
        if pos + size > records.len() {
            break;
        }
        match BatchHeader::parse(&records[pos..pos + size]) {
            Ok(h) if h.base_offset() < lso => pos += size,
            _ => break,
        }
    }
    records.slice(..pos)
}

/// The offset of the last record in `records` (whole batches), if any.
fn last_offset(records: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    let mut last = None;
    while let Some(size) = batch_size_at(&records[pos..]) {
        if pos + size > records.len() {
            break;
        }
        if let Ok(h) = BatchHeader::parse(&records[pos..pos + size]) {
            last = Some(h.last_offset());
        }
        pos += size;
    }
    last
}

/// Kafka's special ListOffsets timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub(super) async fn list_offsets(
    broker: &Broker,
    req: ListOffsetsRequest,
    version: i16,
) -> ResponseKind {
    // read_committed consumers see the last stable offset as the end (v2+).
    let read_committed = req.isolation_level == 1;
    let mut plan = Vec::new();
    for t in &req.topics {
        let topic = broker.topics.get(&t.name.0);
        for p in &t.partitions {
            let reader = topic
                .as_ref()
                .and_then(|tp| tp.partition(p.partition_index))
                .map(|part| (part.reader(), part.txn_view().lso));
            plan.push((reader, p.partition_index, p.timestamp));
        }
    }
    let results = tokio::task::spawn_blocking(move || {
        plan.into_iter()
            .map(|(reader, index, ts)| {
                let mut r = ListOffsetsPartitionResponse::default();
                r.partition_index = index;
                let Some((reader, lso)) = reader else {
                    r.error_code = BrokerError::UnknownTopic(String::new()).code();
                    return r;
                };
                if version >= 4 {
                    // The field only exists from v4; the codec refuses it earlier.
                    r.leader_epoch = 0;
                }
                let found: Result<Option<(i64, i64)>, StorageError> = match ts {
                    LATEST if read_committed => Ok(Some((-1, lso.min(reader.log_end_offset())))),
                    LATEST => Ok(Some((-1, reader.log_end_offset()))),
                    EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, reader.log_start_offset()))),
                    MAX_TIMESTAMP => reader.max_timestamp(),
                    t if t >= 0 => reader
                        .offset_for_timestamp(t)
                        .map(|o| o.map(|(off, t)| (t, off))),
                    _ => {
                        r.error_code = BrokerError::InvalidRequest(String::new()).code();
                        return r;
                    }
                };
                match found {
                    Ok(Some((t, off))) => {
                        r.timestamp = t;
                        r.offset = off;
                    }
                    Ok(None) => {
                        r.timestamp = -1;
                        r.offset = -1;
                    }
                    Err(e) => r.error_code = BrokerError::from(e).code(),
                }
                r
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut resp = ListOffsetsResponse::default();
    let mut it = results.into_iter();
    for t in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name;
        for _ in &t.partitions {
            if let Some(r) = it.next() {
                tr.partitions.push(r);
            }
        }
        resp.topics.push(tr);
    }
    ResponseKind::ListOffsets(resp)
}

/// Eddy is single-node and never changes leader, so every partition has leader epoch 0 and
/// its end offset is the log end.
pub(super) fn offset_for_leader_epoch(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
) -> ResponseKind {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let topic = broker.topics.get(&t.topic.0);
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = TopicName(str_bytes(&t.topic.0));
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            match topic.as_ref().and_then(|tp| tp.partition(p.partition)) {
                None => {
                    e.error_code = BrokerError::UnknownTopic(String::new()).code();
                    e.leader_epoch = -1;
                    e.end_offset = -1;
                }
                Some(part) if p.leader_epoch <= 0 => {
                    e.leader_epoch = 0;
                    e.end_offset = part.reader().log_end_offset();
                }
                Some(_) => {
                    e.leader_epoch = -1;
                    e.end_offset = -1;
                }
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    ResponseKind::OffsetForLeaderEpoch(resp)
}

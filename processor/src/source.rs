//! Sources: tasks that read input partitions and hand decoded records to the pipeline task
//! over a bounded channel (backpressure: a slow pipeline stops its readers).
//!
//! The local source reads record batches straight from the partition log through a
//! `LogReader` (no Kafka request, no socket) and sleeps on the log-end watch between appends.
//! The remote source reads the same topics from any Kafka-compatible cluster with the
//! project's client.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use eddy_client::consumer::decode_into;
use eddy_client::{Cluster, ConsumedRecord, Consumer, ConsumerConfig, StartAt};
use eddy_storage::{LogReader, StorageError};
use tokio::sync::{mpsc, watch};

use crate::error::ProcessorError;

/// One input partition.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) input: usize,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Bytes to read per step.
    pub(crate) read_bytes: usize,
}

#[derive(Debug)]
pub(crate) enum SourceMsg {
    Records {
        slot: usize,
        records: Vec<ConsumedRecord>,
        /// Next offset to read after these.
        next: i64,
        /// The partition's log end when read (for lag).
        end: i64,
    },
    /// A bounded source reached its end.
    Done {
        slot: usize,
    },
    Failed(ProcessorError),
}

/// Reads one local partition from `pos`, until `stop_at` if bounded.
pub(crate) async fn local(
    slot: usize,
    s: Slot,
    reader: LogReader,
    mut end_rx: watch::Receiver<i64>,
    mut pos: i64,
    stop_at: Option<i64>,
    tx: mpsc::Sender<SourceMsg>,
) {
    loop {
        if stop_at.is_some_and(|stop| pos >= stop) {
            let _ = tx.send(SourceMsg::Done { slot }).await;
            return;
        }
        let end = reader.log_end_offset();
        if pos >= end {
            // Woken by the writer's next append; an error means the partition went away.
            if end_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let (r, topic, partition, max) =
            (reader.clone(), s.topic.clone(), s.partition, s.read_bytes);
        let read =
            tokio::task::spawn_blocking(move || read_decode(&r, &topic, partition, pos, max)).await;
        let msg = match read {
            Ok(Ok((records, next))) => {
                let next = match stop_at {
                    Some(stop) => next.min(stop),
                    None => next,
                };
                let records: Vec<ConsumedRecord> = match stop_at {
                    Some(stop) => records.into_iter().filter(|r| r.offset < stop).collect(),
                    None => records,
                };
                pos = next;
                SourceMsg::Records {
                    slot,
                    records,
                    next,
                    end,
                }
            }
            Ok(Err(e)) => SourceMsg::Failed(e),
            Err(e) => SourceMsg::Failed(ProcessorError::Input {
                topic: s.topic.clone(),
                partition: s.partition,
                reason: format!("the reading task failed: {e}"),
            }),
        };
        let failed = matches!(msg, SourceMsg::Failed(_));
        if tx.send(msg).await.is_err() || failed {
            return;
        }
    }
}

fn read_decode(
    reader: &LogReader,
    topic: &str,
    partition: i32,
    pos: i64,
    max: usize,
) -> Result<(Vec<ConsumedRecord>, i64), ProcessorError> {
    let storage = |source: StorageError| ProcessorError::Storage {
        topic: topic.to_string(),
        partition,
        source,
    };
    let (pos, r) = match reader.read(pos, max) {
        // Retention removed what we had not read yet: continue at the log start (as a
        // consumer with auto.offset.reset=earliest would) and say so.
        Err(StorageError::OffsetOutOfRange { start, .. }) if pos < start => {
            tracing::warn!(
                topic,
                partition,
                from = pos,
                to = start,
                "input was deleted by retention before the pipeline read it; skipping ahead"
            );
            (start, reader.read(start, max).map_err(storage)?)
        }
        other => (pos, other.map_err(storage)?),
    };
    let mut out = Vec::new();
    let next =
        decode_into(topic, partition, pos, Bytes::clone(&r.bytes), &mut out).map_err(|e| {
            ProcessorError::Input {
                topic: topic.to_string(),
                partition,
                reason: e.to_string(),
            }
        })?;
    if next == pos && !r.bytes.is_empty() {
        return Err(ProcessorError::Input {
            topic: topic.to_string(),
            partition,
            reason: format!("no complete batch at offset {pos}"),
        });
    }
    Ok((out, next))
}

/// Reads every slot from a remote cluster, from `positions` (or the start mode).
pub(crate) async fn remote(
    cluster: Arc<Cluster>,
    slots: Vec<Slot>,
    starts: Vec<Result<i64, StartAt>>,
    bounded: bool,
    tx: mpsc::Sender<SourceMsg>,
) {
    if let Err(e) = remote_inner(cluster, slots, starts, bounded, &tx).await {
        let _ = tx.send(SourceMsg::Failed(e)).await;
    }
}

async fn remote_inner(
    cluster: Arc<Cluster>,
    slots: Vec<Slot>,
    starts: Vec<Result<i64, StartAt>>,
    bounded: bool,
    tx: &mpsc::Sender<SourceMsg>,
) -> Result<(), ProcessorError> {
    let mut consumer = Consumer::new(Arc::clone(&cluster), ConsumerConfig::default());
    let mut index = BTreeMap::new();
    let mut stops = BTreeMap::new();
    for (i, (s, start)) in slots.iter().zip(starts).enumerate() {
        let at = match start {
            Ok(o) => StartAt::Offset(o),
            Err(mode) => mode,
        };
        consumer.assign(&s.topic, s.partition, at).await?;
        index.insert((s.topic.clone(), s.partition), i);
        if bounded {
            let end = cluster.list_offset(&s.topic, s.partition, -1).await?;
            stops.insert(i, end);
        }
    }
    let mut done = vec![false; slots.len()];
    loop {
        for (i, s) in slots.iter().enumerate() {
            let pos = consumer
                .positions()
                .get(&(s.topic.clone(), s.partition))
                .copied()
                .unwrap_or(0);
            if !done[i] && stops.get(&i).is_some_and(|&stop| pos >= stop) {
                done[i] = true;
                if tx.send(SourceMsg::Done { slot: i }).await.is_err() {
                    return Ok(());
                }
            }
        }
        if bounded && done.iter().all(|d| *d) {
            return Ok(());
        }
        let records = consumer.poll().await?;
        let mut by_slot: BTreeMap<usize, Vec<ConsumedRecord>> = BTreeMap::new();
        for r in records {
            if let Some(&i) = index.get(&(r.topic.clone(), r.partition)) {
                if stops.get(&i).is_some_and(|&stop| r.offset >= stop) {
                    continue;
                }
                by_slot.entry(i).or_default().push(r);
            }
        }
        for (i, s) in slots.iter().enumerate() {
            let next = consumer
                .positions()
                .get(&(s.topic.clone(), s.partition))
                .copied()
                .unwrap_or(0);
            let next = stops.get(&i).map_or(next, |&stop| next.min(stop));
            let records = by_slot.remove(&i).unwrap_or_default();
            if records.is_empty() {
                continue;
            }
            let msg = SourceMsg::Records {
                slot: i,
                records,
                next,
                end: next,
            };
            if tx.send(msg).await.is_err() {
                return Ok(());
            }
        }
    }
}

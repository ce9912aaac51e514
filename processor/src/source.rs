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
use eddy_client::committed::AbortFilter;
use eddy_client::consumer::for_each_committed_record;
use eddy_client::{Cluster, ConsumedRecord, Consumer, ConsumerConfig, StartAt};
use eddy_storage::{LogReader, StorageError};
use tokio::sync::{mpsc, watch};

use crate::error::ProcessorError;
use crate::event::Event;
use crate::host::CommittedView;
use crate::plan::{parse_event_time, EventTime};
use crate::value::Value;

/// One input partition.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) input: usize,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Bytes to read per step.
    pub(crate) read_bytes: usize,
    /// Where this input's event time comes from.
    pub(crate) event_time: EventTime,
    /// The only top-level value fields to decode (`None`: all).
    pub(crate) fields: Option<Arc<[Arc<str>]>>,
}

/// Decoded input, ready for the operators.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) events: Vec<Event>,
    /// Records read, including bad ones.
    pub(crate) read: u64,
    /// Records skipped: value not JSON, or no valid event time.
    pub(crate) bad: u64,
}

impl Decoded {
    /// Decodes one record's value and event time into an event, or counts it as bad (with a
    /// log line naming its offset). Runs in the source tasks, so JSON parsing of different
    /// partitions proceeds in parallel and off the pipeline task.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        s: &Slot,
        offset: i64,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<(Arc<str>, Option<Bytes>)>,
    ) {
        self.read += 1;
        let decoded = match (&value, &s.fields) {
            (None, _) => Ok(Value::Null),
            (Some(b), None) => Value::from_json(b),
            (Some(b), Some(fields)) => Value::from_json_fields(b, fields),
        };
        let value_json = match decoded {
            Ok(v) => v,
            Err(e) => {
                self.bad += 1;
                tracing::warn!(topic = %s.topic, partition = s.partition, offset, error = %e, "skipping a record whose value is not JSON");
                return;
            }
        };
        let (value, raw_bytes) = (value_json, value);
        let ts = match &s.event_time {
            EventTime::RecordTimestamp => timestamp,
            EventTime::Field(path) => match value.path(path).and_then(parse_event_time) {
                Some(t) => t,
                None => {
                    self.bad += 1;
                    tracing::warn!(topic = %s.topic, partition = s.partition, offset, field = %path, "skipping a record without a valid event time");
                    return;
                }
            },
        };
        // A JSON `null` leaves as a tombstone, as the encoded Null would.
        let raw = if value.is_null() { None } else { raw_bytes };
        self.events.push(Event {
            key,
            value,
            timestamp: ts,
            headers,
            input: s.input,
            partition: s.partition,
            offset,
            raw,
        });
    }
}

#[derive(Debug)]
pub(crate) enum SourceMsg {
    Records {
        slot: usize,
        decoded: Decoded,
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

/// A local partition as a source reads it.
pub(crate) struct LocalInput {
    pub(crate) reader: LogReader,
    /// Changes on every append (transaction markers included).
    pub(crate) end_rx: watch::Receiver<i64>,
    /// Where transactions are tracked: read up to the last stable offset, skip aborted data.
    pub(crate) committed: Option<Arc<dyn CommittedView>>,
}

/// Reads one local partition from `pos`, until `stop_at` if bounded.
pub(crate) async fn local(
    slot: usize,
    s: Slot,
    input: LocalInput,
    mut pos: i64,
    stop_at: Option<i64>,
    tx: mpsc::Sender<SourceMsg>,
) {
    let LocalInput {
        reader,
        mut end_rx,
        committed,
    } = input;
    loop {
        if stop_at.is_some_and(|stop| pos >= stop) {
            let _ = tx.send(SourceMsg::Done { slot }).await;
            return;
        }
        let log_end = reader.log_end_offset();
        let end = committed
            .as_ref()
            .map_or(log_end, |c| c.last_stable_offset().min(log_end));
        if pos >= end {
            // Woken by the writer's next append; an error means the partition went away.
            if end_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let (r, s2) = (reader.clone(), s.clone());
        // Only committed data: below the LSO, aborted transactions filtered out.
        let (stop_at, aborted) = match &committed {
            Some(c) => (
                Some(stop_at.unwrap_or(i64::MAX).min(end)),
                Some(AbortFilter::new(c.aborted(pos, end))),
            ),
            None => (stop_at, None),
        };
        let read =
            tokio::task::spawn_blocking(move || read_decode(&r, &s2, pos, stop_at, aborted)).await;
        let msg = match read {
            Ok(Ok((decoded, next))) => {
                let next = match stop_at {
                    Some(stop) => next.min(stop),
                    None => next,
                };
                pos = next;
                SourceMsg::Records {
                    slot,
                    decoded,
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
    s: &Slot,
    pos: i64,
    stop_at: Option<i64>,
    mut aborted: Option<AbortFilter>,
) -> Result<(Decoded, i64), ProcessorError> {
    let (topic, partition) = (s.topic.as_str(), s.partition);
    let storage = |source: StorageError| ProcessorError::Storage {
        topic: topic.to_string(),
        partition,
        source,
    };
    let (pos, r) = match reader.read(pos, s.read_bytes) {
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
            (start, reader.read(start, s.read_bytes).map_err(storage)?)
        }
        other => (pos, other.map_err(storage)?),
    };
    // Events are about 100 bytes or more on the wire: reserve once instead of regrowing.
    let mut out = Decoded {
        events: Vec::with_capacity(r.bytes.len() / 100 + 1),
        ..Decoded::default()
    };
    let stop = stop_at.unwrap_or(i64::MAX);
    let next = for_each_committed_record(pos, Bytes::clone(&r.bytes), aborted.as_mut(), |rec| {
        if rec.offset < stop {
            let headers = rec
                .headers
                .into_iter()
                .map(|(k, v)| (Arc::from(k.as_str()), v))
                .collect();
            out.push(s, rec.offset, rec.timestamp, rec.key, rec.value, headers);
        }
    })
    .map_err(|e| ProcessorError::Input {
        topic: topic.to_string(),
        partition,
        reason: e.to_string(),
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
    // read_committed, like the local source: aborted transactions never reach a pipeline.
    let config = ConsumerConfig {
        read_committed: true,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(Arc::clone(&cluster), config);
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
            // The last stable offset: an open transaction's records are not readable yet,
            // so a bounded run ends before them rather than waiting for their outcome.
            let end = cluster
                .list_offset_isolated(&s.topic, s.partition, -1, true)
                .await?;
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
        let mut by_slot: BTreeMap<usize, Decoded> = BTreeMap::new();
        for r in records {
            if let Some(&i) = index.get(&(r.topic.clone(), r.partition)) {
                if stops.get(&i).is_some_and(|&stop| r.offset >= stop) {
                    continue;
                }
                let ConsumedRecord {
                    offset,
                    timestamp,
                    key,
                    value,
                    headers,
                    ..
                } = r;
                let headers = headers
                    .into_iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), v))
                    .collect();
                by_slot
                    .entry(i)
                    .or_default()
                    .push(&slots[i], offset, timestamp, key, value, headers);
            }
        }
        for (i, s) in slots.iter().enumerate() {
            let next = consumer
                .positions()
                .get(&(s.topic.clone(), s.partition))
                .copied()
                .unwrap_or(0);
            let next = stops.get(&i).map_or(next, |&stop| next.min(stop));
            let decoded = by_slot.remove(&i).unwrap_or_default();
            if decoded.read == 0 {
                continue;
            }
            let msg = SourceMsg::Records {
                slot: i,
                decoded,
                next,
                end: next,
            };
            if tx.send(msg).await.is_err() {
                return Ok(());
            }
        }
    }
}

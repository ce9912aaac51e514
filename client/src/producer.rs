//! A batching producer: records accumulate per partition until `batch_bytes` or `linger`,
//! then every ready batch for a broker goes out in one Produce request. Requests are queued
//! on the connection in order, so per-partition order holds with many in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::partitioner::partition_for_key;

/// Where a record was written.
pub type Delivered = Result<(i32, i64), ClientError>;
/// Resolves when the broker acknowledged the record (or failed it).
pub type Delivery = oneshot::Receiver<Delivered>;

/// Producer settings, with the Java client's meaning.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// 0, 1 or -1 (all).
    pub acks: i16,
    pub linger: Duration,
    pub batch_bytes: usize,
    pub compression: Compression,
    /// Produce requests awaiting a response, across all brokers.
    pub max_in_flight: usize,
    pub request_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            linger: Duration::from_millis(5),
            batch_bytes: 1024 * 1024,
            compression: Compression::None,
            max_in_flight: 5,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// One record to send.
#[derive(Debug, Clone, Default)]
pub struct OutRecord {
    pub topic: String,
    /// Explicit partition; otherwise by key (murmur2) or round-robin for null keys.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; now if `None`.
    pub timestamp: Option<i64>,
}

enum Cmd {
    Record {
        topic: String,
        partition: i32,
        record: Box<Record>,
        size: usize,
        done: oneshot::Sender<Delivered>,
    },
    Flush(oneshot::Sender<()>),
}

/// The producer handle. Dropping it (after `flush`) stops the background task.
#[derive(Debug, Clone)]
pub struct Producer {
    cluster: Arc<Cluster>,
    tx: mpsc::Sender<Cmd>,
    round_robin: Arc<std::sync::atomic::AtomicI32>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Record {
                topic, partition, ..
            } => write!(f, "Record({topic}-{partition})"),
            Cmd::Flush(_) => write!(f, "Flush"),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Producer {
    pub fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Producer {
        let (tx, rx) = mpsc::channel(16 * 1024);
        tokio::spawn(accumulate(cluster.clone(), config, rx));
        Producer {
            cluster,
            tx,
            round_robin: Arc::default(),
        }
    }

    /// Queues a record; the returned receiver resolves on acknowledgement.
    pub async fn send(&self, r: OutRecord) -> Result<Delivery, ClientError> {
        let partitions = self.cluster.topic(&r.topic).await?.leaders.len() as i32;
        let partition = match (r.partition, &r.key) {
            (Some(p), _) => {
                if p < 0 || p >= partitions {
                    return Err(ClientError::UnknownPartition {
                        topic: r.topic,
                        partition: p,
                    });
                }
                p
            }
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => {
                let n = self
                    .round_robin
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (n & 0x7fff_ffff) % partitions.max(1)
            }
        };
        let size = 32
            + r.key.as_ref().map_or(0, |k| k.len())
            + r.value.as_ref().map_or(0, |v| v.len())
            + r.headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 8)
                .sum::<usize>();
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: r.timestamp.unwrap_or_else(now_ms),
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (StrBytes::from_string(k), v))
                .collect(),
        };
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Record {
                topic: r.topic,
                partition,
                record: Box::new(record),
                size,
                done,
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(rx)
    }

    /// Sends everything queued so far and waits until all of it is acknowledged.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(tx))
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }
}

struct Batch {
    records: Vec<Record>,
    waiters: Vec<oneshot::Sender<Delivered>>,
    bytes: usize,
    deadline: Instant,
}

async fn accumulate(cluster: Arc<Cluster>, config: ProducerConfig, mut rx: mpsc::Receiver<Cmd>) {
    let mut batches: HashMap<(String, i32), Batch> = HashMap::new();
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut flush_waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let next_deadline = batches.values().map(|b| b.deadline).min();
        let cmd = tokio::select! {
            c = rx.recv() => c,
            _ = async {
                match next_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            } => {
                send_ready(&cluster, &config, &in_flight, &mut batches, false).await;
                continue;
            }
        };
        match cmd {
            None => {
                send_ready(&cluster, &config, &in_flight, &mut batches, true).await;
                break;
            }
            Some(Cmd::Record {
                topic,
                partition,
                record,
                size,
                done,
            }) => {
                let b = batches.entry((topic, partition)).or_insert_with(|| Batch {
                    records: Vec::new(),
                    waiters: Vec::new(),
                    bytes: 0,
                    deadline: Instant::now() + config.linger,
                });
                b.records.push(*record);
                b.waiters.push(done);
                b.bytes += size;
                if b.bytes >= config.batch_bytes {
                    send_ready(&cluster, &config, &in_flight, &mut batches, false).await;
                }
            }
            Some(Cmd::Flush(w)) => {
                send_ready(&cluster, &config, &in_flight, &mut batches, true).await;
                flush_waiters.push(w);
                // Wait for every in-flight request by taking all permits, then give them back.
                let all = config.max_in_flight.max(1) as u32;
                if let Ok(p) = in_flight.clone().acquire_many_owned(all).await {
                    drop(p);
                }
                for w in flush_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
    }
}

/// Sends full and expired batches (all of them when `all`), one request per leader.
async fn send_ready(
    cluster: &Arc<Cluster>,
    config: &ProducerConfig,
    in_flight: &Arc<Semaphore>,
    batches: &mut HashMap<(String, i32), Batch>,
    all: bool,
) {
    let now = Instant::now();
    let ready: Vec<(String, i32)> = batches
        .iter()
        .filter(|(_, b)| all || b.bytes >= config.batch_bytes || b.deadline <= now)
        .map(|(k, _)| k.clone())
        .collect();
    if ready.is_empty() {
        return;
    }
    // Group by leader connection address.
    type PerConn = (Arc<crate::conn::Connection>, Vec<((String, i32), Batch)>);
    let mut by_conn: HashMap<String, PerConn> = HashMap::new();
    for key in ready {
        let Some(batch) = batches.remove(&key) else {
            continue;
        };
        match cluster.leader(&key.0, key.1).await {
            Ok(conn) => by_conn
                .entry(conn.addr().to_string())
                .or_insert_with(|| (conn.clone(), Vec::new()))
                .1
                .push((key, batch)),
            Err(e) => fail(batch.waiters, &e),
        }
    }
    for (_, (conn, list)) in by_conn {
        let mut req = ProduceRequest::default();
        req.acks = config.acks;
        req.timeout_ms = config.request_timeout.as_millis() as i32;
        let mut topics: Vec<TopicProduceData> = Vec::new();
        let mut waiters: HashMap<(String, i32), Vec<oneshot::Sender<Delivered>>> = HashMap::new();
        for ((topic, partition), mut batch) in list {
            for (i, r) in batch.records.iter_mut().enumerate() {
                r.offset = i as i64;
                // The encoder starts a new batch wherever `offset - sequence` changes; with
                // this numbering everything is one batch whose base sequence is -1 (none).
                r.sequence = i as i32 - 1;
            }
            let mut buf = BytesMut::new();
            let opts = RecordEncodeOptions {
                version: 2,
                compression: config.compression,
            };
            if let Err(e) = RecordBatchEncoder::encode(&mut buf, batch.records.iter(), &opts) {
                fail(
                    batch.waiters,
                    &ClientError::Encode {
                        api: "record batch".into(),
                        reason: e.to_string(),
                    },
                );
                continue;
            }
            let mut pd = PartitionProduceData::default();
            pd.index = partition;
            pd.records = Some(buf.freeze());
            match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partition_data.push(pd),
                None => {
                    let mut t = TopicProduceData::default();
                    t.name = TopicName(StrBytes::from_string(topic.clone()));
                    t.partition_data.push(pd);
                    topics.push(t);
                }
            }
            waiters.insert((topic, partition), batch.waiters);
        }
        if topics.is_empty() {
            continue;
        }
        req.topic_data = topics;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        if config.acks == 0 {
            let r = conn.send_no_response(&req).await;
            drop(permit);
            for (_, ws) in waiters {
                for w in ws {
                    let _ = w.send(r.clone().map(|_| (-1, -1)));
                }
            }
            continue;
        }
        let pending = match conn.enqueue(&req).await {
            Ok(p) => p,
            Err(e) => {
                cluster.drop_conn(conn.addr()).await;
                for (_, ws) in waiters {
                    fail(ws, &e);
                }
                continue;
            }
        };
        tokio::spawn(async move {
            let result = pending.wait().await;
            drop(permit);
            match result {
                Err(e) => {
                    for (_, ws) in waiters {
                        fail(ws, &e);
                    }
                }
                Ok(resp) => {
                    for t in resp.responses {
                        for p in t.partition_responses {
                            let Some(ws) = waiters.remove(&(t.name.0.to_string(), p.index)) else {
                                continue;
                            };
                            if p.error_code != 0 {
                                let e = ClientError::kafka(
                                    format!("produce to {}-{}", t.name.0.as_str(), p.index),
                                    p.error_code,
                                    p.error_message.map(|m| m.to_string()),
                                );
                                fail(ws, &e);
                            } else {
                                for (i, w) in ws.into_iter().enumerate() {
                                    let _ = w.send(Ok((p.index, p.base_offset + i as i64)));
                                }
                            }
                        }
                    }
                    let missing = ClientError::Decode {
                        api: "Produce".into(),
                        reason: "the response left out a partition".into(),
                    };
                    for (_, ws) in waiters {
                        fail(ws, &missing);
                    }
                }
            }
        });
    }
}

fn fail(waiters: Vec<oneshot::Sender<Delivered>>, e: &ClientError) {
    for w in waiters {
        let _ = w.send(Err(e.clone()));
    }
}

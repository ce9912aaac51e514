//! A consumer of assigned partitions: one Fetch per leader per poll, records decoded from
//! their batches (any compression), control batches skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_protocol::batch::{batch_size_at, BatchHeader};
use eddy_protocol::records::{self, RecordView};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::committed::{AbortFilter, AbortedTxn};
use crate::error::ClientError;

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    Offset(i64),
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Fetch settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub max_wait: Duration,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// `isolation.level=read_committed`: read up to the last stable offset and drop the
    /// records of aborted transactions.
    pub read_committed: bool,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 10 * 1024 * 1024,
            read_committed: false,
        }
    }
}

#[derive(Debug)]
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    /// Next offset to fetch per (topic, partition).
    positions: BTreeMap<(String, i32), i64>,
}

impl Consumer {
    pub fn new(cluster: Arc<Cluster>, config: ConsumerConfig) -> Consumer {
        Consumer {
            cluster,
            config,
            positions: BTreeMap::new(),
        }
    }

    /// Starts reading `topic`/`partition` at `start`.
    pub async fn assign(
        &mut self,
        topic: &str,
        partition: i32,
        start: StartAt,
    ) -> Result<(), ClientError> {
        let offset = match start {
            StartAt::Offset(o) => o,
            StartAt::Earliest => self.cluster.list_offset(topic, partition, -2).await?,
            StartAt::Latest => self.cluster.list_offset(topic, partition, -1).await?,
        };
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(())
    }

    /// Current positions (next offset to read) per partition.
    pub fn positions(&self) -> &BTreeMap<(String, i32), i64> {
        &self.positions
    }

    /// Fetches once (waiting up to `max_wait` for data) and returns the records.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, ClientError> {
        let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
        for ((t, p), off) in &self.positions {
            let info = self.cluster.topic(t).await?;
            let leader = *info
                .leaders
                .get(*p as usize)
                .ok_or(ClientError::UnknownPartition {
                    topic: t.clone(),
                    partition: *p,
                })?;
            by_leader
                .entry(leader)
                .or_default()
                .push((t.clone(), *p, *off));
        }
        let mut out = Vec::new();
        for (leader, parts) in by_leader {
            let conn = self.cluster.node(leader).await?;
            let mut req = FetchRequest::default();
            req.replica_id = (-1).into();
            req.max_wait_ms = self.config.max_wait.as_millis() as i32;
            req.min_bytes = self.config.min_bytes;
            req.max_bytes = self.config.max_bytes;
            req.isolation_level = i8::from(self.config.read_committed);
            req.session_id = 0;
            req.session_epoch = -1;
            let mut topics: Vec<FetchTopic> = Vec::new();
            for (t, p, off) in &parts {
                let mut fp = FetchPartition::default();
                fp.partition = *p;
                fp.fetch_offset = *off;
                fp.partition_max_bytes = self.config.partition_max_bytes;
                fp.current_leader_epoch = -1;
                fp.log_start_offset = -1;
                match topics.iter_mut().find(|x| x.topic.0.as_str() == t) {
                    Some(x) => x.partitions.push(fp),
                    None => {
                        let mut ft = FetchTopic::default();
                        ft.topic = TopicName(StrBytes::from_string(t.clone()));
                        if let Ok(info) = self.cluster.topic(t).await {
                            ft.topic_id = info.id.parse().unwrap_or_default();
                        }
                        ft.partitions.push(fp);
                        topics.push(ft);
                    }
                }
            }
            req.topics = topics;
            let resp = conn.send(&req).await?;
            if resp.error_code != 0 {
                return Err(ClientError::kafka("fetch", resp.error_code, None));
            }
            for (i, tr) in resp.responses.into_iter().enumerate() {
                let topic = if tr.topic.0.is_empty() {
                    req.topics
                        .get(i)
                        .map(|t| t.topic.0.to_string())
                        .unwrap_or_default()
                } else {
                    tr.topic.0.to_string()
                };
                for pr in tr.partitions {
                    let key = (topic.clone(), pr.partition_index);
                    if pr.error_code == 1 {
                        // OFFSET_OUT_OF_RANGE: restart from the earliest available offset.
                        let start = self
                            .cluster
                            .list_offset(&topic, pr.partition_index, -2)
                            .await?;
                        self.positions.insert(key, start);
                        continue;
                    }
                    if pr.error_code != 0 {
                        return Err(ClientError::kafka(
                            format!("fetch {topic}-{}", pr.partition_index),
                            pr.error_code,
                            None,
                        ));
                    }
                    let Some(pos) = self.positions.get(&key).copied() else {
                        continue;
                    };
                    let mut aborted = self.config.read_committed.then(|| {
                        AbortFilter::new(
                            pr.aborted_transactions
                                .iter()
                                .flatten()
                                .map(|a| AbortedTxn {
                                    producer_id: a.producer_id.0,
                                    first_offset: a.first_offset,
                                })
                                .collect(),
                        )
                    });
                    let next = decode_committed_into(
                        &topic,
                        pr.partition_index,
                        pos,
                        pr.records.unwrap_or_default(),
                        aborted.as_mut(),
                        &mut out,
                    )?;
                    self.positions.insert(key, next);
                }
            }
        }
        Ok(out)
    }
}

/// Decodes whole batches from `data` (any compression; control batches skipped), keeps
/// records at or after `pos`, and returns the next position. A trailing partial batch (cut by
/// the fetch size limit) is ignored.
pub fn decode_into(
    topic: &str,
    partition: i32,
    pos: i64,
    data: Bytes,
    out: &mut Vec<ConsumedRecord>,
) -> Result<i64, ClientError> {
    decode_committed_into(topic, partition, pos, data, None, out)
}

fn decode_committed_into(
    topic: &str,
    partition: i32,
    pos: i64,
    data: Bytes,
    aborted: Option<&mut AbortFilter>,
    out: &mut Vec<ConsumedRecord>,
) -> Result<i64, ClientError> {
    for_each_committed_record(pos, data, aborted, |r| {
        out.push(ConsumedRecord {
            topic: topic.to_string(),
            partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
    })
}

/// The decoding loop behind [`decode_into`], handing each record to `f` instead of
/// collecting: the processor's sources read the same bytes and build their own events
/// without an intermediate record per message. Records are walked straight over the batch
/// bytes (keys and values are slices of `data`; compressed batches are decompressed once).
pub fn for_each_record(
    pos: i64,
    data: Bytes,
    f: impl FnMut(RecordView),
) -> Result<i64, ClientError> {
    for_each_committed_record(pos, data, None, f)
}

/// [`for_each_record`] for `read_committed`: batches `aborted` says belong to aborted
/// transactions are skipped too.
pub fn for_each_committed_record(
    mut pos: i64,
    mut data: Bytes,
    mut aborted: Option<&mut AbortFilter>,
    mut f: impl FnMut(RecordView),
) -> Result<i64, ClientError> {
    let decode = |e: &dyn std::fmt::Display| ClientError::Decode {
        api: "record batch".into(),
        reason: e.to_string(),
    };
    while let Some(size) = batch_size_at(&data) {
        if size > data.len() {
            break;
        }
        let one = data.split_to(size);
        let (last, skip) = match BatchHeader::parse(&one) {
            Ok(h) => (
                h.last_offset(),
                match aborted.as_deref_mut() {
                    Some(a) => a.skip(&h),
                    None => h.is_control(),
                },
            ),
            Err(e) => return Err(decode(&e)),
        };
        if !skip {
            records::for_each_record(&one, |r| {
                if r.offset >= pos {
                    f(r);
                }
            })
            .map_err(|e| decode(&e))?;
        }
        pos = pos.max(last + 1);
    }
    Ok(pos)
}

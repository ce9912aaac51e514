//! The topic registry: names, ids, partition counts and per-topic configs, persisted as one
//! small JSON file per topic under `<data-dir>/meta/topics/` (written atomically: temp file,
//! fsync, rename, fsync the directory). Partition logs live in `<data-dir>/<topic>-<n>/`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use eddy_storage::{LogConfig, PartitionLog};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{self, BrokerConfig};
use crate::error::BrokerError;
use crate::partition::{Partition, Placement};
use crate::txn::gate::TxnGate;

/// What is persisted for a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicMeta {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// A live topic. Immutable: CreatePartitions and config changes swap in a new `Topic`
/// that shares the existing partitions.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) partitions: Vec<Arc<Partition>>,
    /// Explicit per-topic overrides; everything else comes from broker defaults.
    pub(crate) configs: BTreeMap<String, String>,
}

impl Topic {
    pub(crate) fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    fn meta(&self) -> TopicMeta {
        TopicMeta {
            name: self.name.clone(),
            id: self.id,
            partitions: self.partitions.len() as i32,
            configs: self.configs.clone(),
        }
    }
}

/// All topics. Reads take a short std lock (never across an await); changes are serialised
/// by `admin` so two CreateTopics for one name cannot race.
#[derive(Debug)]
pub(crate) struct Topics {
    data_dir: PathBuf,
    config: Arc<BrokerConfig>,
    map: RwLock<HashMap<String, Arc<Topic>>>,
    admin: tokio::sync::Mutex<()>,
    /// Which partitions transactional producers may write to; shared with every partition
    /// writer and filled by the transaction coordinator.
    gate: Arc<TxnGate>,
}

/// Topics the broker manages itself; clients may read them but not delete them.
pub(crate) fn is_internal(name: &str) -> bool {
    name == crate::groups::OFFSETS_TOPIC || name == crate::txn::TXN_TOPIC
}

/// Kafka's legal topic names: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_name(name: &str) -> Result<(), BrokerError> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BrokerError::InvalidTopic(format!(
            "topic name '{name}' is illegal: use 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'"
        )))
    }
}

/// The storage settings of a topic, from its overrides over broker defaults.
pub(crate) fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let long = |name: &str| -> i64 {
        config::topic_value(broker, overrides, name)
            .parse()
            .unwrap_or(-1)
    };
    let unlimited = |v: i64| if v < 0 { None } else { Some(v) };
    let policy = config::topic_value(broker, overrides, "cleanup.policy");
    LogConfig {
        compact: policy.contains("compact"),
        delete: policy.contains("delete"),
        delete_retention_ms: long("delete.retention.ms").max(0),
        min_compaction_lag_ms: long("min.compaction.lag.ms").max(0),
        segment_bytes: long("segment.bytes").max(1024) as u64,
        segment_ms: unlimited(long("segment.ms")),
        retention_ms: unlimited(long("retention.ms")),
        retention_bytes: unlimited(long("retention.bytes")).map(|v| v as u64),
        index_interval_bytes: long("index.interval.bytes").clamp(1, i64::from(u32::MAX)) as u32,
        segment_index_bytes: long("segment.index.bytes").clamp(4096, i64::from(u32::MAX)) as u32,
    }
}

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

fn meta_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("topics")
}

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn open_partition(
    data_dir: &Path,
    topic: &str,
    index: i32,
    cfg: LogConfig,
    gate: &Arc<TxnGate>,
) -> Result<Arc<Partition>, BrokerError> {
    let dir = partition_dir(data_dir, topic, index);
    let (log, report) =
        PartitionLog::open(&dir, cfg).map_err(|e| BrokerError::Storage(Arc::new(e)))?;
    let text = report.to_string();
    if !text.is_empty() {
        tracing::info!(partition = %format!("{topic}-{index}"), "{text}");
    }
    let placement = Placement {
        topic: topic.to_string(),
        index,
        gate: Arc::clone(gate),
    };
    Ok(Partition::start(
        placement,
        log,
        format!("{topic}-{index}"),
        dir,
    ))
}

impl Topics {
    /// Loads every persisted topic and opens (recovers) its partitions. Removes partition
    /// directories that belong to no topic (a crash during DeleteTopics).
    pub(crate) async fn load(config: Arc<BrokerConfig>) -> Result<Topics, BrokerError> {
        let data_dir = config.data_dir();
        let cfg2 = config.clone();
        let dd = data_dir.clone();
        let gate = Arc::new(TxnGate::default());
        let gate2 = Arc::clone(&gate);
        let topics = tokio::task::spawn_blocking(move || -> Result<Vec<Topic>, BrokerError> {
            let mdir = meta_dir(&dd);
            fs::create_dir_all(&mdir).map_err(|e| BrokerError::io("create", &mdir, e))?;
            let mut metas = Vec::new();
            for entry in fs::read_dir(&mdir).map_err(|e| BrokerError::io("list", &mdir, e))? {
                let entry = entry.map_err(|e| BrokerError::io("list", &mdir, e))?;
                let path = entry.path();
                match path.extension().and_then(|e| e.to_str()) {
                    Some("json") => {}
                    Some("tmp") => {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    _ => continue,
                }
                let text = fs::read(&path).map_err(|e| BrokerError::io("read", &path, e))?;
                let mut meta: TopicMeta = serde_json::from_slice(&text).map_err(|e| {
                    BrokerError::Internal(format!(
                        "topic metadata {} is unreadable: {e}",
                        path.display()
                    ))
                })?;
                if is_internal(&meta.name) {
                    // Data directories from before compaction existed: the offsets topic is
                    // always compacted.
                    meta.configs
                        .entry("cleanup.policy".to_string())
                        .or_insert_with(|| "compact".to_string());
                }
                metas.push(meta);
            }
            let known: std::collections::HashSet<String> = metas
                .iter()
                .flat_map(|m| (0..m.partitions).map(move |p| format!("{}-{p}", m.name)))
                .collect();
            remove_orphans(&dd, &known);
            let mut out = Vec::new();
            for m in metas {
                let lc = log_config(&cfg2, &m.configs);
                let mut parts = Vec::new();
                for p in 0..m.partitions {
                    parts.push(open_partition(&dd, &m.name, p, lc.clone(), &gate2)?);
                }
                out.push(Topic {
                    name: m.name,
                    id: m.id,
                    partitions: parts,
                    configs: m.configs,
                });
            }
            Ok(out)
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("loading topics panicked: {e}")))??;
        let map = topics
            .into_iter()
            .map(|t| (t.name.clone(), Arc::new(t)))
            .collect();
        Ok(Topics {
            data_dir,
            config,
            map: RwLock::new(map),
            admin: tokio::sync::Mutex::new(()),
            gate,
        })
    }

    /// The transaction gate every partition writer checks transactional batches against.
    pub(crate) fn txn_gate(&self) -> Arc<TxnGate> {
        Arc::clone(&self.gate)
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.map.read().ok()?.get(name).cloned()
    }

    pub(crate) fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.map.read().ok()?.values().find(|t| t.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub(crate) fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self
            .map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Creates a topic. `validate_only` checks everything and changes nothing.
    pub(crate) async fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, BrokerError> {
        validate_name(name)?;
        if !(1..=100_000).contains(&partitions) {
            return Err(BrokerError::InvalidPartitions(format!(
                "number of partitions must be between 1 and 100000, got {partitions}"
            )));
        }
        let mut clean = BTreeMap::new();
        for (k, v) in configs {
            let v = config::validate_topic_config(&k, &v)
                .map_err(|e| BrokerError::InvalidConfig(e.to_string()))?;
            clean.insert(k, v);
        }
        let _guard = self.admin.lock().await;
        if let Some(t) = self.get(name) {
            if validate_only {
                return Err(BrokerError::TopicExists(name.to_string()));
            }
            return Err(BrokerError::TopicExists(t.name.clone()));
        }
        let colliding = self
            .all()
            .into_iter()
            .find(|t| t.name.replace('.', "_") == name.replace('.', "_"));
        if let Some(t) = colliding {
            return Err(BrokerError::InvalidTopic(format!(
                "topic '{name}' collides with existing topic '{}' ('.' and '_' are interchangeable in metric names)",
                t.name
            )));
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs: clean,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                name: meta.name,
                id: meta.id,
                partitions: Vec::new(),
                configs: meta.configs,
            }));
        }
        let dd = self.data_dir.clone();
        let lc = log_config(&self.config, &meta.configs);
        let gate = self.txn_gate();
        let topic = tokio::task::spawn_blocking(move || -> Result<Topic, BrokerError> {
            let mut parts = Vec::new();
            for p in 0..meta.partitions {
                // A leftover directory from an earlier topic of the same name must not leak
                // old data into the new topic.
                let dir = partition_dir(&dd, &meta.name, p);
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(|e| BrokerError::io("remove", &dir, e))?;
                }
                parts.push(open_partition(&dd, &meta.name, p, lc.clone(), &gate)?);
            }
            let path = meta_dir(&dd).join(format!("{}.json", meta.name));
            let bytes = serde_json::to_vec_pretty(&meta)
                .map_err(|e| BrokerError::Internal(e.to_string()))?;
            write_atomic(&path, &bytes).map_err(|e| BrokerError::io("write", &path, e))?;
            Ok(Topic {
                name: meta.name,
                id: meta.id,
                partitions: parts,
                configs: meta.configs,
            })
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("creating topic panicked: {e}")))??;
        let topic = Arc::new(topic);
        if let Ok(mut m) = self.map.write() {
            m.insert(topic.name.clone(), topic.clone());
        }
        tracing::info!(topic = %topic.name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: its metadata first (so a crash leaves only orphan directories,
    /// removed at start-up), then its partition logs.
    pub(crate) async fn delete(&self, name: &str) -> Result<Uuid, BrokerError> {
        if is_internal(name) {
            return Err(BrokerError::InvalidTopic(format!(
                "'{name}' is an internal topic and cannot be deleted"
            )));
        }
        let _guard = self.admin.lock().await;
        let topic = self
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        if let Ok(mut m) = self.map.write() {
            m.remove(name);
        }
        for p in &topic.partitions {
            p.close().await;
        }
        let dd = self.data_dir.clone();
        let t = topic.clone();
        tokio::task::spawn_blocking(move || -> Result<(), BrokerError> {
            let path = meta_dir(&dd).join(format!("{}.json", t.name));
            fs::remove_file(&path).map_err(|e| BrokerError::io("remove", &path, e))?;
            let mdir = meta_dir(&dd);
            if let Ok(f) = fs::File::open(&mdir) {
                let _ = f.sync_all();
            }
            for p in 0..t.partitions.len() as i32 {
                let dir = partition_dir(&dd, &t.name, p);
                if let Err(e) = fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory; it will be removed at next start");
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("deleting topic panicked: {e}")))??;
        tracing::info!(topic = %name, "deleted topic");
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions.
    pub(crate) async fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _guard = self.admin.lock().await;
        let topic = self
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        let have = topic.partitions.len() as i32;
        if count <= have {
            return Err(BrokerError::InvalidPartitions(format!(
                "topic '{name}' has {have} partitions; the new count {count} must be larger"
            )));
        }
        if count > 100_000 {
            return Err(BrokerError::InvalidPartitions(format!(
                "number of partitions must be at most 100000, got {count}"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let dd = self.data_dir.clone();
        let lc = log_config(&self.config, &topic.configs);
        let t = topic.clone();
        let gate = self.txn_gate();
        let new_topic = tokio::task::spawn_blocking(move || -> Result<Topic, BrokerError> {
            let mut parts = t.partitions.clone();
            for p in have..count {
                let dir = partition_dir(&dd, &t.name, p);
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(|e| BrokerError::io("remove", &dir, e))?;
                }
                parts.push(open_partition(&dd, &t.name, p, lc.clone(), &gate)?);
            }
            let nt = Topic {
                name: t.name.clone(),
                id: t.id,
                partitions: parts,
                configs: t.configs.clone(),
            };
            let path = meta_dir(&dd).join(format!("{}.json", nt.name));
            let bytes = serde_json::to_vec_pretty(&nt.meta())
                .map_err(|e| BrokerError::Internal(e.to_string()))?;
            write_atomic(&path, &bytes).map_err(|e| BrokerError::io("write", &path, e))?;
            Ok(nt)
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("adding partitions panicked: {e}")))??;
        if let Ok(mut m) = self.map.write() {
            m.insert(name.to_string(), Arc::new(new_topic));
        }
        tracing::info!(topic = %name, from = have, to = count, "added partitions");
        Ok(())
    }

    /// Every partition of every topic (for retention, flushing and shutdown).
    pub(crate) fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.all()
            .iter()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Flushes and closes every partition log.
    pub(crate) async fn close_all(&self) {
        let parts = self.all_partitions();
        let closes = parts.iter().map(|p| p.close());
        futures::future::join_all(closes).await;
    }
}

fn remove_orphans(data_dir: &Path, known: &std::collections::HashSet<String>) {
    let Ok(rd) = fs::read_dir(data_dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !path.is_dir() || name == "meta" || name.starts_with('.') {
            continue;
        }
        let looks_like_partition = name
            .rsplit_once('-')
            .map(|(t, p)| !t.is_empty() && p.parse::<u32>().is_ok())
            .unwrap_or(false);
        if looks_like_partition && !known.contains(name) {
            tracing::warn!(dir = %path.display(), "removing partition directory of a deleted topic");
            if let Err(e) = fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove orphan partition directory");
            }
        }
    }
}

/// Reads an internal topic (`__consumer_offsets`, `__transaction_state`: key → latest value)
/// from its start and hands every keyed data record to `f` as `(key, value)` in log order;
/// control batches are skipped, an unreadable batch is skipped with a warning. Coordinators
/// rebuild their state from it at start-up.
pub(crate) fn replay_internal(
    reader: &eddy_storage::LogReader,
    topic: &str,
    mut f: impl FnMut(bytes::Bytes, Option<bytes::Bytes>),
) -> Result<(), BrokerError> {
    use eddy_protocol::batch::{batch_size_at, BatchHeader};
    let mut offset = reader.log_start_offset();
    let end = reader.log_end_offset();
    while offset < end {
        let chunk = reader.read(offset, 4 * 1024 * 1024)?;
        let mut buf = chunk.bytes;
        let mut next = offset;
        while let Some(size) = batch_size_at(&buf) {
            if size > buf.len() {
                break;
            }
            let mut one = buf.split_to(size);
            let Ok((last, control)) =
                BatchHeader::parse(&one).map(|h| (h.last_offset(), h.is_control()))
            else {
                break;
            };
            if !control {
                match kafka_protocol::records::RecordBatchDecoder::decode(&mut one) {
                    Ok(set) => {
                        for r in set.records {
                            if r.offset >= offset {
                                if let Some(k) = r.key {
                                    f(k, r.value);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(topic, error = %e, "skipping an unreadable batch")
                    }
                }
            }
            next = last + 1;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(())
}

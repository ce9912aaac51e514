//! What a pipeline needs from the process that hosts it. The broker implements [`LocalHost`]
//! over its partition writers (so pipeline output goes through the same append path, sequence
//! checks and fsync as a Kafka producer's); [`StorageHost`] implements it directly over
//! `storage` for tests and embedded use.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use eddy_client::committed::AbortedTxn;
use eddy_protocol::batch::{batch_size_at, BatchHeader};
use eddy_storage::{LogConfig, LogReader, PartitionLog};
use tokio::sync::watch;

/// A boxed, sendable future (the host trait is object-safe).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Local partitions, as seen by a pipeline running inside the process that owns them.
pub trait LocalHost: Send + Sync + 'static {
    /// Number of partitions of `topic`, or None if it does not exist.
    fn partitions(&self, topic: &str) -> Option<i32>;

    /// A reader of the partition and a watch of its log end offset (changes on every
    /// append): sources sleep on it instead of polling.
    fn subscribe(&self, topic: &str, partition: i32) -> Option<(LogReader, watch::Receiver<i64>)>;

    /// Appends one record batch durably (as acks=all). The batch carries the pipeline's
    /// producer id and a base sequence; a batch already written is acknowledged again without
    /// being written twice. Returns the base offset.
    fn append(&self, topic: &str, partition: i32, batch: Vec<u8>)
        -> BoxFuture<Result<i64, String>>;

    /// The last sequence number written to the partition by `producer_id` (None: nothing).
    fn last_sequence(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
    ) -> BoxFuture<Option<i32>>;

    /// A producer id that is never handed out again (pipelines keep theirs in their
    /// checkpoint).
    fn allocate_producer_id(&self) -> BoxFuture<Result<i64, String>>;

    /// What a `read_committed` reader may see of the partition, if it can hold
    /// transactions; `None` (the default): everything in the log is committed.
    fn committed(&self, _topic: &str, _partition: i32) -> Option<Arc<dyn CommittedView>> {
        None
    }
}

/// The transactional state of one partition, as pipelines read it (they read inputs as
/// `read_committed`, like Kafka Streams with exactly-once).
pub trait CommittedView: Send + Sync {
    /// Nothing at or past this offset may be read yet: an open transaction starts there.
    fn last_stable_offset(&self) -> i64;

    /// The aborted transactions with data in `from..to`.
    fn aborted(&self, from: i64, to: i64) -> Vec<AbortedTxn>;
}

#[derive(Debug)]
struct HostPartition {
    log: Mutex<PartitionLog>,
    end: watch::Sender<i64>,
    /// Last sequence per producer id, rebuilt from batch headers on open.
    sequences: Mutex<HashMap<i64, i32>>,
}

/// A [`LocalHost`] over plain partition logs in a directory (`<dir>/<topic>-<partition>`),
/// without a broker. Appends are fsynced before they return.
#[derive(Debug)]
pub struct StorageHost {
    dir: PathBuf,
    topics: Mutex<HashMap<String, Vec<Arc<HostPartition>>>>,
    next_producer_id: Mutex<i64>,
}

impl StorageHost {
    /// A host keeping its logs under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Arc<StorageHost> {
        Arc::new(StorageHost {
            dir: dir.into(),
            topics: Mutex::new(HashMap::new()),
            next_producer_id: Mutex::new(1000),
        })
    }

    /// Opens (creating if needed) `topic` with `partitions` partitions.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<(), eddy_storage::StorageError> {
        let mut parts = Vec::new();
        for p in 0..partitions {
            let (log, _) =
                PartitionLog::open(&self.dir.join(format!("{topic}-{p}")), LogConfig::default())?;
            let mut seqs = HashMap::new();
            let reader = log.reader();
            let mut off = reader.log_start_offset();
            while off < reader.log_end_offset() {
                let r = reader.read(off, 1 << 20)?;
                let mut pos = 0;
                let mut next = off;
                while let Some(size) = batch_size_at(&r.bytes[pos..]) {
                    if let Ok(h) = BatchHeader::parse(&r.bytes[pos..pos + size]) {
                        if h.producer_id() >= 0 {
                            seqs.insert(h.producer_id(), h.base_sequence() + h.last_offset_delta());
                            let mut next = self
                                .next_producer_id
                                .lock()
                                .unwrap_or_else(|e| e.into_inner());
                            *next = (*next).max(h.producer_id() + 1);
                        }
                        next = h.last_offset() + 1;
                    }
                    pos += size;
                }
                if next == off {
                    break;
                }
                off = next;
            }
            let (end, _) = watch::channel(log.log_end_offset());
            parts.push(Arc::new(HostPartition {
                log: Mutex::new(log),
                end,
                sequences: Mutex::new(seqs),
            }));
        }
        self.lock_topics().insert(topic.to_string(), parts);
        Ok(())
    }

    /// Appends a batch without a producer id (test input).
    pub fn append_plain(
        &self,
        topic: &str,
        partition: i32,
        mut batch: Vec<u8>,
    ) -> Result<i64, String> {
        let p = self
            .partition(topic, partition)
            .ok_or("no such partition")?;
        let mut log = p.log.lock().unwrap_or_else(|e| e.into_inner());
        let info = log.append(&mut batch).map_err(|e| e.to_string())?;
        log.flush().map_err(|e| e.to_string())?;
        p.end.send_replace(log.log_end_offset());
        Ok(info.base_offset)
    }

    /// A reader of a partition (for checking output in tests).
    pub fn reader(&self, topic: &str, partition: i32) -> Option<LogReader> {
        let p = self.partition(topic, partition)?;
        let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
        Some(log.reader())
    }

    fn lock_topics(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<HostPartition>>>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn partition(&self, topic: &str, partition: i32) -> Option<Arc<HostPartition>> {
        let topics = self.lock_topics();
        topics
            .get(topic)?
            .get(usize::try_from(partition).ok()?)
            .cloned()
    }
}

impl LocalHost for StorageHost {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.lock_topics().get(topic).map(|p| p.len() as i32)
    }

    fn subscribe(&self, topic: &str, partition: i32) -> Option<(LogReader, watch::Receiver<i64>)> {
        let p = self.partition(topic, partition)?;
        let log = p.log.lock().unwrap_or_else(|e| e.into_inner());
        Some((log.reader(), p.end.subscribe()))
    }

    fn append(
        &self,
        topic: &str,
        partition: i32,
        mut batch: Vec<u8>,
    ) -> BoxFuture<Result<i64, String>> {
        let p = self.partition(topic, partition);
        Box::pin(async move {
            let p = p.ok_or("no such partition")?;
            let h = BatchHeader::parse(&batch).map_err(|e| e.to_string())?;
            let (pid, seq, lod) = (h.producer_id(), h.base_sequence(), h.last_offset_delta());
            let mut seqs = p.sequences.lock().unwrap_or_else(|e| e.into_inner());
            let last = seqs.get(&pid).copied();
            if last.is_some_and(|l| seq <= l) {
                return Ok(-1); // already written: a duplicate of a committed batch
            }
            let expected = last.map_or(0, |l| l + 1);
            if seq != expected {
                return Err(format!("out of order sequence {seq}, expected {expected}"));
            }
            let mut log = p.log.lock().unwrap_or_else(|e| e.into_inner());
            let info = log.append(&mut batch).map_err(|e| e.to_string())?;
            log.flush().map_err(|e| e.to_string())?;
            seqs.insert(pid, seq + lod);
            p.end.send_replace(log.log_end_offset());
            Ok(info.base_offset)
        })
    }

    fn last_sequence(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
    ) -> BoxFuture<Option<i32>> {
        let p = self.partition(topic, partition);
        Box::pin(async move {
            let p = p?;
            let seqs = p.sequences.lock().unwrap_or_else(|e| e.into_inner());
            seqs.get(&producer_id).copied()
        })
    }

    fn allocate_producer_id(&self) -> BoxFuture<Result<i64, String>> {
        let mut next = self
            .next_producer_id
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let id = *next;
        *next += 1;
        Box::pin(async move { Ok(id) })
    }
}

//! Running a pipeline: one tokio task drives the operators; source tasks feed it; output is
//! staged and committed with each checkpoint (see the crate docs for the exactly-once design).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::partitioner::partition_for_key;
use eddy_client::{Cluster, StartAt};
use eddy_protocol::batch::{set_producer, BatchBuilder};
use tokio::sync::{mpsc, watch};

use crate::checkpoint::{self, tp_key, Checkpoint, Meta, StagedMeta};
use crate::error::ProcessorError;
use crate::event::{Collector, Event};
use crate::host::LocalHost;
use crate::operator::Operator;
use crate::plan::{Pipeline, StartFrom};
use crate::source::{self, Decoded, Slot, SourceMsg};
use crate::value::Value;
use crate::watermark::WatermarkTracker;

/// Where a pipeline reads and writes.
#[derive(Clone)]
pub enum Backend {
    /// Inside the broker (or a [`crate::StorageHost`]): straight through storage.
    Local(Arc<dyn LocalHost>),
    /// Any Kafka-compatible cluster over the protocol.
    Remote(Arc<Cluster>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Local(_) => "Local",
            Backend::Remote(_) => "Remote",
        })
    }
}

/// Lifecycle of a running pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "error")]
pub enum RunState {
    #[default]
    Starting,
    Running,
    /// A bounded pipeline processed all its input.
    Finished,
    Stopped,
    Failed(String),
}

/// What a pipeline reports about itself.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatusSnapshot {
    /// Serialized as `"state": "running"` (plus `"error"` when failed).
    #[serde(flatten)]
    pub state: RunState,
    pub records_in: u64,
    pub records_out: u64,
    pub late_records: u64,
    /// Input records skipped because they could not be decoded or had no event time.
    pub bad_records: u64,
    pub watermark: Option<i64>,
    /// Input lag (log end - position) per "topic/partition".
    pub lag: BTreeMap<String, i64>,
    pub checkpoints: u64,
    /// Wall-clock ms when this run started reading, and when it finished or stopped.
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Shared, updated by the pipeline task, read by status endpoints.
#[derive(Debug, Default)]
pub struct PipelineStatus(Mutex<StatusSnapshot>);

impl PipelineStatus {
    /// A copy of the current status.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn update(&self, f: impl FnOnce(&mut StatusSnapshot)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A batch is closed once it reaches this size and a new one started: well under the 1 MiB
/// default `max.message.bytes` of Kafka and Eddy even with the record that crosses it (a
/// remote sink rejects a larger batch).
const BATCH_BYTES: usize = 512 << 10;
/// Staged output beyond this forces an early checkpoint (bounds memory and checkpoint size).
const STAGED_LIMIT: usize = 32 << 20;

#[derive(Debug, Default)]
struct Staging {
    /// Topic → partition → batches (nested so that staging an event looks the topic up by
    /// `&str` without building a key).
    builders: BTreeMap<String, BTreeMap<i32, Vec<BatchBuilder>>>,
    bytes: usize,
    records: u64,
    round_robin: u32,
    /// Reused buffer for values that must be encoded (changed by an operator).
    scratch: Vec<u8>,
}

impl Staging {
    fn add(&mut self, topic: &str, partitions: i32, e: &Event) {
        let partition = match &e.key {
            Some(k) => partition_for_key(k, partitions),
            None => {
                self.round_robin = self.round_robin.wrapping_add(1);
                (self.round_robin % partitions.max(1) as u32) as i32
            }
        };
        // Unchanged values are written as they were read; others are encoded again.
        let value: Option<&[u8]> = match (&e.raw, &e.value) {
            (Some(raw), _) => Some(raw),
            (None, Value::Null) => None,
            (None, v) => {
                self.scratch.clear();
                v.write_json(&mut self.scratch);
                Some(&self.scratch)
            }
        };
        let headers: Vec<(&[u8], Option<&[u8]>)> = e
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref()))
            .collect();
        if !self.builders.contains_key(topic) {
            self.builders.insert(topic.to_string(), BTreeMap::new());
        }
        let Some(parts) = self.builders.get_mut(topic) else {
            return; // inserted just above
        };
        let list = parts.entry(partition).or_default();
        if list.last().is_none_or(|b| b.size() >= BATCH_BYTES) {
            list.push(BatchBuilder::default());
        }
        if let Some(b) = list.last_mut() {
            let before = b.size();
            b.push(e.timestamp, e.key.as_deref(), value, &headers);
            self.bytes += b.size() - before;
        }
        self.records += 1;
    }
}

/// The running state of one pipeline.
struct Runner {
    p: Pipeline,
    backend: Backend,
    dir: PathBuf,
    status: Arc<PipelineStatus>,
    slots: Vec<Slot>,
    positions: Vec<i64>,
    ends: Vec<i64>,
    out_partitions: BTreeMap<String, i32>,
    tracker: WatermarkTracker,
    staging: Staging,
    meta: Meta,
    /// Something was read or fired since the last checkpoint.
    dirty: bool,
    /// Bad records the operators had reported by the last status update (their counts
    /// start at zero with each run).
    ops_bad: u64,
    /// Exclusive lock on `dir`: one run of a pipeline at a time. `None` for a query, which
    /// keeps no state.
    lock: Option<Arc<std::fs::File>>,
    /// A query's result events, collected here instead of staged for a topic until the
    /// query loop hands them on.
    collect: Option<Vec<Event>>,
}

/// Runs `pipeline` until `stop` turns true (then commits and returns), until a bounded
/// pipeline has processed its input, or until it fails. Progress is kept in `state_dir`.
pub async fn run(
    pipeline: Pipeline,
    backend: Backend,
    state_dir: PathBuf,
    status: Arc<PipelineStatus>,
    stop: watch::Receiver<bool>,
) -> Result<(), ProcessorError> {
    let result = run_inner(pipeline, backend, state_dir, Arc::clone(&status), stop).await;
    record_end(&status, result)
}

/// Records how a run ended (state and time) in its status; answers its outcome.
fn record_end(
    status: &PipelineStatus,
    result: Result<RunState, ProcessorError>,
) -> Result<(), ProcessorError> {
    status.update(|s| {
        s.state = match &result {
            Ok(state) => state.clone(),
            Err(e) => RunState::Failed(e.to_string()),
        };
        s.finished_at_ms = Some(wall_ms());
    });
    result.map(|_| ())
}

async fn partitions_of(backend: &Backend, topic: &str) -> Result<i32, ProcessorError> {
    match backend {
        Backend::Local(h) => h
            .partitions(topic)
            .ok_or_else(|| ProcessorError::UnknownTopic(topic.into())),
        Backend::Remote(c) => match c.topic(topic).await {
            Ok(t) if !t.leaders.is_empty() => Ok(t.leaders.len() as i32),
            Ok(_) => Err(ProcessorError::UnknownTopic(topic.into())),
            Err(e) if e.code() == Some(3) => Err(ProcessorError::UnknownTopic(topic.into())),
            Err(e) => Err(e.into()),
        },
    }
}

async fn run_inner(
    mut p: Pipeline,
    backend: Backend,
    dir: PathBuf,
    status: Arc<PipelineStatus>,
    mut stop: watch::Receiver<bool>,
) -> Result<RunState, ProcessorError> {
    let slots = slots_of(&p.inputs, p.read_bytes, &backend).await?;
    let mut out_partitions = BTreeMap::new();
    for t in std::iter::once(&p.output).chain(p.side_outputs.values()) {
        out_partitions.insert(t.clone(), partitions_of(&backend, t).await?);
    }
    let lock = lock_dir(&dir).await?;
    let loaded = {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || checkpoint::read(&d))
            .await
            .map_err(|e| join_err(&dir, e))??
    };
    let now = Instant::now();
    let mut tracker = WatermarkTracker::new(slots.len(), p.watermark_delay, p.idle_timeout, now);
    let (meta, staged) = match loaded {
        Some(ck) => {
            for (i, op) in p.ops.iter_mut().enumerate() {
                if let Some(state) = ck.meta.operators.get(&i) {
                    op.restore(state)?;
                }
            }
            tracker.restore(ck.meta.watermark, &ck.meta.partition_max);
            tracing::info!(pipeline = %p.name, checkpoint = ck.meta.id, "resuming from checkpoint");
            (ck.meta.clone(), Some(ck))
        }
        None => {
            let sink_err = |reason: String| ProcessorError::Sink {
                topic: p.output.clone(),
                partition: -1,
                reason,
            };
            let (producer_id, producer_epoch) = match &backend {
                Backend::Local(h) => (h.allocate_producer_id().await.map_err(sink_err)?, 0),
                Backend::Remote(c) => c
                    .init_producer_id()
                    .await
                    .map_err(|e| sink_err(e.to_string()))?,
            };
            let meta = Meta {
                producer_id,
                producer_epoch,
                ..Meta::default()
            };
            // Fix the producer id before anything is written under it.
            write_checkpoint(
                &dir,
                &lock,
                Checkpoint {
                    meta: meta.clone(),
                    batches: Vec::new(),
                },
            )
            .await?;
            (meta, None)
        }
    };
    let mut r = Runner {
        positions: vec![0; slots.len()],
        ends: vec![0; slots.len()],
        slots,
        p,
        backend,
        dir,
        status,
        out_partitions,
        tracker,
        staging: Staging::default(),
        meta,
        dirty: false,
        ops_bad: 0,
        lock: Some(lock),
        collect: None,
    };
    if let Some(ck) = staged {
        // The crash window between writing a checkpoint and delivering its output: deliver
        // again; batches already written are recognised by their sequence numbers.
        deliver(
            &r.backend,
            r.meta.producer_id,
            &ck.meta.staged,
            ck.batches,
            true,
        )
        .await?;
    }
    let (tx, mut rx) = mpsc::channel(16);
    let live = r.start_sources(tx).await?;
    r.status.update(|s| {
        s.state = RunState::Running;
        s.started_at_ms = Some(wall_ms());
        s.records_in = r.meta.records_in;
        s.records_out = r.meta.records_out;
    });
    let mut remaining = live;
    let mut finished = vec![false; r.slots.len()];
    let mut ticker = tokio::time::interval(r.p.checkpoint_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle = tokio::time::interval(Duration::from_millis(100));
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => {
                r.commit().await?;
                return Ok(RunState::Stopped);
            }
            // Before records: under load the channel is never empty, and checkpoints must
            // still happen on time.
            _ = ticker.tick() => r.commit().await?,
            msg = rx.recv() => match msg {
                Some(SourceMsg::Records { slot, decoded, next, end }) => {
                    r.on_records(slot, decoded, next, end);
                    if r.staging.bytes >= STAGED_LIMIT {
                        r.commit().await?;
                    }
                }
                Some(SourceMsg::Done { slot }) => {
                    if !std::mem::replace(&mut finished[slot], true) {
                        remaining = remaining.saturating_sub(1);
                    }
                    if remaining == 0 {
                        if let Some(wm) = r.tracker.finish() {
                            r.on_watermark(wm);
                        }
                        r.commit().await?;
                        return Ok(RunState::Finished);
                    }
                }
                Some(SourceMsg::Failed(e)) => return Err(e),
                None => return Err(ProcessorError::InvalidPlan("every source stopped".into())),
            },
            _ = idle.tick() => {
                if let Some(wm) = r.tracker.advance(Instant::now()) {
                    r.on_watermark(wm);
                }
            }
        }
    }
}

/// One slot per partition of every input.
/// (Takes the inputs, not the pipeline: its operators are not `Sync`, so a borrow of it must
/// not be held across an await.)
async fn slots_of(
    inputs: &[crate::plan::Input],
    read_bytes: usize,
    backend: &Backend,
) -> Result<Vec<Slot>, ProcessorError> {
    let mut slots = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        for partition in 0..partitions_of(backend, &input.topic).await? {
            slots.push(Slot {
                input: i,
                topic: input.topic.clone(),
                partition,
                read_bytes,
                event_time: input.event_time.clone(),
                fields: input.decode_fields(),
            });
        }
    }
    Ok(slots)
}

/// Runs `pipeline` as an ephemeral query on a local host: its sink topic is ignored and
/// every event the last operator emits is sent to `rows` instead, as it is produced (side
/// outputs such as late records or dead letters are dropped). Nothing is written: no state
/// directory, no checkpoints, no producer id; a restart would begin again from the inputs'
/// start positions. Returns when `stop` changes, when `rows` is closed (the reader went
/// away), when a bounded query has read its input, or when it fails.
pub async fn run_query(
    pipeline: Pipeline,
    host: Arc<dyn LocalHost>,
    status: Arc<PipelineStatus>,
    stop: watch::Receiver<bool>,
    rows: mpsc::Sender<Event>,
) -> Result<(), ProcessorError> {
    let result = query_inner(pipeline, host, Arc::clone(&status), stop, rows).await;
    record_end(&status, result)
}

async fn query_inner(
    p: Pipeline,
    host: Arc<dyn LocalHost>,
    status: Arc<PipelineStatus>,
    mut stop: watch::Receiver<bool>,
    rows: mpsc::Sender<Event>,
) -> Result<RunState, ProcessorError> {
    let backend = Backend::Local(host);
    let slots = slots_of(&p.inputs, p.read_bytes, &backend).await?;
    let tracker = WatermarkTracker::new(
        slots.len(),
        p.watermark_delay,
        p.idle_timeout,
        Instant::now(),
    );
    let mut r = Runner {
        positions: vec![0; slots.len()],
        ends: vec![0; slots.len()],
        slots,
        p,
        backend,
        dir: PathBuf::new(),
        status,
        out_partitions: BTreeMap::new(),
        tracker,
        staging: Staging::default(),
        meta: Meta::default(),
        dirty: false,
        ops_bad: 0,
        lock: None,
        collect: Some(Vec::new()),
    };
    let (tx, mut rx) = mpsc::channel(16);
    let mut remaining = r.start_sources(tx).await?;
    r.status.update(|s| {
        s.state = RunState::Running;
        s.started_at_ms = Some(wall_ms());
    });
    let mut finished = vec![false; r.slots.len()];
    let mut idle = tokio::time::interval(Duration::from_millis(100));
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut done = false;
        tokio::select! {
            biased;
            _ = stop.changed() => return Ok(RunState::Stopped),
            _ = rows.closed() => return Ok(RunState::Stopped),
            msg = rx.recv() => match msg {
                Some(SourceMsg::Records { slot, decoded, next, end }) => {
                    r.on_records(slot, decoded, next, end);
                }
                Some(SourceMsg::Done { slot }) => {
                    if !std::mem::replace(&mut finished[slot], true) {
                        remaining = remaining.saturating_sub(1);
                    }
                    if remaining == 0 {
                        if let Some(wm) = r.tracker.finish() {
                            r.on_watermark(wm);
                        }
                        done = true;
                    }
                }
                Some(SourceMsg::Failed(e)) => return Err(e),
                None => return Err(ProcessorError::InvalidPlan("every source stopped".into())),
            },
            _ = idle.tick() => {
                if let Some(wm) = r.tracker.advance(Instant::now()) {
                    r.on_watermark(wm);
                }
            }
        }
        // Waits while the reader is slow: the sources stop reading meanwhile.
        let out = r.collect.as_mut().map(std::mem::take).unwrap_or_default();
        let n = out.len() as u64;
        for e in out {
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(RunState::Stopped),
                sent = rows.send(e) => if sent.is_err() {
                    return Ok(RunState::Stopped);
                },
            }
        }
        if n > 0 {
            r.meta.records_out += n;
            let total = r.meta.records_out;
            r.status.update(|s| s.records_out = total);
        }
        if done {
            return Ok(RunState::Finished);
        }
    }
}

/// Takes the exclusive lock on the pipeline's state directory, waiting up to 10 s for a
/// previous run (or its last checkpoint write) to let go.
async fn lock_dir(dir: &std::path::Path) -> Result<Arc<std::fs::File>, ProcessorError> {
    let err = |reason: String| ProcessorError::Checkpoint {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let file = std::fs::File::create(dir.join("lock")).map_err(|e| err(e.to_string()))?;
    for _ in 0..200 {
        match file.try_lock() {
            Ok(()) => return Ok(Arc::new(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e.to_string())),
        }
    }
    Err(err(
        "another run of this pipeline holds its state directory".into(),
    ))
}

fn join_err(dir: &std::path::Path, e: tokio::task::JoinError) -> ProcessorError {
    ProcessorError::Checkpoint {
        path: dir.display().to_string(),
        reason: e.to_string(),
    }
}

async fn write_checkpoint(
    dir: &std::path::Path,
    lock: &Arc<std::fs::File>,
    ck: Checkpoint,
) -> Result<(), ProcessorError> {
    let d = dir.to_path_buf();
    // The write holds the directory lock: if this run is cancelled mid-write, the write still
    // finishes before another run of the pipeline may start.
    let lock = Arc::clone(lock);
    tokio::task::spawn_blocking(move || {
        let _held = lock;
        checkpoint::write(&d, &ck)
    })
    .await
    .map_err(|e| join_err(dir, e))?
}

impl Runner {
    /// Starts one reader per slot (local) or one consumer (remote); returns how many
    /// `Done` messages a bounded run waits for.
    async fn start_sources(
        &mut self,
        tx: mpsc::Sender<SourceMsg>,
    ) -> Result<usize, ProcessorError> {
        let resume: Vec<Option<i64>> = self
            .slots
            .iter()
            .map(|s| {
                self.meta
                    .positions
                    .get(&tp_key(&s.topic, s.partition))
                    .copied()
            })
            .collect();
        match &self.backend {
            Backend::Local(host) => {
                for (i, s) in self.slots.iter().enumerate() {
                    let (reader, end_rx) = host
                        .subscribe(&s.topic, s.partition)
                        .ok_or_else(|| ProcessorError::UnknownTopic(s.topic.clone()))?;
                    let pos = match (resume[i], self.p.inputs[s.input].start) {
                        (Some(o), _) => o,
                        (None, StartFrom::Earliest) => reader.log_start_offset(),
                        (None, StartFrom::Latest) => reader.log_end_offset(),
                        (None, StartFrom::Timestamp(ts)) => reader
                            .offset_for_timestamp(ts)
                            .map_err(|source| ProcessorError::Storage {
                                topic: s.topic.clone(),
                                partition: s.partition,
                                source,
                            })?
                            .map_or_else(|| reader.log_end_offset(), |(offset, _ts)| offset),
                    };
                    self.positions[i] = pos;
                    let committed = host.committed(&s.topic, s.partition);
                    let stop_at = self.p.bounded.then(|| {
                        let end = reader.log_end_offset();
                        committed
                            .as_ref()
                            .map_or(end, |c| c.last_stable_offset().min(end))
                    });
                    tokio::spawn(source::local(
                        i,
                        s.clone(),
                        source::LocalInput {
                            reader,
                            end_rx,
                            committed,
                        },
                        pos,
                        stop_at,
                        tx.clone(),
                    ));
                }
            }
            Backend::Remote(cluster) => {
                // Every slot's position is known before the first checkpoint: one that has
                // seen no records yet must not be checkpointed as offset 0 (a resumed run would
                // read that partition again from the start).
                let mut starts = Vec::with_capacity(self.slots.len());
                for (i, (s, r)) in self.slots.iter().zip(&resume).enumerate() {
                    let pos = match r {
                        Some(o) => *o,
                        None => {
                            let at = match self.p.inputs[s.input].start {
                                StartFrom::Earliest => -2,
                                StartFrom::Latest => -1,
                                StartFrom::Timestamp(ts) => ts.max(0),
                            };
                            let o = cluster.list_offset(&s.topic, s.partition, at).await?;
                            // By timestamp, -1 means no record that late: start at the end.
                            if o < 0 {
                                cluster.list_offset(&s.topic, s.partition, -1).await?
                            } else {
                                o
                            }
                        }
                    };
                    self.positions[i] = pos;
                    starts.push(Ok::<i64, StartAt>(pos));
                }
                tokio::spawn(source::remote(
                    Arc::clone(cluster),
                    self.slots.clone(),
                    starts,
                    self.p.bounded,
                    tx,
                ));
            }
        }
        Ok(if self.p.bounded {
            self.slots.len()
        } else {
            usize::MAX
        })
    }

    fn on_records(&mut self, slot: usize, decoded: Decoded, next: i64, end: i64) {
        let now = Instant::now();
        let Decoded { events, read, bad } = decoded;
        if let Some(max) = events.iter().map(|e| e.timestamp).max() {
            self.tracker.observe(slot, max, now);
        }
        let n = read;
        self.dirty = true;
        self.positions[slot] = next;
        self.ends[slot] = end.max(next);
        self.meta.records_in += n;
        self.push(0, events);
        if let Some(wm) = self.tracker.advance(now) {
            self.on_watermark(wm);
        }
        let (slot_key, lag) = (
            tp_key(&self.slots[slot].topic, self.slots[slot].partition),
            self.ends[slot] - next,
        );
        let (records_in, records_out) = (
            self.meta.records_in,
            self.meta.records_out + self.staging.records,
        );
        let ops_bad: u64 = self.p.ops.iter().map(|o| o.bad_records()).sum();
        let bad = bad + ops_bad.saturating_sub(std::mem::replace(&mut self.ops_bad, ops_bad));
        self.status.update(|s| {
            s.records_in = records_in;
            s.records_out = records_out;
            s.bad_records += bad;
            s.lag.insert(slot_key, lag);
        });
    }

    /// Runs `events` through operators `from..` and stages what comes out.
    fn push(&mut self, from: usize, mut events: Vec<Event>) {
        for i in from..self.p.ops.len() {
            if events.is_empty() {
                return;
            }
            let mut out = Collector::default();
            let op: &mut Box<dyn Operator> = &mut self.p.ops[i];
            for e in events {
                op.process(e, &mut out);
            }
            if !op.preserves_values() {
                out.forget_raw();
            }
            self.stage_side(std::mem::take(&mut out.side));
            events = out.main;
        }
        if let Some(c) = &mut self.collect {
            c.extend(events);
            return;
        }
        let topic = self.p.output.clone();
        let parts = self.out_partitions.get(&topic).copied().unwrap_or(1);
        for e in &events {
            self.staging.add(&topic, parts, e);
        }
    }

    fn stage_side(&mut self, side: Vec<(Arc<str>, Event)>) {
        if self.collect.is_some() {
            return; // a query writes nothing
        }
        for (name, e) in side {
            if let Some(topic) = self.p.side_outputs.get(&name) {
                let parts = self.out_partitions.get(topic).copied().unwrap_or(1);
                self.staging.add(&topic.clone(), parts, &e);
            }
        }
    }

    /// Delivers a watermark to each operator in turn, pushing what it fires downstream
    /// before the next operator sees the watermark.
    fn on_watermark(&mut self, wm: i64) {
        self.dirty = true;
        for i in 0..self.p.ops.len() {
            let mut out = Collector::default();
            self.p.ops[i].on_watermark(wm, &mut out);
            if !self.p.ops[i].preserves_values() {
                out.forget_raw();
            }
            self.stage_side(std::mem::take(&mut out.side));
            self.push(i + 1, out.main);
        }
        let late: u64 = self.p.ops.iter().map(|o| o.late_records()).sum();
        self.status.update(|s| {
            s.watermark = Some(wm);
            s.late_records = late;
        });
    }

    /// Commits progress: stages output under sequence numbers, writes the checkpoint, then
    /// delivers the output.
    async fn commit(&mut self) -> Result<(), ProcessorError> {
        if !std::mem::take(&mut self.dirty) {
            return Ok(()); // nothing read since the last checkpoint: nothing to record
        }
        let Some(lock) = self.lock.clone() else {
            return Ok(()); // a query keeps no state
        };
        let staging = std::mem::take(&mut self.staging);
        let mut staged = Vec::new();
        let mut batches = Vec::new();
        let by_partition = staging.builders.into_iter().flat_map(|(topic, parts)| {
            parts
                .into_iter()
                .map(move |(partition, list)| (topic.clone(), partition, list))
        });
        for (topic, partition, builders) in by_partition {
            for b in builders {
                let records = b.len() as i32;
                let mut bytes = b.finish();
                let key = tp_key(&topic, partition);
                let seq = self.meta.next_sequence.get(&key).copied().unwrap_or(0);
                if self.meta.producer_id >= 0 {
                    set_producer(
                        &mut bytes,
                        self.meta.producer_id,
                        self.meta.producer_epoch,
                        seq,
                    );
                }
                self.meta
                    .next_sequence
                    .insert(key, seq.wrapping_add(records));
                staged.push(StagedMeta {
                    topic: topic.clone(),
                    partition,
                    base_sequence: seq,
                    records,
                    len: bytes.len() as u32,
                });
                batches.push(Bytes::from(bytes));
            }
        }
        self.meta.id += 1;
        self.meta.records_out += staging.records;
        self.meta.watermark = self.tracker.current();
        self.meta.partition_max = self.tracker.partition_max();
        self.meta.positions = self
            .slots
            .iter()
            .zip(&self.positions)
            .map(|(s, p)| (tp_key(&s.topic, s.partition), *p))
            .collect();
        self.meta.operators.clear();
        for (i, op) in self.p.ops.iter().enumerate() {
            if let Some(state) = op.snapshot()? {
                self.meta.operators.insert(i, state);
            }
        }
        self.meta.staged = staged.clone();
        write_checkpoint(
            &self.dir,
            &lock,
            Checkpoint {
                meta: self.meta.clone(),
                batches: batches.clone(),
            },
        )
        .await?;
        deliver(
            &self.backend,
            self.meta.producer_id,
            &staged,
            batches,
            false,
        )
        .await?;
        let (id, out) = (self.meta.id, self.meta.records_out);
        self.status.update(|s| {
            s.checkpoints = id;
            s.records_out = out;
        });
        Ok(())
    }
}

/// Appends staged batches in order. With `recovering` (the output of the checkpoint a run
/// resumed from), a batch is first checked against the last sequence the sink holds for the
/// pipeline's producer id and skipped if it was written before the crash; batches of a fresh
/// commit were never sent, so they go straight out. Local: through the host's partition
/// writers. Remote: the same bytes in Produce requests (acks=all) to each partition's leader,
/// partitions in parallel, the leader asked with DescribeProducers when recovering.
async fn deliver(
    backend: &Backend,
    pid: i64,
    staged: &[StagedMeta],
    batches: Vec<Bytes>,
    recovering: bool,
) -> Result<(), ProcessorError> {
    // Per partition, in order; partitions are independent.
    type Batches<'a> = Vec<(&'a StagedMeta, Bytes)>;
    let mut per_partition: BTreeMap<(&str, i32), Batches> = BTreeMap::new();
    for (m, batch) in staged.iter().zip(batches) {
        per_partition
            .entry((m.topic.as_str(), m.partition))
            .or_default()
            .push((m, batch));
    }
    let sends = per_partition.into_values().map(|list| async move {
        for (m, batch) in list {
            let sink_err = |reason: String| ProcessorError::Sink {
                topic: m.topic.clone(),
                partition: m.partition,
                reason,
            };
            let end_seq = m.base_sequence.wrapping_add(m.records - 1);
            match backend {
                Backend::Local(host) => {
                    if recovering {
                        let last = host.last_sequence(&m.topic, m.partition, pid).await;
                        if last.is_some_and(|l| l >= end_seq) {
                            continue; // written before the crash
                        }
                    }
                    // The checkpoint write has dropped its share: this takes the buffer over
                    // without a copy.
                    host.append(&m.topic, m.partition, Vec::from(batch))
                        .await
                        .map_err(sink_err)?;
                }
                Backend::Remote(cluster) => {
                    if recovering && pid >= 0 {
                        match cluster.last_sequence(&m.topic, m.partition, pid).await {
                            Ok(Some(l)) if l >= end_seq => continue,
                            Ok(_) => {}
                            // Without DescribeProducers (Kafka before 2.8) the batch is sent
                            // again: at-least-once for this one checkpoint's output.
                            Err(e) => tracing::warn!(
                                topic = %m.topic, partition = m.partition, error = %e,
                                "cannot ask the sink how far this pipeline got; re-sending a checkpoint's output"
                            ),
                        }
                    }
                    cluster
                        .produce_batch(&m.topic, m.partition, batch, Duration::from_secs(30))
                        .await
                        .map_err(|e| sink_err(e.to_string()))?;
                }
            }
        }
        Ok::<(), ProcessorError>(())
    });
    for r in futures::future::join_all(sends).await {
        r?;
    }
    Ok(())
}

//! One partition: a writer task that owns its `PartitionLog`, and the handles the rest of the
//! broker uses to append (through the task) and read (directly, through a `LogReader`).
//!
//! The writer drains every queued operation, appends them in arrival order, then issues one
//! fsync for all the acks=all appends in that round (group commit) before answering them.
//! acks=1 appends are answered as soon as they are in the log. File work runs on tokio's
//! blocking pool so the reactor never waits on the disk.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use eddy_protocol::batch::BatchHeader;
use eddy_storage::{CompactedSegments, CompactionPlan, LogReader, PartitionLog, StorageError};
use tokio::sync::{mpsc, oneshot, watch};

use crate::producers::{ProducerInfo, ProducerState, SeqCheck};
use crate::txn::gate::TxnGate;
use crate::txn::index::TxnView;

/// Queued operations per partition before producers wait (backpressure).
const QUEUE_DEPTH: usize = 1024;
/// Most operations handled in one round (one blocking call, at most one fsync).
const MAX_ROUND: usize = 512;
/// How often a partition whose disk failed (full disk, I/O error) tries to reopen its log.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// Whether an append must be fsynced before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Answer once in the log (page cache): acks=1, or acks=all with interval flushing.
    Written,
    /// Answer after fsync: acks=all with the default durable setting.
    Synced,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub(crate) base_offset: i64,
}

pub(crate) type AppendResult = Result<Appended, PartitionError>;

#[derive(Debug)]
enum Op {
    Append {
        batch: Vec<u8>,
        durability: Durability,
        reply: oneshot::Sender<AppendResult>,
    },
    DeleteRecords {
        offset: i64,
        reply: oneshot::Sender<Result<i64, PartitionError>>,
    },
    Retention {
        now_ms: i64,
    },
    /// Start cleaning (compacted topics): plan on the writer, run off it.
    Compact {
        now_ms: i64,
    },
    /// A cleaning run finished: swap its segments in (quick, on the writer).
    InstallCompaction(Box<CompactedSegments>),
    /// The last sequence an idempotent producer wrote here (pipelines resume with it).
    LastSequence {
        producer_id: i64,
        reply: oneshot::Sender<Option<i32>>,
    },
    /// Every producer with state here (DescribeProducers).
    Producers {
        reply: oneshot::Sender<Vec<ProducerInfo>>,
    },
    Flush,
    /// Finish queued work, flush, close the log, then answer.
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// Handle to one partition. The writer task stops on [`Partition::close`] or when every
/// handle is dropped.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) index: i32,
    tx: mpsc::Sender<Op>,
    /// Replaced when the writer reopens the log after a disk failure.
    reader: Arc<RwLock<LogReader>>,
    /// Log end offset, published after each append round; fetches wait on it.
    end: watch::Receiver<i64>,
    /// Last stable offset and aborted transactions, published after each round.
    txn: Arc<RwLock<TxnView>>,
}

/// Why an operation on a partition failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PartitionError {
    /// The writer task is gone (shutdown or deletion in progress).
    #[error("the partition is closed or offline")]
    Closed,
    #[error("{0}")]
    Storage(Arc<StorageError>),
    /// An idempotent producer's batch does not follow its previous one.
    #[error("out-of-order sequence number: expected {expected}, got {got}")]
    OutOfOrder { expected: i32, got: i32 },
    /// An idempotent producer wrote with an epoch older than its current one.
    #[error("producer epoch {got} is older than the current epoch {current}")]
    StaleEpoch { current: i16, got: i16 },
    /// A transactional batch for a partition outside the producer's ongoing transaction.
    #[error("transactional batch of producer {producer_id} refused: {reason}")]
    NotInTransaction {
        producer_id: i64,
        reason: &'static str,
    },
}

impl From<Arc<StorageError>> for PartitionError {
    fn from(e: Arc<StorageError>) -> Self {
        PartitionError::Storage(e)
    }
}

/// Where a partition sits, for the transaction gate.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub(crate) topic: String,
    pub(crate) index: i32,
    pub(crate) gate: Arc<TxnGate>,
}

impl Partition {
    /// Starts the writer task for an opened log; `dir` holds the producer-state snapshot.
    /// Blocking: rebuilds the producer and transaction state from the log.
    pub(crate) fn start(
        placement: Placement,
        log: PartitionLog,
        name: String,
        dir: PathBuf,
    ) -> Arc<Partition> {
        let index = placement.index;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let mut state = ProducerState::rebuild(&dir, &log.reader());
        let txn = Arc::new(RwLock::new(
            state.txns.view(log.log_end_offset(), &TxnView::default()),
        ));
        let reader = Arc::new(RwLock::new(log.reader()));
        let (end_tx, end) = watch::channel(log.log_end_offset());
        let handle = tokio::runtime::Handle::current();
        let shared = Arc::clone(&reader);
        // The writer hands finished cleaning runs back to itself; a weak sender does not keep
        // the partition alive once every handle is gone.
        let own = tx.downgrade();
        let ctx = WriterCtx {
            dir,
            end_tx,
            name,
            reader: shared,
            own,
            placement,
            txn: Arc::clone(&txn),
        };
        handle.spawn(writer(log, state, rx, ctx));
        Arc::new(Partition {
            index,
            tx,
            reader,
            end,
            txn,
        })
    }

    /// The last stable offset and aborted transactions as of the last append round.
    pub(crate) fn txn_view(&self) -> TxnView {
        self.txn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every producer with state in this partition.
    pub(crate) async fn producers(&self) -> Result<Vec<ProducerInfo>, PartitionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Producers { reply })
            .await
            .map_err(|_| PartitionError::Closed)?;
        rx.await.map_err(|_| PartitionError::Closed)
    }

    /// A reader of the current log (cheap to clone; a reader taken before the writer
    /// reopened a failed log keeps reading what it had).
    pub(crate) fn reader(&self) -> LogReader {
        self.reader
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A receiver that changes whenever the log end offset moves.
    pub(crate) fn watch_end(&self) -> watch::Receiver<i64> {
        self.end.clone()
    }

    /// Queues an append. The order of calls is the order in the log. The returned receiver
    /// resolves when the append is durable as requested.
    pub(crate) async fn append(
        &self,
        batch: Vec<u8>,
        durability: Durability,
    ) -> Result<oneshot::Receiver<AppendResult>, PartitionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Append {
                batch,
                durability,
                reply,
            })
            .await
            .map_err(|_| PartitionError::Closed)?;
        Ok(rx)
    }

    pub(crate) async fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::DeleteRecords { offset, reply })
            .await
            .map_err(|_| PartitionError::Closed)?;
        rx.await.map_err(|_| PartitionError::Closed)?
    }

    /// Asks the writer to clean the log if its topic is compacted and there is work.
    pub(crate) async fn compact(&self, now_ms: i64) {
        let _ = self.tx.send(Op::Compact { now_ms }).await;
    }

    pub(crate) async fn enforce_retention(&self, now_ms: i64) {
        let _ = self.tx.send(Op::Retention { now_ms }).await;
    }

    /// The last sequence number `producer_id` wrote to this partition, if any.
    pub(crate) async fn last_sequence(
        &self,
        producer_id: i64,
    ) -> Result<Option<i32>, PartitionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::LastSequence { producer_id, reply })
            .await
            .map_err(|_| PartitionError::Closed)?;
        rx.await.map_err(|_| PartitionError::Closed)
    }

    pub(crate) async fn flush(&self) {
        let _ = self.tx.send(Op::Flush).await;
    }

    /// Lets queued operations finish, flushes and closes the log. Later operations fail
    /// with [`PartitionError::Closed`].
    pub(crate) async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Op::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// What the writer task works with besides the log and its queue.
struct WriterCtx {
    /// Partition directory (producer-state snapshot).
    dir: PathBuf,
    /// Publishes the log end offset after each round.
    end_tx: watch::Sender<i64>,
    /// `topic-partition`, for logs.
    name: String,
    /// The handle's reader, replaced when a failed log is reopened.
    reader: Arc<RwLock<LogReader>>,
    /// The writer's own queue, for finished cleaning runs.
    own: mpsc::WeakSender<Op>,
    /// Topic, index and the transaction gate transactional batches are checked against.
    placement: Placement,
    /// Published last stable offset and aborted transactions.
    txn: Arc<RwLock<TxnView>>,
}

/// What a round needs to check and publish transactions.
struct TxnCtx {
    placement: Placement,
    view: Arc<RwLock<TxnView>>,
}

async fn writer(
    log: PartitionLog,
    state: ProducerState,
    mut rx: mpsc::Receiver<Op>,
    ctx: WriterCtx,
) {
    let WriterCtx {
        dir,
        end_tx,
        name,
        reader,
        own,
        placement,
        txn,
    } = ctx;
    let mut log = Some((log, state));
    let mut close_reply: Option<oneshot::Sender<()>> = None;
    // When the next attempt to reopen a failed log is due.
    let mut reopen_at: Option<tokio::time::Instant> = None;
    loop {
        let failed = log.as_ref().is_some_and(|(l, _)| l.is_failed());
        let first = if failed {
            // The disk failed (full, or an I/O error): operations are refused with
            // KAFKA_STORAGE_ERROR by the latched log, and every second the writer tries to
            // reopen it, which recovers the log from what is durable (acknowledged appends
            // were fsynced; a torn unacknowledged tail is truncated) once the disk works.
            let now = tokio::time::Instant::now();
            let due = *reopen_at.get_or_insert(now + REOPEN_EVERY);
            if now >= due {
                if let Some((l, st)) = log.take() {
                    let (l, mut st) = reopen(l, st, &dir, &name, &reader, &end_tx).await;
                    publish_txns(&mut st, l.log_end_offset(), &txn);
                    log = Some((l, st));
                }
                reopen_at = None;
                continue;
            }
            tokio::select! {
                op = rx.recv() => op,
                _ = tokio::time::sleep_until(due) => continue,
            }
        } else {
            reopen_at = None;
            rx.recv().await
        };
        let Some(first) = first else { break };
        let mut ops = vec![first];
        while ops.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let Some((l, st)) = log.take() else {
            fail_all(ops, &name);
            continue;
        };
        let end = end_tx.clone();
        let name2 = name.clone();
        let tctx = TxnCtx {
            placement: placement.clone(),
            view: Arc::clone(&txn),
        };
        let dir2 = dir.clone();
        match tokio::task::spawn_blocking(move || round(l, st, ops, &end, &name2, &tctx, &dir2))
            .await
        {
            Ok((l, st, close, plan)) => {
                log = Some((l, st));
                if let Some(plan) = plan {
                    spawn_cleaner(plan, own.clone(), name.clone());
                }
                if close.is_some() {
                    close_reply = close;
                    rx.close();
                    break;
                }
            }
            Err(e) => {
                tracing::error!(partition = %name, error = %e,
                    "partition writer panicked; the partition is offline until restart");
            }
        }
    }
    if let Some((l, st)) = log.take() {
        let r = tokio::task::spawn_blocking(move || {
            let r = l.close();
            if r.is_ok() {
                // Only a cleanly closed log matches the snapshot exactly.
                st.save(&dir);
            }
            r
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::error!(partition = %name, error = %e, "closing the log failed");
        }
    }
    // Anything queued after the close request is refused.
    let mut late = Vec::new();
    while let Ok(op) = rx.try_recv() {
        late.push(op);
    }
    fail_all(late, &name);
    if let Some(reply) = close_reply {
        let _ = reply.send(());
    }
}

/// Replaces a failed log with a freshly opened (recovered) one. The failed log stays open
/// until then (it never writes again: its failure latch refuses everything), and is kept if
/// reopening fails, to try again later.
async fn reopen(
    failed: PartitionLog,
    state: ProducerState,
    dir: &std::path::Path,
    name: &str,
    reader: &RwLock<LogReader>,
    end_tx: &watch::Sender<i64>,
) -> (PartitionLog, ProducerState) {
    // Cuts what was appended after the last successful flush (see `PartitionLog::reopener`).
    let reopen = failed.reopener();
    let state_dir = dir.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        let (log, report) = reopen.open()?;
        let state = ProducerState::rebuild(&state_dir, &log.reader());
        Ok::<_, StorageError>((log, state, report))
    })
    .await;
    match opened {
        Ok(Ok((log, fresh, report))) => {
            tracing::warn!(partition = %name, end_offset = log.log_end_offset(), recovery = %report,
                "the partition's disk works again: log reopened and recovered; accepting writes");
            *reader.write().unwrap_or_else(|e| e.into_inner()) = log.reader();
            end_tx.send_replace(log.log_end_offset());
            drop((failed, state));
            (log, fresh)
        }
        Ok(Err(e)) => {
            tracing::debug!(partition = %name, error = %e, "the failed log cannot be reopened yet");
            (failed, state)
        }
        Err(e) => {
            tracing::error!(partition = %name, error = %e, "reopening the failed log panicked");
            (failed, state)
        }
    }
}

fn fail_all(ops: Vec<Op>, name: &str) {
    if ops.is_empty() {
        return;
    }
    tracing::debug!(partition = %name, count = ops.len(), "refusing operations: partition closed or offline");
    let err = PartitionError::Closed;
    for op in ops {
        match op {
            Op::Append { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Op::DeleteRecords { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Op::Close { reply } => {
                let _ = reply.send(());
            }
            Op::Retention { .. }
            | Op::Flush
            | Op::LastSequence { .. }
            | Op::Producers { .. }
            | Op::Compact { .. }
            | Op::InstallCompaction(_) => {}
        }
    }
}

/// Runs a cleaning plan on the blocking pool, off the writer (appends and fetches go on), and
/// queues the result for installation.
fn spawn_cleaner(plan: CompactionPlan, own: mpsc::WeakSender<Op>, name: String) {
    tokio::spawn(async move {
        let segments = plan.segment_count();
        match tokio::task::spawn_blocking(move || plan.run()).await {
            Ok(Ok(done)) => {
                if let Some(tx) = own.upgrade() {
                    let _ = tx.send(Op::InstallCompaction(Box::new(done))).await;
                }
            }
            Ok(Err(e)) => {
                tracing::error!(partition = %name, segments, error = %e, "log cleaning failed")
            }
            Err(e) => tracing::error!(partition = %name, error = %e, "log cleaning panicked"),
        }
    });
}

/// What one round produced besides its answers.
type RoundResult = (
    PartitionLog,
    ProducerState,
    Option<oneshot::Sender<()>>,
    Option<CompactionPlan>,
);

/// One round on the blocking pool. Returns the log, the close request and a cleaning plan to
/// run, if any.
fn round(
    mut log: PartitionLog,
    mut state: ProducerState,
    ops: Vec<Op>,
    end: &watch::Sender<i64>,
    name: &str,
    txn: &TxnCtx,
    dir: &std::path::Path,
) -> RoundResult {
    let mut plan = None;
    let mut waiting_sync: Vec<(oneshot::Sender<AppendResult>, Appended)> = Vec::new();
    let mut want_flush = false;
    let mut close = None;
    for op in ops {
        if close.is_some() {
            fail_all(vec![op], name);
            continue;
        }
        match op {
            Op::Append {
                mut batch,
                durability,
                reply,
            } => {
                let outcome =
                    append_checked(&mut log, &mut state, &mut batch, name, &txn.placement);
                match outcome {
                    Ok(done) if durability == Durability::Synced => {
                        waiting_sync.push((reply, done))
                    }
                    other => {
                        let _ = reply.send(other);
                    }
                }
            }
            Op::DeleteRecords { offset, reply } => {
                let r = log
                    .delete_records_before(offset)
                    .map_err(|e| PartitionError::Storage(Arc::new(e)));
                let _ = reply.send(r);
            }
            Op::Retention { now_ms } => match log.enforce_retention(now_ms) {
                Ok(report) => tracing::debug!(partition = %name, ?report, "retention pass"),
                Err(e) => tracing::error!(partition = %name, error = %e, "retention failed"),
            },
            Op::Compact { now_ms } => {
                if plan.is_none() {
                    plan = log.compaction_plan(now_ms);
                }
            }
            Op::InstallCompaction(done) => match log.install_compaction(*done) {
                Ok(report) if report.discarded => {
                    tracing::info!(partition = %name, %report, "cleaning result discarded")
                }
                Ok(report) => tracing::info!(partition = %name, %report, "log cleaned"),
                Err(e) => {
                    tracing::error!(partition = %name, error = %e, "installing cleaned segments failed")
                }
            },
            Op::LastSequence { producer_id, reply } => {
                let _ = reply.send(state.last_sequence(producer_id));
            }
            Op::Producers { reply } => {
                let _ = reply.send(state.describe());
            }
            Op::Flush => want_flush = true,
            Op::Close { reply } => {
                close = Some(reply);
                want_flush = true;
            }
        }
    }
    state.txns.prune(log.log_start_offset());
    // The view before the end offset: a fetch woken by the new end must see a view at
    // least as new as the data (an older one would only hide more).
    publish_txns(&mut state, log.log_end_offset(), &txn.view);
    end.send_replace(log.log_end_offset());
    if !waiting_sync.is_empty() || want_flush {
        match log.flush() {
            Ok(()) => {
                for (reply, info) in waiting_sync {
                    let _ = reply.send(Ok(info));
                }
                // Everything the state covers is durable now: a good moment for the periodic
                // snapshot that keeps restart after a crash from rescanning the whole log.
                state.maybe_save(dir);
            }
            Err(e) => {
                tracing::error!(partition = %name, error = %e,
                    "fsync failed; the partition refuses writes until its log is reopened (tried every second)");
                let e = PartitionError::Storage(Arc::new(e));
                for (reply, _) in waiting_sync {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
    (log, state, close, plan)
}

/// Publishes the last stable offset and aborted transactions for readers.
fn publish_txns(state: &mut ProducerState, log_end: i64, view: &RwLock<TxnView>) {
    let previous = view.read().unwrap_or_else(|e| e.into_inner()).clone();
    let next = state.txns.view(log_end, &previous);
    *view.write().unwrap_or_else(|e| e.into_inner()) = next;
}

/// The transaction gate and sequence checks, then the append.
fn append_checked(
    log: &mut PartitionLog,
    state: &mut ProducerState,
    batch: &mut [u8],
    name: &str,
    placement: &Placement,
) -> AppendResult {
    let check = match BatchHeader::parse(batch) {
        Ok(h) => {
            if h.is_transactional() && !h.is_control() {
                placement.gate.check(
                    h.producer_id(),
                    h.producer_epoch(),
                    &placement.topic,
                    placement.index,
                )?;
            }
            state.check(&h)
        }
        Err(_) => SeqCheck::Append, // storage rejects it with a precise error
    };
    match check {
        SeqCheck::Append => {}
        SeqCheck::Duplicate { base_offset, .. } => {
            tracing::debug!(partition = %name, base_offset, "duplicate batch from an idempotent producer; not written again");
            return Ok(Appended { base_offset });
        }
        SeqCheck::OutOfOrder { expected, got } => {
            return Err(PartitionError::OutOfOrder { expected, got });
        }
        SeqCheck::StaleEpoch { current, got } => {
            return Err(PartitionError::StaleEpoch { current, got });
        }
    }
    let was_failed = log.is_failed();
    match log.append(batch) {
        Ok(info) => {
            if let Ok(h) = BatchHeader::parse(batch) {
                state.record(&h);
            }
            Ok(Appended {
                base_offset: info.base_offset,
            })
        }
        Err(e) => {
            if was_failed {
                // Already reported when the log failed; it is being reopened every second.
                tracing::debug!(partition = %name, error = %e, "append refused: the log is failed");
            } else {
                tracing::error!(partition = %name, error = %e, "append failed");
            }
            Err(PartitionError::Storage(Arc::new(e)))
        }
    }
}

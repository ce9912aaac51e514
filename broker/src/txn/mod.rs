//! The transaction coordinator: one state per transactional id (`state`), made durable in
//! the internal compacted topic `__transaction_state` (`records`) before any change takes
//! effect, and rebuilt from it at start-up. Ending a transaction writes a COMMIT or ABORT
//! marker (`markers`) to every partition in it through the partition writers; the `gate`
//! keeps producers from writing to partitions outside their ongoing transaction, and each
//! partition's `index` turns markers into the last stable offset and the aborted list.
//!
//! Requests for one transactional id are serialised by a per-id async lock; the std mutex
//! around the states is never held across an await. See docs/design.md, "Transactions".

pub(crate) mod gate;
pub(crate) mod index;
pub(crate) mod markers;
mod records;
pub(crate) mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use eddy_protocol::batch::BatchBuilder;

use crate::error::BrokerError;
use crate::groups;
use crate::handlers::now_ms;
use crate::partition::{Durability, Partition, PartitionError};
use crate::producers::ProducerIds;
use crate::topics::Topics;
use gate::TxnGate;
use markers::Marker;
use state::{End, TxnMeta, TxnOffset, TxnState};

/// Name of the internal topic holding transaction states.
pub(crate) const TXN_TOPIC: &str = "__transaction_state";

/// Coordinator settings (`transaction.*` in the config schema).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnSettings {
    /// Largest `transaction.timeout.ms` a producer may ask for.
    pub(crate) max_timeout_ms: i32,
    /// How often timed-out transactions are looked for.
    pub(crate) abort_check_every: Duration,
}

/// The coordinator for every transactional id (Eddy is a single node).
#[derive(Debug)]
pub(crate) struct Coordinator {
    metas: Mutex<HashMap<String, TxnMeta>>,
    /// Serialises requests per transactional id (entries live as long as the id).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Partition 0 of `__transaction_state`.
    log: Arc<Partition>,
    gate: Arc<TxnGate>,
    settings: TxnSettings,
}

impl Coordinator {
    /// Opens (creating if needed) the state topic, rebuilds every transactional id's state
    /// from it, and finishes the transactions that were ending when the broker stopped.
    /// Open transactions stay open; their timeout (counted from their persisted start)
    /// aborts them if their producer does not end them.
    pub(crate) async fn load(
        topics: &Topics,
        groups: &groups::Coordinator,
        settings: TxnSettings,
    ) -> Result<Coordinator, BrokerError> {
        let topic = match topics.get(TXN_TOPIC) {
            Some(t) => t,
            None => {
                let mut cfg = std::collections::BTreeMap::new();
                cfg.insert("retention.ms".to_string(), "-1".to_string());
                // The latest record per transactional id is the state; the cleaner drops
                // the rest.
                cfg.insert("cleanup.policy".to_string(), "compact".to_string());
                cfg.insert("segment.bytes".to_string(), "104857600".to_string());
                match topics.create(TXN_TOPIC, 1, cfg, false).await {
                    Ok(t) => t,
                    Err(BrokerError::TopicExists(_)) => topics.get(TXN_TOPIC).ok_or_else(|| {
                        BrokerError::Internal("transaction state topic vanished".into())
                    })?,
                    Err(e) => return Err(e),
                }
            }
        };
        let log = topic.partition(0).cloned().ok_or_else(|| {
            BrokerError::Internal("transaction state topic has no partition 0".into())
        })?;
        let reader = log.reader();
        let (metas, records) = tokio::task::spawn_blocking(move || replay(&reader))
            .await
            .map_err(|e| BrokerError::Internal(format!("loading transactions panicked: {e}")))??;
        let gate = topics.txn_gate();
        for m in metas.values() {
            gate.set(m.producer_id, m.epoch, m.is_open(), &m.partitions);
        }
        let ongoing = metas.values().filter(|m| m.is_open()).count();
        let ending: Vec<String> = metas
            .values()
            .filter(|m| m.is_prepare())
            .map(|m| m.transactional_id.clone())
            .collect();
        tracing::info!(
            transactional_ids = metas.len(),
            ongoing,
            ending = ending.len(),
            records,
            "transaction coordinator loaded"
        );
        let c = Coordinator {
            metas: Mutex::new(metas),
            locks: Mutex::new(HashMap::new()),
            log,
            gate,
            settings,
        };
        for tid in ending {
            let lock = c.id_lock(&tid);
            let _l = lock.lock().await;
            if let Some(m) = c.get(&tid).filter(TxnMeta::is_prepare) {
                match c.complete(m, topics, groups).await {
                    Ok(()) => {
                        tracing::info!(transactional_id = %tid, "finished a transaction that was ending when the broker stopped")
                    }
                    Err(e) => {
                        tracing::warn!(transactional_id = %tid, error = %e, "cannot finish a transaction that was ending when the broker stopped; retrying later")
                    }
                }
            }
        }
        Ok(c)
    }

    fn lock_metas(&self) -> std::sync::MutexGuard<'_, HashMap<String, TxnMeta>> {
        self.metas.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id_lock(&self, tid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(tid.to_string()).or_default().clone()
    }

    fn get(&self, tid: &str) -> Option<TxnMeta> {
        self.lock_metas().get(tid).cloned()
    }

    fn existing(&self, tid: &str) -> Result<TxnMeta, BrokerError> {
        self.get(tid)
            .filter(|m| m.state != TxnState::Dead)
            .ok_or_else(|| {
                BrokerError::InvalidProducerIdMapping(format!(
                    "transactional id '{tid}' is unknown; call InitProducerId first"
                ))
            })
    }

    /// Makes `meta` durable (fsynced in `__transaction_state`), then makes it the state and
    /// opens or closes the producer's gate accordingly.
    async fn persist(&self, meta: TxnMeta) -> Result<(), BrokerError> {
        let mut b = BatchBuilder::default();
        b.push(
            now_ms(),
            Some(&records::encode_key(&meta.transactional_id)),
            Some(&records::encode_value(&meta)),
            &[],
        );
        let rx = self
            .log
            .append(b.finish(), Durability::Synced)
            .await
            .map_err(BrokerError::from)?;
        match rx.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(transactional_id = %meta.transactional_id, error = %e, "transaction state not durable");
                return Err(e.into());
            }
            Err(_) => return Err(BrokerError::NotAvailable),
        }
        let old = self
            .lock_metas()
            .insert(meta.transactional_id.clone(), meta.clone());
        if let Some(old) = old.filter(|o| o.producer_id != meta.producer_id) {
            self.gate.remove(old.producer_id);
        }
        self.gate.set(
            meta.producer_id,
            meta.epoch,
            meta.is_open(),
            &meta.partitions,
        );
        Ok(())
    }

    /// Ends a transaction whose Prepare* state is durable: writes its marker to every
    /// partition in it (fsynced), commits its offsets if it commits, then persists the
    /// Complete* state. On failure the Prepare* state stays and is finished later (by a
    /// retried request, or the timer), so every partition gets its marker eventually.
    async fn complete(
        &self,
        meta: TxnMeta,
        topics: &Topics,
        groups: &groups::Coordinator,
    ) -> Result<(), BrokerError> {
        let commit = meta.state == TxnState::PrepareCommit;
        let marker = markers::build(
            meta.producer_id,
            meta.epoch,
            if commit {
                Marker::Commit
            } else {
                Marker::Abort
            },
            now_ms(),
        );
        let mut waits = Vec::new();
        for (t, p) in &meta.partitions {
            let Some(part) = topics.get(t).and_then(|tp| tp.partition(*p).cloned()) else {
                tracing::warn!(topic = %t, partition = p, transactional_id = %meta.transactional_id,
                    "a partition of the transaction no longer exists; no marker written there");
                continue;
            };
            waits.push((
                (t, *p),
                part.append(marker.clone(), Durability::Synced).await,
            ));
        }
        let mut failed = None;
        for ((t, p), queued) in waits {
            let result = match queued {
                Ok(rx) => rx.await.unwrap_or(Err(PartitionError::Closed)),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                if matches!(e, PartitionError::Closed) && topics.get(t).is_none() {
                    continue; // deleted while the marker was queued
                }
                tracing::warn!(topic = %t, partition = p, transactional_id = %meta.transactional_id,
                    error = %e, "cannot write a transaction marker yet");
                failed = Some(BrokerError::from(e));
            }
        }
        if let Some(e) = failed {
            return Err(BrokerError::ConcurrentTransactions(format!(
                "the transaction of '{}' is decided but not all of its markers are written yet ({e}); they are retried",
                meta.transactional_id
            )));
        }
        if commit && !meta.offsets.is_empty() {
            if let Err(e) = groups
                .commit_txn_offsets(&meta.offsets, meta.updated_ms)
                .await
            {
                return Err(BrokerError::ConcurrentTransactions(format!(
                    "the transaction of '{}' is committed but its consumer offsets are not written yet ({e}); they are retried",
                    meta.transactional_id
                )));
            }
        }
        tracing::debug!(transactional_id = %meta.transactional_id, commit,
            partitions = meta.partitions.len(), offsets = meta.offsets.len(), "transaction ended");
        self.persist(meta.completed(now_ms())).await
    }

    /// InitProducerId with a transactional id: a new producer id, or the next epoch of the
    /// existing one, which fences every older producer of the id. An ongoing transaction is
    /// aborted first (markers at a bumped epoch).
    pub(crate) async fn init_producer_id(
        &self,
        tid: &str,
        timeout_ms: i32,
        producer_id: i64,
        epoch: i16,
        env: &Env<'_>,
    ) -> Result<(i64, i16), BrokerError> {
        if timeout_ms <= 0 || timeout_ms > self.settings.max_timeout_ms {
            return Err(BrokerError::InvalidTransactionTimeout(format!(
                "transaction.timeout.ms {timeout_ms} must be between 1 and transaction.max.timeout.ms ({})",
                self.settings.max_timeout_ms
            )));
        }
        let lock = self.id_lock(tid);
        let _l = lock.lock().await;
        let Some(meta) = self.get(tid).filter(|m| m.state != TxnState::Dead) else {
            let pid = next_producer_id(env.ids).await?;
            let meta = TxnMeta::new(tid, pid, timeout_ms, now_ms());
            self.persist(meta).await?;
            tracing::debug!(transactional_id = %tid, producer_id = pid, "new transactional producer");
            return Ok((pid, 0));
        };
        meta.check_init(producer_id, epoch)?;
        if let Some(aborting) = meta.fence(now_ms()) {
            tracing::info!(transactional_id = %tid, producer_id = meta.producer_id,
                old_epoch = meta.epoch, "a producer initialised while its transaction was ongoing: aborting it");
            self.persist(aborting.clone()).await?;
            self.complete(aborting, env.topics, env.groups).await?;
        } else if meta.is_prepare() {
            self.complete(meta, env.topics, env.groups).await?;
        }
        let meta = self.existing(tid)?;
        let fresh = if meta.epoch_exhausted() {
            Some(next_producer_id(env.ids).await?)
        } else {
            None
        };
        let next = meta.reinit(timeout_ms, now_ms(), fresh);
        let out = (next.producer_id, next.epoch);
        self.persist(next).await?;
        Ok(out)
    }

    /// AddPartitionsToTxn: the partitions may be written once this returns.
    pub(crate) async fn add_partitions(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), BrokerError> {
        let lock = self.id_lock(tid);
        let _l = lock.lock().await;
        let meta = self.existing(tid)?;
        if let Some(next) = meta.add(producer_id, epoch, partitions, None, now_ms())? {
            self.persist(next).await?;
        }
        Ok(())
    }

    /// AddOffsetsToTxn: the group's offsets may be sent with TxnOffsetCommit.
    pub(crate) async fn add_offsets(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<(), BrokerError> {
        let lock = self.id_lock(tid);
        let _l = lock.lock().await;
        let meta = self.existing(tid)?;
        if let Some(next) = meta.add(producer_id, epoch, &[], Some(group), now_ms())? {
            self.persist(next).await?;
        }
        Ok(())
    }

    /// TxnOffsetCommit: holds the offsets with the transaction (durably) until it ends.
    pub(crate) async fn txn_offset_commit(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<TxnOffset>,
    ) -> Result<(), BrokerError> {
        let lock = self.id_lock(tid);
        let _l = lock.lock().await;
        let meta = self.existing(tid)?;
        let next = meta.add_offsets(producer_id, epoch, group, offsets, now_ms())?;
        self.persist(next).await
    }

    /// EndTxn: answered once every marker is written and the Complete* state is durable.
    pub(crate) async fn end_txn(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        env: &Env<'_>,
    ) -> Result<(), BrokerError> {
        let lock = self.id_lock(tid);
        let _l = lock.lock().await;
        let meta = self.existing(tid)?;
        match meta.end(producer_id, epoch, commit, now_ms())? {
            End::AlreadyDone => Ok(()),
            End::Complete(prepared) => {
                if prepared != meta {
                    self.persist(prepared.clone()).await?;
                }
                self.complete(prepared, env.topics, env.groups).await
            }
        }
    }

    /// Aborts transactions that outlived their timeout (bumping the epoch, so their producer
    /// is fenced) and retries transactions whose markers could not all be written.
    pub(crate) async fn expire(&self, topics: &Topics, groups: &groups::Coordinator) {
        let now = now_ms();
        let due: Vec<String> = self
            .lock_metas()
            .values()
            .filter(|m| m.timed_out(now) || m.is_prepare())
            .map(|m| m.transactional_id.clone())
            .collect();
        for tid in due {
            let lock = self.id_lock(&tid);
            let _l = lock.lock().await;
            let Some(meta) = self.get(&tid) else { continue };
            let now = now_ms();
            let result =
                if let Some(aborting) = meta.timed_out(now).then(|| meta.fence(now)).flatten() {
                    tracing::info!(transactional_id = %tid, producer_id = meta.producer_id,
                    epoch = meta.epoch, timeout_ms = meta.timeout_ms,
                    "aborting a transaction that exceeded its timeout; its producer is fenced");
                    match self.persist(aborting.clone()).await {
                        Ok(()) => self.complete(aborting, topics, groups).await,
                        Err(e) => Err(e),
                    }
                } else if meta.is_prepare() {
                    self.complete(meta, topics, groups).await
                } else {
                    Ok(())
                };
            if let Err(e) = result {
                tracing::warn!(transactional_id = %tid, error = %e, "transaction not finished yet; retrying");
            }
        }
    }

    /// Runs [`Coordinator::expire`] every `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    /// until shutdown.
    pub(crate) async fn run_timers(
        self: Arc<Self>,
        broker: Arc<crate::server::Broker>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut every = tokio::time::interval(self.settings.abort_check_every);
        loop {
            tokio::select! {
                _ = every.tick() => self.expire(&broker.topics, &broker.groups).await,
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Whether an ongoing or committing transaction holds an offset for this partition of
    /// this group (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub(crate) fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.lock_metas().values().any(|m| {
            matches!(m.state, TxnState::Ongoing | TxnState::PrepareCommit)
                && m.offsets
                    .iter()
                    .any(|o| o.group == group && o.topic == topic && o.partition == partition)
        })
    }

    /// Every transactional id's state, sorted by id.
    pub(crate) fn list(&self) -> Vec<TxnMeta> {
        let mut v: Vec<TxnMeta> = self.lock_metas().values().cloned().collect();
        v.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        v
    }

    pub(crate) fn describe(&self, tid: &str) -> Option<TxnMeta> {
        self.get(tid)
    }
}

/// What the coordinator's requests work with besides its own state.
#[derive(Debug)]
pub(crate) struct Env<'a> {
    pub(crate) topics: &'a Topics,
    pub(crate) groups: &'a groups::Coordinator,
    pub(crate) ids: &'a Arc<ProducerIds>,
}

async fn next_producer_id(ids: &Arc<ProducerIds>) -> Result<i64, BrokerError> {
    let ids = ids.clone();
    match tokio::task::spawn_blocking(move || ids.next()).await {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            Err(BrokerError::io(
                "reserve producer ids in",
                std::path::Path::new("meta/producer-ids.json"),
                e,
            ))
        }
        Err(e) => Err(BrokerError::Internal(format!(
            "reserving producer ids panicked: {e}"
        ))),
    }
}

/// Reads the state topic from its start: the latest record per transactional id wins, a
/// tombstone deletes. Returns the states and the number of records read.
fn replay(
    reader: &eddy_storage::LogReader,
) -> Result<(HashMap<String, TxnMeta>, usize), BrokerError> {
    let mut latest: BTreeMap<String, Option<Bytes>> = BTreeMap::new();
    let mut count = 0usize;
    crate::topics::replay_internal(reader, "__transaction_state", |key, value| {
        if let Some(tid) = records::decode_key(key) {
            latest.insert(tid, value);
            count += 1;
        }
    })?;
    let mut metas = HashMap::new();
    for (tid, value) in latest {
        let Some(value) = value else { continue };
        match records::decode_value(&tid, value) {
            Some(m) => {
                metas.insert(tid, m);
            }
            None => {
                tracing::warn!(transactional_id = %tid, "unreadable transaction state record; the id starts afresh")
            }
        }
    }
    Ok((metas, count))
}

//! The transaction state machine of one transactional id, as pure functions (no I/O, no
//! clock): each request either fails with the error Kafka gives or yields the next state,
//! which the coordinator makes durable before it takes effect.
//!
//! ```text
//!            AddPartitions/AddOffsets           EndTxn(commit)             markers written
//!  Empty ─────────────────────────▶ Ongoing ──────────────────▶ PrepareCommit ──────────▶ CompleteCommit
//!  Complete* ──────────────────────▶   │     EndTxn(abort), timeout,                       │
//!                                      │     InitProducerId (fencing)                       │
//!                                      └──────────────────────────▶ PrepareAbort ─────────▶ CompleteAbort
//! ```
//!
//! Complete* behave like Empty for the next transaction. Dead exists for Kafka's numbering
//! (expired transactional ids); Eddy does not expire ids yet.

use std::collections::BTreeSet;

use crate::error::BrokerError;

/// Kafka's transaction states, with Kafka's numbering in the state log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
}

impl TxnState {
    pub(crate) fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
        }
    }

    pub(crate) fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            _ => return None,
        })
    }

    /// The name ListTransactions and DescribeTransactions report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
        }
    }

    pub(crate) const ALL: [TxnState; 7] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
    ];

    fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// An offset a transaction commits for a consumer group when it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnOffset {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
}

/// Everything the coordinator keeps (and persists) for one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMeta {
    pub(crate) transactional_id: String,
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    /// The epoch before the last fencing bump (timeout abort), so the producer that was
    /// fenced by a timeout can still abort and re-initialise (KIP-360); -1 if none. Not
    /// persisted, as in Kafka.
    pub(crate) last_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) state: TxnState,
    /// Partitions the open (or ending) transaction has written or may write.
    pub(crate) partitions: BTreeSet<(String, i32)>,
    /// Consumer groups added with AddOffsetsToTxn.
    pub(crate) groups: BTreeSet<String>,
    /// Offsets sent with TxnOffsetCommit: committed to their groups if the transaction
    /// commits, dropped if it aborts. Persisted with the state so a crash loses none.
    pub(crate) offsets: Vec<TxnOffset>,
    /// When the open transaction started (first partition or group added); -1 if none.
    pub(crate) start_ms: i64,
    pub(crate) updated_ms: i64,
}

/// What EndTxn must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The transaction already ended this way (a retried EndTxn): answer success.
    AlreadyDone,
    /// Persist this Prepare* state (unless it already is the state), write the markers,
    /// then complete.
    Complete(TxnMeta),
}

fn fenced(tid: &str, got: i16, current: i16) -> BrokerError {
    BrokerError::ProducerFenced(format!(
        "producer epoch {got} of transactional id '{tid}' is fenced: epoch {current} is current (another producer with the same transactional.id took over, or the transaction timed out)"
    ))
}

impl TxnMeta {
    /// A new transactional id's state, with a fresh producer id.
    pub(crate) fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        TxnMeta {
            transactional_id: transactional_id.to_string(),
            producer_id,
            epoch: 0,
            last_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: Vec::new(),
            start_ms: -1,
            updated_ms: now,
        }
    }

    /// Checks that a request comes from the current producer of this transactional id.
    pub(crate) fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), BrokerError> {
        if self.state == TxnState::Dead || producer_id != self.producer_id {
            return Err(BrokerError::InvalidProducerIdMapping(format!(
                "producer id {producer_id} is not the producer id of transactional id '{}'; call InitProducerId first",
                self.transactional_id
            )));
        }
        if epoch != self.epoch {
            return Err(fenced(&self.transactional_id, epoch, self.epoch));
        }
        Ok(())
    }

    /// InitProducerId on an existing id: may this producer (re)initialise? A request without
    /// producer id and epoch always may (it fences whoever holds the id); one with them
    /// (KIP-360) must name the current epoch, or the one a timeout fenced.
    pub(crate) fn check_init(&self, producer_id: i64, epoch: i16) -> Result<(), BrokerError> {
        if producer_id < 0 && epoch < 0 {
            return Ok(());
        }
        let known = producer_id == self.producer_id
            && (epoch == self.epoch || (self.last_epoch >= 0 && epoch == self.last_epoch));
        if known {
            Ok(())
        } else {
            Err(fenced(&self.transactional_id, epoch, self.epoch))
        }
    }

    /// Whether the epoch cannot be bumped any more, so re-initialising needs a new
    /// producer id.
    pub(crate) fn epoch_exhausted(&self) -> bool {
        self.epoch >= i16::MAX - 1
    }

    /// The state after InitProducerId once no transaction is open: the next epoch (fencing
    /// every older one), or epoch 0 of `fresh_producer_id` when the epoch is exhausted.
    pub(crate) fn reinit(&self, timeout_ms: i32, now: i64, fresh_producer_id: Option<i64>) -> Self {
        let mut next = self.clone();
        match fresh_producer_id {
            Some(pid) => {
                next.producer_id = pid;
                next.epoch = 0;
            }
            None => next.epoch = self.epoch.saturating_add(1),
        }
        next.last_epoch = -1;
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.groups.clear();
        next.offsets.clear();
        next.start_ms = -1;
        next.updated_ms = now;
        next
    }

    /// AddPartitionsToTxn (`partitions`) or AddOffsetsToTxn (`group`): the next state, or
    /// `None` if everything is already in the ongoing transaction.
    pub(crate) fn add(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        group: Option<&str>,
        now: i64,
    ) -> Result<Option<Self>, BrokerError> {
        self.check_producer(producer_id, epoch)?;
        if self.state.is_prepare() {
            return Err(BrokerError::ConcurrentTransactions(format!(
                "the previous transaction of '{}' is still completing; retry",
                self.transactional_id
            )));
        }
        let ongoing = self.state == TxnState::Ongoing;
        if ongoing
            && partitions.iter().all(|p| self.partitions.contains(p))
            && group.is_none_or(|g| self.groups.contains(g))
        {
            return Ok(None);
        }
        let mut next = self.clone();
        if !ongoing {
            next.start_ms = now;
            next.partitions.clear();
            next.groups.clear();
            next.offsets.clear();
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            next.groups.insert(g.to_string());
        }
        next.updated_ms = now;
        Ok(Some(next))
    }

    /// TxnOffsetCommit: the next state holding `offsets` for `group` (replacing earlier
    /// offsets of the same partitions).
    pub(crate) fn add_offsets(
        &self,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<TxnOffset>,
        now: i64,
    ) -> Result<Self, BrokerError> {
        self.check_producer(producer_id, epoch)?;
        if self.state != TxnState::Ongoing || !self.groups.contains(group) {
            return Err(BrokerError::InvalidTxnState(format!(
                "group '{group}' is not part of an ongoing transaction of '{}'; call AddOffsetsToTxn first",
                self.transactional_id
            )));
        }
        let mut next = self.clone();
        for o in offsets {
            next.offsets.retain(|x| {
                !(x.group == o.group && x.topic == o.topic && x.partition == o.partition)
            });
            next.offsets.push(o);
        }
        next.updated_ms = now;
        Ok(next)
    }

    /// EndTxn.
    pub(crate) fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now: i64,
    ) -> Result<End, BrokerError> {
        // The producer a timeout fenced may still abort: its transaction is aborted already.
        if !commit
            && producer_id == self.producer_id
            && self.last_epoch >= 0
            && epoch == self.last_epoch
            && self.state == TxnState::CompleteAbort
        {
            return Ok(End::AlreadyDone);
        }
        self.check_producer(producer_id, epoch)?;
        let wrong = |what: &str| {
            Err(BrokerError::InvalidTxnState(format!(
                "cannot {} the transaction of '{}': {what}",
                if commit { "commit" } else { "abort" },
                self.transactional_id
            )))
        };
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                if !commit {
                    next.offsets.clear();
                }
                next.updated_ms = now;
                Ok(End::Complete(next))
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Ok(End::Complete(self.clone()))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(End::AlreadyDone)
            }
            (TxnState::Empty, _) => wrong("no transaction is ongoing"),
            (TxnState::PrepareCommit | TxnState::CompleteCommit, false) => {
                wrong("it is being committed or was committed")
            }
            (TxnState::PrepareAbort | TxnState::CompleteAbort, true) => {
                wrong("it is being aborted or was aborted")
            }
            (TxnState::Dead, _) => wrong("the transactional id has expired"),
        }
    }

    /// Fencing abort of an ongoing transaction (timeout, or a new producer initialising):
    /// PrepareAbort at a bumped epoch, so the markers and every later request fence the old
    /// producer. `None` if no transaction is ongoing.
    pub(crate) fn fence(&self, now: i64) -> Option<Self> {
        if self.state != TxnState::Ongoing {
            return None;
        }
        let mut next = self.clone();
        if !self.epoch_exhausted() {
            next.last_epoch = self.epoch;
            next.epoch = self.epoch + 1;
        }
        next.state = TxnState::PrepareAbort;
        next.offsets.clear();
        next.updated_ms = now;
        Some(next)
    }

    /// The state once every marker of a Prepare* state is written (and, for a commit, the
    /// offsets are committed).
    pub(crate) fn completed(&self, now: i64) -> Self {
        let mut next = self.clone();
        next.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => other,
        };
        next.partitions.clear();
        next.groups.clear();
        next.offsets.clear();
        next.start_ms = -1;
        next.updated_ms = now;
        next
    }

    /// Whether the ongoing transaction has outlived its timeout.
    pub(crate) fn timed_out(&self, now: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && now.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// Whether producers may write to the partitions now.
    pub(crate) fn is_open(&self) -> bool {
        self.state == TxnState::Ongoing
    }

    pub(crate) fn is_prepare(&self) -> bool {
        self.state.is_prepare()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str, i: i32) -> (String, i32) {
        (t.to_string(), i)
    }

    fn code(e: BrokerError) -> kafka_protocol::error::ResponseError {
        e.kafka()
    }

    use kafka_protocol::error::ResponseError as R;

    #[test]
    fn commit_cycle() {
        let m = TxnMeta::new("tx", 7, 60_000, 100);
        assert_eq!((m.state, m.epoch), (TxnState::Empty, 0));
        // EndTxn with nothing ongoing is INVALID_TXN_STATE.
        assert_eq!(
            code(m.end(7, 0, true, 101).expect_err("refused")),
            R::InvalidTxnState
        );
        let m = m
            .add(7, 0, &[p("a", 0), p("a", 1)], None, 110)
            .expect("add")
            .expect("changed");
        assert_eq!((m.state, m.start_ms), (TxnState::Ongoing, 110));
        // Adding what is already there changes nothing (no write needed).
        assert_eq!(m.add(7, 0, &[p("a", 1)], None, 111).expect("add"), None);
        let m = m
            .add(7, 0, &[], Some("g"), 112)
            .expect("add")
            .expect("changed");
        assert_eq!(m.start_ms, 110, "the start time is the first add's");
        let off = TxnOffset {
            group: "g".into(),
            topic: "in".into(),
            partition: 0,
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
        };
        let m = m
            .add_offsets(7, 0, "g", vec![off.clone()], 113)
            .expect("offsets");
        let m = m
            .add_offsets(
                7,
                0,
                "g",
                vec![TxnOffset {
                    offset: 9,
                    ..off.clone()
                }],
                114,
            )
            .expect("offsets");
        assert_eq!(
            m.offsets.len(),
            1,
            "a later offset replaces the earlier one"
        );
        assert_eq!(m.offsets[0].offset, 9);
        // Offsets for a group not added with AddOffsetsToTxn are refused.
        assert_eq!(
            code(
                m.add_offsets(7, 0, "other", vec![off], 115)
                    .expect_err("refused")
            ),
            R::InvalidTxnState
        );
        let End::Complete(prep) = m.end(7, 0, true, 120).expect("end") else {
            panic!("expected completion");
        };
        assert_eq!(prep.state, TxnState::PrepareCommit);
        assert_eq!(
            prep.offsets.len(),
            1,
            "offsets are committed with the transaction"
        );
        // While preparing: adds must wait, the same EndTxn resumes, the opposite one fails.
        assert_eq!(
            code(
                prep.add(7, 0, &[p("a", 2)], None, 121)
                    .expect_err("refused")
            ),
            R::ConcurrentTransactions
        );
        assert_eq!(
            prep.end(7, 0, true, 121).expect("retry"),
            End::Complete(prep.clone())
        );
        assert_eq!(
            code(prep.end(7, 0, false, 121).expect_err("refused")),
            R::InvalidTxnState
        );
        let done = prep.completed(130);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty() && done.offsets.is_empty() && done.start_ms == -1);
        assert_eq!(done.end(7, 0, true, 131).expect("retry"), End::AlreadyDone);
        assert_eq!(
            code(done.end(7, 0, false, 131).expect_err("refused")),
            R::InvalidTxnState
        );
        // The next transaction starts afresh from a completed one.
        let next = done
            .add(7, 0, &[p("b", 0)], None, 140)
            .expect("add")
            .expect("changed");
        assert_eq!(next.partitions.len(), 1);
        assert_eq!(next.start_ms, 140);
    }

    #[test]
    fn abort_drops_offsets() {
        let m = TxnMeta::new("tx", 7, 60_000, 0)
            .add(7, 0, &[], Some("g"), 1)
            .expect("add")
            .expect("changed");
        let m = m
            .add_offsets(
                7,
                0,
                "g",
                vec![TxnOffset {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 0,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: String::new(),
                }],
                2,
            )
            .expect("offsets");
        let End::Complete(prep) = m.end(7, 0, false, 3).expect("end") else {
            panic!("expected completion");
        };
        assert_eq!(prep.state, TxnState::PrepareAbort);
        assert!(prep.offsets.is_empty());
        assert_eq!(prep.completed(4).state, TxnState::CompleteAbort);
    }

    #[test]
    fn fencing_by_epoch() {
        let m = TxnMeta::new("tx", 7, 60_000, 0)
            .add(7, 0, &[p("a", 0)], None, 1)
            .expect("add")
            .expect("changed");
        // Wrong producer id / old epoch.
        assert_eq!(
            code(m.add(8, 0, &[p("a", 1)], None, 2).expect_err("refused")),
            R::InvalidProducerIdMapping
        );
        // A second producer initialising: fence the ongoing transaction, then bump again.
        assert!(m.check_init(-1, -1).is_ok());
        let aborting = m.fence(3).expect("ongoing");
        assert_eq!(
            (aborting.state, aborting.epoch, aborting.last_epoch),
            (TxnState::PrepareAbort, 1, 0)
        );
        let aborted = aborting.completed(4);
        let fresh = aborted.reinit(30_000, 5, None);
        assert_eq!(
            (fresh.state, fresh.epoch, fresh.timeout_ms),
            (TxnState::Empty, 2, 30_000)
        );
        // The first producer is fenced everywhere.
        assert_eq!(
            code(fresh.add(7, 0, &[p("a", 0)], None, 6).expect_err("refused")),
            R::ProducerFenced
        );
        assert_eq!(
            code(fresh.end(7, 0, true, 6).expect_err("refused")),
            R::ProducerFenced
        );
        assert_eq!(
            code(fresh.check_init(7, 0).expect_err("refused")),
            R::ProducerFenced
        );
        assert!(fresh.check_init(7, 2).is_ok());
        // Nothing ongoing: nothing to fence.
        assert_eq!(fresh.fence(7), None);
    }

    #[test]
    fn timeout_abort_lets_the_fenced_producer_abort_and_reinit() {
        let mut m = TxnMeta::new("tx", 7, 1_000, 0);
        m.epoch = 3;
        let m = m
            .add(7, 3, &[p("a", 0)], None, 10)
            .expect("add")
            .expect("changed");
        assert!(!m.timed_out(1_010));
        assert!(m.timed_out(1_011));
        let aborted = m.fence(1_011).expect("ongoing").completed(1_012);
        assert_eq!((aborted.epoch, aborted.last_epoch), (4, 3));
        // The fenced producer's own abort is answered as done; its commit is fenced.
        assert_eq!(
            aborted.end(7, 3, false, 1_013).expect("abort"),
            End::AlreadyDone
        );
        assert_eq!(
            code(aborted.end(7, 3, true, 1_013).expect_err("refused")),
            R::ProducerFenced
        );
        // KIP-360: it may re-initialise naming its old epoch.
        assert!(aborted.check_init(7, 3).is_ok());
        assert_eq!(aborted.reinit(1_000, 1_014, None).epoch, 5);
    }

    #[test]
    fn exhausted_epoch_moves_to_a_new_producer_id() {
        let mut m = TxnMeta::new("tx", 7, 1_000, 0);
        m.epoch = i16::MAX - 1;
        assert!(m.epoch_exhausted());
        let n = m.reinit(1_000, 1, Some(8));
        assert_eq!((n.producer_id, n.epoch), (8, 0));
    }

    #[test]
    fn state_ids_round_trip() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
        }
        assert_eq!(TxnState::from_id(42), None);
    }
}

//! The classic group membership protocol as a state machine, free of I/O: the handlers
//! feed it requests and the clock, it answers at once or hands back a receiver that the
//! rebalance completes later. Kafka's semantics throughout: MEMBER_ID_REQUIRED on first
//! join (KIP-394), an initial rebalance delay for empty groups, rebalance and session
//! timeouts, static membership (KIP-345), and the error codes clients recover from.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::records::{GroupValue, MemberValue};

/// Coordinator-wide settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub(crate) initial_rebalance_delay: Duration,
    pub(crate) min_session_timeout: Duration,
    pub(crate) max_session_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup gets back.
#[derive(Debug, Clone, Default)]
pub(crate) struct JoinResult {
    pub(crate) error: i16,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// Filled for the leader only: (member id, instance id, metadata for the chosen protocol).
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    fn error(code: i16, member_id: &str) -> Self {
        JoinResult {
            error: code,
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup gets back.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncResult {
    pub(crate) error: i16,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncResult {
    fn error(code: i16) -> Self {
        SyncResult {
            error: code,
            ..Default::default()
        }
    }
}

/// Either an answer now, or one the coordinator delivers when the rebalance moves on.
#[derive(Debug)]
pub(crate) enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A JoinGroup request, reduced to what the state machine needs.
#[derive(Debug, Clone)]
pub(crate) struct JoinRequest {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ clients expect MEMBER_ID_REQUIRED on their first join.
    pub(crate) require_known_member_id: bool,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    /// Session expiry; pushed forward by every join, sync, heartbeat and commit.
    deadline: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// Has (re)joined in the current PreparingRebalance round.
    joined: bool,
    /// Has sent SyncGroup in the current CompletingRebalance round.
    synced: bool,
}

impl Member {
    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with their expiry.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    initial_delay_until: Option<Instant>,
    sync_deadline: Option<Instant>,
    /// Set when a rebalance completed or the group emptied: the group metadata to persist.
    pub(crate) dirty: bool,
    /// Wall-clock ms when the group last became Empty (offset expiry counts from it).
    pub(crate) empty_since_ms: i64,
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

impl Group {
    pub(crate) fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            sync_deadline: None,
            dirty: false,
            empty_since_ms: now_ms,
        }
    }

    /// Rebuilds a group from its persisted metadata. Members get a fresh session so they
    /// can reconnect after a broker restart without a rebalance.
    pub(crate) fn restore(id: &str, v: &GroupValue, now: Instant, now_ms: i64) -> Group {
        let mut g = Group::new(id, now_ms);
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type.clone()).filter(|s| !s.is_empty());
        g.protocol = v.protocol.clone();
        g.leader = v.leader.clone();
        for m in &v.members {
            let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            let protocols = match &v.protocol {
                Some(p) => vec![(p.clone(), m.subscription.clone())],
                None => Vec::new(),
            };
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols,
                    assignment: m.assignment.clone(),
                    deadline: now + session,
                    join_waiter: None,
                    sync_waiter: None,
                    joined: false,
                    synced: true,
                },
            );
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g.empty_since_ms = v.state_timestamp;
        g
    }

    /// The group as persisted.
    pub(crate) fn snapshot(&self, now_ms: i64) -> GroupValue {
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: now_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: self
                        .protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    fn static_member(&self, instance: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
            .map(|m| m.id.clone())
    }

    /// Protocols every member (plus a candidate's list) supports, most-preferred first.
    fn supports(&self, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Each member votes for its most preferred protocol among those all support.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let mut votes: IndexMap<&String, usize> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.get_mut(n) {
                    *v += 1;
                }
            }
        }
        // Highest vote wins; ties go to the first member's earlier preference.
        let mut best: Option<(&String, usize)> = None;
        for (n, v) in votes {
            if best.map(|(_, bv)| v > bv).unwrap_or(true) {
                best = Some((n, v));
            }
        }
        best.map(|(n, _)| n.clone())
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    /// Starts (or continues) a rebalance.
    fn prepare_rebalance(&mut self, now: Instant, settings: &GroupSettings) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for the leader's assignment must rejoin.
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResult::error(code(ResponseError::RebalanceInProgress)));
                }
            }
        }
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        for m in self.members.values_mut() {
            m.joined = false;
            m.synced = false;
        }
        let timeout = self.max_rebalance_timeout();
        self.rebalance_deadline = Some(now + timeout);
        self.initial_delay_until = if was_empty && !settings.initial_rebalance_delay.is_zero() {
            Some(now + settings.initial_rebalance_delay.min(timeout))
        } else {
            None
        };
        tracing::debug!(group = %self.id, "preparing rebalance");
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.joined)
    }

    /// Completes the join phase: new generation, protocol, leader; answers every waiter.
    fn complete_join(&mut self, now: Instant, now_ms: i64) {
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.joined)
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.empty_since_ms = now_ms;
            self.dirty = true;
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .map(|l| !self.members.contains_key(l))
            .unwrap_or(true)
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.deadline = now + m.session_timeout;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error: 0,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(),
            protocol = %protocol, leader = %leader, "rebalance: join phase complete");
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.shift_remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(code(ResponseError::UnknownMemberId), id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(code(ResponseError::UnknownMemberId)));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    fn maybe_complete_join(&mut self, now: Instant, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delayed = self.initial_delay_until.map(|t| now < t).unwrap_or(false);
        let timed_out = self.rebalance_deadline.map(|t| now >= t).unwrap_or(false);
        if (self.all_joined() && !delayed) || timed_out {
            self.complete_join(now, now_ms);
        }
    }

    /// A member leaves or is expelled; the group rebalances without it.
    fn member_gone(&mut self, id: &str, now: Instant, now_ms: i64, settings: &GroupSettings) {
        self.remove_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, settings);
                self.initial_delay_until = None;
                self.maybe_complete_join(now, now_ms);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, now_ms),
            GroupState::Empty => {}
        }
        if self.members.is_empty() && self.state == GroupState::PreparingRebalance {
            self.complete_join(now, now_ms);
        }
    }

    pub(crate) fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) -> Answer<JoinResult> {
        if req.session_timeout < settings.min_session_timeout
            || req.session_timeout > settings.max_session_timeout
        {
            return Answer::Now(JoinResult::error(
                code(ResponseError::InvalidSessionTimeout),
                &req.member_id,
            ));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Answer::Now(JoinResult::error(
                code(ResponseError::InconsistentGroupProtocol),
                &req.member_id,
            ));
        }
        let compatible = self.members.is_empty()
            || (self.protocol_type.as_deref() == Some(req.protocol_type.as_str())
                && self.supports(&req.protocols));
        if !compatible {
            return Answer::Now(JoinResult::error(
                code(ResponseError::InconsistentGroupProtocol),
                &req.member_id,
            ));
        }

        let member_id = if req.member_id.is_empty() {
            let new_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            match &req.instance_id {
                Some(instance) => {
                    if let Some(old) = self.static_member(instance) {
                        return self.rejoin_static(old, new_id, req, now, now_ms, settings);
                    }
                    new_id
                }
                None if req.require_known_member_id => {
                    self.pending
                        .insert(new_id.clone(), now + req.session_timeout);
                    return Answer::Now(JoinResult::error(
                        code(ResponseError::MemberIdRequired),
                        &new_id,
                    ));
                }
                None => new_id,
            }
        } else {
            let known = self.members.contains_key(&req.member_id);
            if !known && self.pending.remove(&req.member_id).is_none() {
                return Answer::Now(JoinResult::error(
                    code(ResponseError::UnknownMemberId),
                    &req.member_id,
                ));
            }
            if let Some(instance) = &req.instance_id {
                if let Some(owner) = self.static_member(instance) {
                    if owner != req.member_id {
                        return Answer::Now(JoinResult::error(
                            code(ResponseError::FencedInstanceId),
                            &req.member_id,
                        ));
                    }
                }
            }
            req.member_id.clone()
        };

        if let Some(m) = self.members.get(&member_id) {
            // A known member rejoining. In Stable/CompletingRebalance with unchanged
            // metadata a follower just gets the current generation back.
            let same = m.protocols == req.protocols;
            let is_leader = self.leader.as_deref() == Some(member_id.as_str());
            let quiet = match self.state {
                GroupState::CompletingRebalance => same,
                GroupState::Stable => same && !is_leader,
                _ => false,
            };
            if quiet {
                let protocol = self.protocol.clone().unwrap_or_default();
                let members = if is_leader {
                    self.members
                        .values()
                        .map(|m| {
                            (
                                m.id.clone(),
                                m.instance_id.clone(),
                                m.metadata_for(&protocol),
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.deadline = now + m.session_timeout;
                }
                return Answer::Now(JoinResult {
                    error: 0,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    leader: self.leader.clone().unwrap_or_default(),
                    member_id,
                    members,
                });
            }
        }

        let (tx, rx) = oneshot::channel();
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                id: member_id.clone(),
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                deadline: now,
                join_waiter: None,
                sync_waiter: None,
                joined: false,
                synced: false,
            });
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.deadline = now + req.session_timeout;
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinResult::error(
                code(ResponseError::RebalanceInProgress),
                &member_id,
            ));
        }
        if self.protocol_type.is_none() {
            self.protocol_type = Some(req.protocol_type);
        }
        self.prepare_rebalance(now, settings);
        if let Some(m) = self.members.get_mut(&member_id) {
            m.joined = true;
        }
        self.maybe_complete_join(now, now_ms);
        Answer::Later(rx)
    }

    /// A static member restarted with a new member id: replace the old id, keep its
    /// assignment, and avoid a rebalance when nothing changed (KIP-345).
    fn rejoin_static(
        &mut self,
        old_id: String,
        new_id: String,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) -> Answer<JoinResult> {
        let Some(mut m) = self.members.shift_remove(&old_id) else {
            return Answer::Now(JoinResult::error(code(ResponseError::UnknownMemberId), ""));
        };
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResult::error(
                code(ResponseError::FencedInstanceId),
                &old_id,
            ));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResult::error(code(ResponseError::FencedInstanceId)));
        }
        let same = m.protocols == req.protocols;
        m.id = new_id.clone();
        m.deadline = now + req.session_timeout;
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), m);
        if self.state == GroupState::Stable && same && !was_leader {
            tracing::info!(group = %self.id, instance = ?req.instance_id, "static member rejoined without a rebalance");
            self.dirty = true;
            return Answer::Now(JoinResult {
                error: 0,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol: self.protocol.clone(),
                leader: self.leader.clone().unwrap_or_default(),
                member_id: new_id,
                members: Vec::new(),
            });
        }
        let r = JoinRequest {
            member_id: new_id,
            instance_id: req.instance_id.clone(),
            ..req
        };
        self.join(r, now, now_ms, settings)
    }

    /// Checks that `member_id` (or its static identity) may act in `generation`.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            if let Some(owner) = self.static_member(instance) {
                if owner != member_id {
                    return Err(code(ResponseError::FencedInstanceId));
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(code(ResponseError::UnknownMemberId));
        }
        if generation != self.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Answer<SyncResult> {
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            return Answer::Now(SyncResult::error(e));
        }
        if protocol_type.is_some_and(|p| Some(p) != self.protocol_type.as_deref())
            || protocol.is_some_and(|p| Some(p) != self.protocol.as_deref())
        {
            return Answer::Now(SyncResult::error(code(
                ResponseError::InconsistentGroupProtocol,
            )));
        }
        let ok = |g: &Group, assignment: Bytes| SyncResult {
            error: 0,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            assignment,
        };
        match self.state {
            GroupState::Empty => {
                Answer::Now(SyncResult::error(code(ResponseError::UnknownMemberId)))
            }
            GroupState::PreparingRebalance => {
                Answer::Now(SyncResult::error(code(ResponseError::RebalanceInProgress)))
            }
            GroupState::Stable => {
                let a = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.deadline = now + m.session_timeout;
                }
                Answer::Now(ok(self, a))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.deadline = now + m.session_timeout;
                    m.synced = true;
                    if let Some(old) = m.sync_waiter.replace(tx) {
                        let _ =
                            old.send(SyncResult::error(code(ResponseError::RebalanceInProgress)));
                    }
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    self.sync_deadline = None;
                    self.dirty = true;
                    let pt = self.protocol_type.clone();
                    let pn = self.protocol.clone();
                    for m in self.members.values_mut() {
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncResult {
                                error: 0,
                                protocol_type: pt.clone(),
                                protocol: pn.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    tracing::info!(group = %self.id, generation = self.generation, "rebalance complete: group is stable");
                }
                Answer::Later(rx)
            }
        }
    }

    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Empty {
            return code(ResponseError::UnknownMemberId);
        }
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            return e;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.deadline = now + m.session_timeout;
        }
        match self.state {
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            _ => 0,
        }
    }

    /// Removes members; returns a per-member error code.
    pub(crate) fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) -> Vec<i16> {
        leaving
            .iter()
            .map(|(member_id, instance)| {
                let id = match instance {
                    Some(i) => match self.static_member(i) {
                        Some(owner) if member_id.is_empty() || *member_id == owner => owner,
                        Some(_) => return code(ResponseError::FencedInstanceId),
                        None => return code(ResponseError::UnknownMemberId),
                    },
                    None => member_id.clone(),
                };
                if self.pending.remove(&id).is_some() {
                    return 0;
                }
                if !self.members.contains_key(&id) {
                    return code(ResponseError::UnknownMemberId);
                }
                tracing::info!(group = %self.id, member = %id, "member left the group");
                self.member_gone(&id, now, now_ms, settings);
                0
            })
            .collect()
    }

    /// Validates an offset commit from a group member (generation >= 0) or a simple
    /// consumer (generation -1, empty member id).
    pub(crate) fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if generation < 0 && member_id.is_empty() {
            return if self.state == GroupState::Empty {
                0
            } else {
                code(ResponseError::UnknownMemberId)
            };
        }
        if self.state == GroupState::Empty {
            return code(ResponseError::UnknownMemberId);
        }
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            return e;
        }
        if self.state == GroupState::CompletingRebalance {
            return code(ResponseError::RebalanceInProgress);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.deadline = now + m.session_timeout;
        }
        0
    }

    /// Advances timers: initial delay, rebalance timeout, sync timeout, session expiry.
    pub(crate) fn tick(&mut self, now: Instant, now_ms: i64, settings: &GroupSettings) {
        self.pending.retain(|_, t| *t > now);
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now, now_ms),
            GroupState::CompletingRebalance
                if self.sync_deadline.map(|t| now >= t).unwrap_or(false) =>
            {
                {
                    let lazy: Vec<String> = self
                        .members
                        .values()
                        .filter(|m| !m.synced)
                        .map(|m| m.id.clone())
                        .collect();
                    tracing::warn!(group = %self.id, members = ?lazy, "members did not sync in time; rebalancing without them");
                    for id in lazy {
                        self.remove_member(&id);
                    }
                    self.prepare_rebalance(now, settings);
                    self.initial_delay_until = None;
                    for m in self.members.values_mut() {
                        // Members that synced are waiting: they must rejoin too.
                        m.joined = false;
                    }
                    self.maybe_complete_join(now, now_ms);
                }
            }
            _ => {}
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.deadline <= now && m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.member_gone(&id, now, now_ms, settings);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GroupSettings {
        GroupSettings {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout: Duration::from_millis(10),
            max_session_timeout: Duration::from_secs(600),
        }
    }

    fn req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member.into(),
            instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    fn now_result<T: std::fmt::Debug>(a: Answer<T>) -> T {
        match a {
            Answer::Now(t) => t,
            Answer::Later(mut rx) => rx.try_recv().expect("answered"),
        }
    }

    /// Joins a new member through MEMBER_ID_REQUIRED; returns its id and the join answer.
    fn join_new(g: &mut Group, now: Instant) -> (String, Answer<JoinResult>) {
        let s = settings();
        let first = now_result(g.join(req("", None), now, 0, &s));
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        let id = first.member_id.clone();
        let a = g.join(req(&id, None), now, 0, &s);
        (id, a)
    }

    #[test]
    fn single_member_lifecycle() {
        let s = settings();
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (id, a) = join_new(&mut g, now);
        let j = now_result(a);
        assert_eq!(j.error, 0);
        assert_eq!(j.generation, 1);
        assert_eq!(j.leader, id);
        assert_eq!(j.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let sr = now_result(g.sync(
            &id,
            None,
            1,
            None,
            None,
            vec![(id.clone(), Bytes::from_static(b"A"))],
            now,
        ));
        assert_eq!(sr.error, 0);
        assert_eq!(&sr.assignment[..], b"A");
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&id, None, 1, now), 0);
        assert_eq!(
            g.heartbeat(&id, None, 0, now),
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            g.heartbeat("nope", None, 1, now),
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(g.leave(&[(id.clone(), None)], now, 0, &s), vec![0]);
        assert_eq!(g.state, GroupState::Empty);
        let _ = s;
    }

    #[test]
    fn second_member_triggers_rebalance_and_both_get_assignments() {
        let s = settings();
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, ja) = join_new(&mut g, now);
        now_result(ja);
        now_result(g.sync(
            &a,
            None,
            1,
            None,
            None,
            vec![(a.clone(), Bytes::from_static(b"all"))],
            now,
        ));
        // b joins: a must learn of the rebalance from its heartbeat and rejoin.
        let (b, jb) = join_new(&mut g, now);
        let Answer::Later(mut rb) = jb else {
            panic!("b should wait")
        };
        assert_eq!(
            g.heartbeat(&a, None, 1, now),
            ResponseError::RebalanceInProgress.code()
        );
        let ja2 = now_result(g.join(req(&a, None), now, 0, &s));
        let jb2 = rb.try_recv().expect("b answered");
        assert_eq!(ja2.generation, 2);
        assert_eq!(jb2.generation, 2);
        assert_eq!(ja2.leader, a);
        assert_eq!(ja2.members.len(), 2);
        assert!(jb2.members.is_empty());
        let Answer::Later(mut sb) = g.sync(&b, None, 2, None, None, vec![], now) else {
            panic!("follower waits for the leader")
        };
        let sa = now_result(g.sync(
            &a,
            None,
            2,
            None,
            None,
            vec![
                (a.clone(), Bytes::from_static(b"p0")),
                (b.clone(), Bytes::from_static(b"p1")),
            ],
            now,
        ));
        assert_eq!(&sa.assignment[..], b"p0");
        assert_eq!(&sb.try_recv().expect("b synced").assignment[..], b"p1");
    }

    #[test]
    fn session_expiry_removes_member_and_rebalances() {
        let s = settings();
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, ja) = join_new(&mut g, now);
        now_result(ja);
        now_result(g.sync(&a, None, 1, None, None, vec![], now));
        let (b, jb) = join_new(&mut g, now);
        let Answer::Later(mut rb) = jb else { panic!() };
        // a never rejoins: after the rebalance timeout b is alone in generation 2.
        g.tick(now + Duration::from_secs(11), 0, &s);
        let j = rb.try_recv().expect("b answered");
        assert_eq!(j.generation, 2);
        assert_eq!(j.leader, b);
        assert!(!g.members.contains_key(&a));
    }

    #[test]
    fn static_member_rejoins_without_rebalance() {
        let s = settings();
        let now = Instant::now();
        // A static member's first join needs no MEMBER_ID_REQUIRED round trip.
        let mut g = Group::new("g", 0);
        let a = now_result(g.join(req("", Some("ia")), now, 0, &s));
        assert_eq!(a.error, 0, "static members skip MEMBER_ID_REQUIRED");
        // The leader is an ordinary member, the follower "f" is static: restarting "f"
        // must not rebalance.
        let mut g2 = Group::new("g2", 0);
        let (lead, jl) = join_new(&mut g2, now);
        let _ = now_result(jl);
        let Answer::Later(mut rf) = g2.join(req("", Some("f")), now, 0, &s) else {
            panic!()
        };
        assert_eq!(
            g2.heartbeat(&lead, None, 1, now),
            ResponseError::RebalanceInProgress.code()
        );
        let jl2 = now_result(g2.join(req(&lead, None), now, 0, &s));
        let jf = rf.try_recv().expect("f joined");
        now_result(g2.sync(
            &lead,
            None,
            jl2.generation,
            None,
            None,
            vec![
                (lead.clone(), Bytes::from_static(b"L")),
                (jf.member_id.clone(), Bytes::from_static(b"F")),
            ],
            now,
        ));
        let gen = g2.generation;
        // The follower restarts with a new (empty) member id and the same instance id.
        let again = now_result(g2.join(req("", Some("f")), now, 0, &s));
        assert_eq!(again.error, 0);
        assert_eq!(again.generation, gen, "no new generation");
        assert_ne!(again.member_id, jf.member_id);
        let sf = now_result(g2.sync(&again.member_id, Some("f"), gen, None, None, vec![], now));
        assert_eq!(&sf.assignment[..], b"F");
        // The old member id is fenced.
        assert_eq!(
            g2.heartbeat(&jf.member_id, Some("f"), gen, now),
            ResponseError::FencedInstanceId.code()
        );
    }

    #[test]
    fn inconsistent_protocols_rejected() {
        let s = settings();
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (_a, ja) = join_new(&mut g, now);
        now_result(ja);
        let mut r = req("", None);
        r.protocols = vec![("roundrobin".into(), Bytes::new())];
        let j = now_result(g.join(r, now, 0, &s));
        assert_eq!(j.error, ResponseError::InconsistentGroupProtocol.code());
    }
}

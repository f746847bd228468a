//! A wire-only group coordinator: Kafka's classic protocol, where the
//! server collects the members' metadata, picks a leader, and hands out the
//! assignment that the leader computed (client-side assignors). Members of
//! these groups are clients over the wire only; mixing them with in-process
//! `Consumer`s of the same group is a later step.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::api::{
    ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, MEMBER_ID_REQUIRED, NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub joined: bool,
    pub last_seen: Instant,
}

#[derive(Debug)]
pub(crate) struct Group {
    pub state: State,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// When the current rebalance stops waiting for members to rejoin.
    rebalance_deadline: Option<Instant>,
    next_member: u64,
}

impl Group {
    fn new() -> Group {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline: None,
            next_member: 0,
        }
    }

    fn start_rebalance(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            self.state = State::PreparingRebalance;
            for m in self.members.values_mut() {
                m.joined = false;
            }
            let wait = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
            self.rebalance_deadline = Some(now + wait);
        }
    }

    /// Ends the join phase once every member rejoined or the deadline
    /// passed: those that did not rejoin are dropped.
    fn maybe_complete_join(&mut self, now: Instant) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all = self.members.values().all(|m| m.joined);
        if !all && self.rebalance_deadline.is_some_and(|d| now < d) {
            return false;
        }
        self.members.retain(|_, m| m.joined);
        self.generation += 1;
        self.rebalance_deadline = None;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            return true;
        }
        // The first protocol of the leader's list that every member supports.
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = &self.members[self.leader.as_ref().expect("set above")];
        self.protocol = leader
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .find(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == n)));
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.state = State::CompletingRebalance;
        true
    }

    fn remove_member(&mut self, id: &str, now: Instant) {
        if self.members.remove(id).is_some() {
            if self.members.is_empty() {
                self.state = State::Empty;
                self.generation += 1;
                self.leader = None;
                self.protocol = None;
            } else {
                self.start_rebalance(now);
                self.maybe_complete_join(now);
            }
        }
    }
}

/// What JoinGroup answers.
pub(crate) struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member's metadata, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

pub(crate) struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets its id with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

#[derive(Default)]
pub(crate) struct Groups {
    groups: Mutex<BTreeMap<String, Group>>,
    changed: Condvar,
}

impl Groups {
    pub fn wake_all(&self) {
        self.changed.notify_all();
    }

    pub fn with_group<R>(&self, id: &str, f: impl FnOnce(Option<&Group>) -> R) -> R {
        f(self.groups.lock().get(id))
    }

    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        self.groups.lock().iter().map(|(id, g)| (id.clone(), g.protocol_type.clone(), g.state.name())).collect()
    }

    /// Whether `member` of `generation` may commit offsets for `group`.
    pub fn check_commit(&self, group: &str, member: &str, generation: i32) -> i16 {
        if generation < 0 {
            return NONE; // A commit outside any group generation.
        }
        let groups = self.groups.lock();
        let Some(g) = groups.get(group) else { return NONE };
        if !g.members.contains_key(member) {
            return UNKNOWN_MEMBER_ID;
        }
        if g.generation != generation {
            return ILLEGAL_GENERATION;
        }
        if g.state == State::PreparingRebalance {
            return REBALANCE_IN_PROGRESS;
        }
        NONE
    }

    pub fn join(&self, req: JoinRequest, stopping: &dyn Fn() -> bool) -> JoinResult {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let g = groups.entry(req.group.clone()).or_insert_with(Group::new);
        let fail = |error: i16, member_id: String| JoinResult {
            error,
            generation: -1,
            protocol_type: String::new(),
            protocol: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
        };
        if !g.members.is_empty() && g.protocol_type != req.protocol_type {
            return fail(INCONSISTENT_GROUP_PROTOCOL, req.member_id);
        }
        if !g.members.is_empty()
            && !req.protocols.iter().any(|(p, _)| g.members.values().all(|m| m.protocols.iter().any(|(q, _)| q == p)))
        {
            return fail(INCONSISTENT_GROUP_PROTOCOL, req.member_id);
        }
        // A static member coming back takes over its old id.
        let static_id = req
            .instance_id
            .as_ref()
            .and_then(|i| g.members.values().find(|m| m.instance_id.as_ref() == Some(i)).map(|m| m.id.clone()));
        let member_id = if let Some(id) = static_id {
            id
        } else if req.member_id.is_empty() {
            g.next_member += 1;
            let id = format!("{}-{}-{}", req.client_id, g.generation, g.next_member);
            if req.require_known_member_id && req.instance_id.is_none() {
                return fail(MEMBER_ID_REQUIRED, id);
            }
            id
        } else {
            req.member_id.clone()
        };
        g.protocol_type = req.protocol_type.clone();
        let known = g.members.contains_key(&member_id);
        let unchanged = known && g.members[&member_id].protocols == req.protocols;
        let member = g.members.entry(member_id.clone()).or_insert_with(|| Member {
            id: member_id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: Vec::new(),
            assignment: Bytes::new(),
            joined: false,
            last_seen: now,
        });
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.last_seen = now;
        // A follower rejoining a stable group with the same metadata gets
        // the current generation again; the leader rejoining (it saw the
        // metadata change) starts a rebalance, as in Kafka.
        if unchanged && g.state == State::Stable && g.leader.as_deref() != Some(member_id.as_str()) {
            let leader = g.leader.clone().unwrap_or_default();
            let members = if leader == member_id { members_of(g) } else { Vec::new() };
            return JoinResult {
                error: NONE,
                generation: g.generation,
                protocol_type: g.protocol_type.clone(),
                protocol: g.protocol.clone(),
                leader,
                member_id,
                members,
            };
        }
        g.start_rebalance(now);
        if let Some(m) = g.members.get_mut(&member_id) {
            m.joined = true;
        }
        g.maybe_complete_join(now);
        self.changed.notify_all();
        // Wait for the join phase to end.
        loop {
            let g = groups.get_mut(&req.group).expect("groups are never removed while joined");
            match g.state {
                State::PreparingRebalance if !stopping() => {
                    let deadline = g.rebalance_deadline.unwrap_or(now).min(Instant::now() + Duration::from_millis(100));
                    self.changed.wait_until(&mut groups, deadline);
                    let g = groups.get_mut(&req.group).expect("groups are never removed");
                    if g.maybe_complete_join(Instant::now()) {
                        self.changed.notify_all();
                    }
                }
                _ => break,
            }
        }
        let g = groups.get_mut(&req.group).expect("groups are never removed");
        if !g.members.contains_key(&member_id) || g.state == State::PreparingRebalance {
            return JoinResult {
                error: if stopping() { REBALANCE_IN_PROGRESS } else { UNKNOWN_MEMBER_ID },
                generation: -1,
                protocol_type: String::new(),
                protocol: None,
                leader: String::new(),
                member_id,
                members: Vec::new(),
            };
        }
        let leader = g.leader.clone().unwrap_or_default();
        let members = if leader == member_id { members_of(g) } else { Vec::new() };
        JoinResult {
            error: NONE,
            generation: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            leader,
            member_id,
            members,
        }
    }

    /// SyncGroup: the leader hands in the assignment; every member waits
    /// for it and gets its own part.
    pub fn sync(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        stopping: &dyn Fn() -> bool,
    ) -> (i16, Bytes, Option<String>, String) {
        let mut groups = self.groups.lock();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let Some(g) = groups.get_mut(group) else { return (UNKNOWN_MEMBER_ID, Bytes::new(), None, String::new()) };
            let Some(m) = g.members.get_mut(member_id) else {
                return (UNKNOWN_MEMBER_ID, Bytes::new(), None, String::new());
            };
            m.last_seen = Instant::now();
            if g.generation != generation {
                return (ILLEGAL_GENERATION, Bytes::new(), None, String::new());
            }
            match g.state {
                State::PreparingRebalance => return (REBALANCE_IN_PROGRESS, Bytes::new(), None, String::new()),
                State::Stable | State::Empty => {
                    let a = g.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                    return (NONE, a, g.protocol.clone(), g.protocol_type.clone());
                }
                State::CompletingRebalance => {
                    if g.leader.as_deref() == Some(member_id) {
                        for (id, a) in &assignments {
                            if let Some(m) = g.members.get_mut(id) {
                                m.assignment = a.clone();
                            }
                        }
                        g.state = State::Stable;
                        self.changed.notify_all();
                        continue;
                    }
                    if stopping() || Instant::now() >= deadline {
                        return (REBALANCE_IN_PROGRESS, Bytes::new(), None, String::new());
                    }
                    self.changed.wait_for(&mut groups, Duration::from_millis(100));
                }
            }
        }
    }

    pub fn heartbeat(&self, group: &str, member_id: &str, generation: i32) -> i16 {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else { return UNKNOWN_MEMBER_ID };
        let Some(m) = g.members.get_mut(member_id) else { return UNKNOWN_MEMBER_ID };
        m.last_seen = Instant::now();
        if g.state == State::PreparingRebalance {
            return REBALANCE_IN_PROGRESS;
        }
        if g.generation != generation {
            return ILLEGAL_GENERATION;
        }
        NONE
    }

    /// LeaveGroup of members by id (or by static instance id).
    pub fn leave(&self, group: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else { return vec![UNKNOWN_MEMBER_ID; members.len()] };
        let out = members
            .iter()
            .map(|(id, instance)| {
                let id = match instance {
                    Some(i) if id.is_empty() => g
                        .members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(i))
                        .map(|m| m.id.clone())
                        .unwrap_or_default(),
                    _ => id.clone(),
                };
                if g.members.contains_key(&id) {
                    g.remove_member(&id, now);
                    NONE
                } else {
                    UNKNOWN_MEMBER_ID
                }
            })
            .collect();
        self.changed.notify_all();
        out
    }

    /// Drops members whose session timed out (no heartbeat, join or sync).
    pub fn expire_sessions(&self) {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let mut changed = false;
        for g in groups.values_mut() {
            let expired: Vec<String> = g
                .members
                .values()
                // A member waiting in JoinGroup is alive.
                .filter(|m| !(g.state == State::PreparingRebalance && m.joined))
                .filter(|m| now.duration_since(m.last_seen) > m.session_timeout)
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                g.remove_member(&id, now);
                changed = true;
            }
            if g.maybe_complete_join(now) {
                changed = true;
            }
        }
        if changed {
            self.changed.notify_all();
        }
    }
}

fn members_of(g: &Group) -> Vec<(String, Option<String>, Bytes)> {
    let protocol = g.protocol.clone().unwrap_or_default();
    g.members
        .values()
        .map(|m| {
            let meta = m.protocols.iter().find(|(p, _)| *p == protocol).map(|(_, b)| b.clone()).unwrap_or_default();
            (m.id.clone(), m.instance_id.clone(), meta)
        })
        .collect()
}

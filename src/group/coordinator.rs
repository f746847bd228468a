//! The group coordinator: members, generations, assignments, and who holds
//! which partition at every moment.
//!
//! A change of membership or subscriptions does not reassign at once: the
//! group enters `PreparingRebalance`, each member's next poll is its rejoin
//! (it reports its subscription; what it owns is in `owners`), and the
//! group assigns once, when every member has rejoined or the rebalance
//! timeout expires (then those that did not rejoin are removed), as Kafka's
//! `GroupCoordinator` does. Members keep their partitions meanwhile; a
//! partition still moves only once its holder released it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::group::offsets::OffsetStore;
use crate::group::{Assignor, GroupState, MemberSubscription, TopicPartition, TopicView};
use crate::log::notify::{Waiter, Wakes};
use crate::log::partition::Partition;

/// What a member learns when it syncs with its group.
#[derive(Debug, Clone)]
pub(crate) struct SyncState {
    pub generation: u32,
    /// Whether the group's assignor revokes only what moves.
    pub cooperative: bool,
    /// Partitions the member should hold in this generation.
    pub target: Vec<TopicPartition>,
    /// Broker-clock time at which the group may change without any member
    /// acting (a rebalance delay or timeout, a static member's session
    /// running out): a waiting member looks again by then.
    pub wake_at_ms: Option<i64>,
}

/// A member joining a group.
pub(crate) struct Join {
    pub member_id: String,
    /// A static member's identity (KIP-345).
    pub group_instance_id: Option<String>,
    pub topics: BTreeSet<String>,
    /// Used if the group is empty; the first member decides.
    pub assignor: Assignor,
    pub max_poll_interval_ms: i64,
    /// How long a rebalance waits for the members to rejoin.
    pub rebalance_timeout_ms: i64,
    /// How long a static member that closed keeps its place.
    pub session_timeout_ms: i64,
    pub now_ms: i64,
    /// Woken when the group rebalances or a partition is released.
    pub waiter: Arc<Waiter>,
    /// A member outside this process (a Kafka client over the wire): it is
    /// alive while it sends requests (`max_poll_interval_ms` is then its
    /// session timeout), and its explicit leave removes it, static or not.
    pub remote: bool,
}

/// Where a remote member's join stands.
pub(crate) enum RemoteJoinState {
    /// The group is still collecting its members: wait and look again.
    Pending,
    /// The join phase is over: this generation, with the group's assignor.
    Joined { generation: u32, assignor: Assignor, members: Vec<String> },
}

/// What a remote member gets from SyncGroup.
pub(crate) struct RemoteSync {
    /// Its target partitions that it holds now: its assignment.
    pub assignment: Vec<TopicPartition>,
    /// Some of its target is held by a member that has yet to release it.
    pub incomplete: bool,
    /// It still holds partitions outside its target (a cooperative client
    /// revokes them after this answer and rejoins): it must not wait for
    /// others, who may be waiting for those.
    pub holds_others: bool,
}

struct Member {
    instance_id: Option<String>,
    topics: BTreeSet<String>,
    target: Vec<TopicPartition>,
    /// Inside `poll` now, which returns by this time at the latest: alive
    /// until then (plus `max_poll_interval`), however long it waits, and
    /// no longer even if it never leaves (a panic inside poll).
    in_poll_until_ms: Option<i64>,
    /// When the member last left `poll` (or joined).
    last_poll_ms: i64,
    max_poll_interval_ms: i64,
    rebalance_timeout_ms: i64,
    session_timeout_ms: i64,
    /// A static member whose consumer closed at this time: it keeps its
    /// place and its assignment for `session_timeout_ms`.
    departed_ms: Option<i64>,
    /// Rejoined in the current `PreparingRebalance`.
    rejoined: bool,
    /// The generation this member last synced with.
    synced: u32,
    waiter: Arc<Waiter>,
    remote: bool,
}

impl Member {
    /// When it is removed unless it acts.
    fn expires_at(&self) -> i64 {
        match self.departed_ms {
            Some(d) => d.saturating_add(self.session_timeout_ms),
            None => {
                let alive_from = self.in_poll_until_ms.map_or(self.last_poll_ms, |d| d.max(self.last_poll_ms));
                alive_from.saturating_add(self.max_poll_interval_ms)
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stable,
    /// Collecting the members: assign once all rejoined and `not_before_ms`
    /// passed (the initial delay), or at `deadline_ms` whoever rejoined.
    Preparing {
        not_before_ms: i64,
        deadline_ms: i64,
        initial: bool,
    },
}

struct GroupInner {
    /// The group's id, for the events it reports.
    id: Arc<str>,
    generation: u32,
    assignor: Assignor,
    phase: Phase,
    members: BTreeMap<String, Member>,
    /// Who holds each partition now. A partition is handed to its new
    /// member only once the old one released it: one owner at a time.
    owners: BTreeMap<TopicPartition, String>,
    /// Partition counts the current assignment was computed with.
    counts: BTreeMap<String, u32>,
    /// The broker's topics epoch when `counts` was read: until it moves,
    /// the counts cannot have changed.
    counts_epoch: u64,
    /// Its last member left and [`Coordinator::leave`] took it out of the
    /// registry: a join that looked it up before must look again, or it
    /// would join a group no later member finds (two groups of one id,
    /// each owning every partition).
    removed: bool,
    /// Members' waiters to wake once the lock is released: a waiter may
    /// wrap a task's `Waker`, and an executor may poll the task inside
    /// `wake`; the task (a consumer's `recv`) then calls back into the
    /// group, and would deadlock on a lock still held (not reentrant).
    wakes: Wakes,
}

/// Adds every member's waiter to `wakes`.
fn add_members(wakes: &mut Wakes, members: &BTreeMap<String, Member>) {
    for m in members.values() {
        wakes.add(&m.waiter);
    }
}

/// A group's state, locked. Dropped, it releases the lock, then wakes the
/// waiters collected meanwhile: fields drop in declaration order, `state`
/// (the lock) before `wakes`, and the `Drop` below moves them there first.
/// A caller that holds another lock around it takes the wakes with
/// [`Locked::unlock`] and drops them after that lock.
struct Locked<'a> {
    state: MutexGuard<'a, GroupInner>,
    wakes: Wakes,
}

impl Locked<'_> {
    /// Releases the lock; the waiters to wake are returned, not woken.
    fn unlock(mut self) -> Wakes {
        std::mem::take(&mut self.state.wakes)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.wakes = std::mem::take(&mut self.state.wakes);
    }
}

impl Deref for Locked<'_> {
    type Target = GroupInner;
    fn deref(&self) -> &GroupInner {
        &self.state
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut GroupInner {
        &mut self.state
    }
}

/// A group as `describe` sees it.
pub(crate) struct GroupSnapshot {
    pub state: GroupState,
    pub generation: u32,
    pub assignor: Assignor,
    /// Member id, instance id, partitions held.
    pub members: Vec<(String, Option<String>, Vec<TopicPartition>)>,
}

/// A consumer group's membership and assignment.
pub(crate) struct Group {
    pub id: String,
    state: Mutex<GroupInner>,
}

/// The broker's registry of groups and their committed offsets.
pub(crate) struct Coordinator {
    topics: Weak<dyn TopicView>,
    groups: Mutex<BTreeMap<String, Arc<Group>>>,
    next_member: Mutex<u64>,
    /// Kafka's `group.initial.rebalance.delay.ms`.
    initial_delay_ms: i64,
    pub offsets: OffsetStore,
    /// Rebalances of every group since open, for `Broker::stats`.
    pub rebalances: std::sync::atomic::AtomicU64,
}

impl Coordinator {
    /// Loads the committed offsets; those of topics that no longer exist (a
    /// delete that crashed before forgetting them) are forgotten now.
    pub fn new(
        view: Weak<dyn TopicView>,
        offsets_log: Option<Arc<Partition>>,
        create_offsets_log: crate::group::offsets::CreateLog,
        topics: &BTreeSet<String>,
        initial_delay_ms: i64,
        now_ms: i64,
    ) -> Result<Coordinator> {
        let offsets = OffsetStore::load(offsets_log, create_offsets_log)?;
        for t in offsets.topics().difference(topics) {
            offsets.forget_topic(t, now_ms)?;
        }
        Ok(Coordinator {
            topics: view,
            groups: Mutex::new(BTreeMap::new()),
            next_member: Mutex::new(0),
            initial_delay_ms,
            offsets,
            rebalances: Default::default(),
        })
    }

    /// The group `id`, made if need be. Private: a joiner goes through
    /// [`Coordinator::join`], which deals with a group leaving the registry
    /// under it.
    fn group(&self, id: &str) -> Arc<Group> {
        let mut groups = self.groups.lock();
        Arc::clone(groups.entry(id.to_owned()).or_insert_with(|| {
            Arc::new(Group {
                id: id.to_owned(),
                state: Mutex::new(GroupInner {
                    id: Arc::from(id),
                    generation: 0,
                    assignor: Assignor::default(),
                    phase: Phase::Stable,
                    members: BTreeMap::new(),
                    owners: BTreeMap::new(),
                    counts: BTreeMap::new(),
                    counts_epoch: 0,
                    removed: false,
                    wakes: Wakes::default(),
                }),
            })
        }))
    }

    /// Adds a member to group `id` (made if need be) and returns the group;
    /// see [`Group::join`]. A join does not hold the registry's lock
    /// (waking the members under it could deadlock), so the group it looked
    /// up may have gone from the registry meanwhile: then it looks again.
    pub fn join(&self, id: &str, join: Join) -> Result<Arc<Group>> {
        loop {
            let group = self.group(id);
            #[cfg(test)]
            tests::after_group_lookup();
            {
                let mut st = group.lock();
                if st.removed {
                    continue;
                }
                group.join(&mut st, self, join)?;
            }
            return Ok(group);
        }
    }

    pub fn existing_group(&self, id: &str) -> Option<Arc<Group>> {
        self.groups.lock().get(id).cloned()
    }

    /// Ids of groups with members or committed offsets.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: BTreeSet<String> = self.groups.lock().keys().cloned().collect();
        ids.extend(self.offsets.groups());
        ids.into_iter().collect()
    }

    /// Forgets the groups whose members all expired (a Kafka client's
    /// session ended without a LeaveGroup) and that nobody holds: they
    /// stayed in the map for the broker's life, one per group id ever used.
    /// Their committed offsets stay. Returns how many went.
    pub fn forget_idle_groups(&self, now_ms: i64) -> usize {
        let mut groups = self.groups.lock();
        let before = groups.len();
        // Only looks (no rebalance computed under the registry's lock, and
        // so nobody to wake under it: the bare state lock, not `lock()`):
        // a group goes when nobody holds it and every member has expired.
        groups.retain(|_, g| {
            Arc::strong_count(g) > 1 || g.state.lock().members.values().any(|m| now_ms <= m.expires_at())
        });
        before - groups.len()
    }

    /// A member leaves `group`; an empty group is forgotten (its committed
    /// offsets stay). A static member keeps its place for its session
    /// timeout instead.
    pub fn leave(&self, group: &Arc<Group>, member_id: &str, now_ms: i64) {
        let mut groups = self.groups.lock();
        let (empty, wakes) = group.leave(self, member_id, now_ms);
        if empty && groups.get(&group.id).is_some_and(|g| Arc::ptr_eq(g, group)) {
            groups.remove(&group.id);
        }
        // The members learn of the leave once the registry is unlocked too.
        drop(groups);
        drop(wakes);
    }

    /// Runs `f` while `group_id` has no members, and no member can join
    /// until it returns; [`Error::GroupNotEmpty`] otherwise. Commits from
    /// outside the group (resets, deletes) go through here, as Kafka accepts
    /// them only for an empty group.
    pub fn with_empty_group<T>(&self, group_id: &str, now_ms: i64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let groups = self.groups.lock();
        let Some(g) = groups.get(group_id) else { return f() };
        let mut st = g.lock();
        Group::tick(&mut st, self, now_ms);
        let result = if st.members.is_empty() { f() } else { Err(Error::GroupNotEmpty { group: group_id.to_owned() }) };
        // Members that the expiry of others woke learn of it once the
        // registry is unlocked too.
        let wakes = st.unlock();
        drop(groups);
        drop(wakes);
        result
    }

    pub fn new_member_id(&self, client_id: &str) -> String {
        let mut n = self.next_member.lock();
        *n += 1;
        format!("{client_id}-{:08}", *n)
    }

    fn topics_epoch(&self) -> u64 {
        self.topics.upgrade().map_or(0, |t| t.topics_epoch())
    }

    /// Partition counts of `topics` that exist now.
    fn counts(&self, topics: impl Iterator<Item = String>) -> BTreeMap<String, u32> {
        let Some(view) = self.topics.upgrade() else { return BTreeMap::new() };
        topics.filter_map(|t| view.partition_count(&t).map(|n| (t, n))).collect()
    }
}

impl Group {
    /// Locks the group's state; the members' waiters that a change wakes
    /// are woken once it is unlocked (see [`Wakes`]).
    fn lock(&self) -> Locked<'_> {
        Locked { state: self.state.lock(), wakes: Wakes::default() }
    }

    /// Adds a member (under the lock that [`Coordinator::join`] took); the
    /// group rebalances once the others rejoined. A static member that
    /// closed within its session timeout takes its place back, with its
    /// assignment and without a rebalance; one whose instance id a live
    /// member holds is refused with [`Error::FencedInstanceId`]. A remote
    /// join with the member id of an in-process member is refused with
    /// [`Error::UnknownMember`]: it would take that member's place.
    fn join(&self, st: &mut GroupInner, coordinator: &Coordinator, join: Join) -> Result<()> {
        let now = join.now_ms;
        Self::tick(st, coordinator, now);
        if join.remote && st.members.get(&join.member_id).is_some_and(|m| !m.remote) {
            return Err(Error::UnknownMember { group: self.id.clone(), member_id: join.member_id });
        }
        let same_instance = join.group_instance_id.as_ref().and_then(|iid| {
            st.members.iter().find(|(_, m)| m.instance_id.as_ref() == Some(iid)).map(|(id, _)| id.clone())
        });
        if let Some(old_id) = same_instance.as_ref().filter(|id| join.remote && st.members[*id].remote) {
            // A restarted Kafka client with the same instance id: the old
            // incarnation is fenced (removed, its partitions released).
            let old_id = old_id.clone();
            st.members.remove(&old_id);
            Self::release_all(st, &old_id);
            Self::begin_rebalance(st, coordinator, now, false);
        } else if let Some(old_id) = same_instance {
            if st.members[&old_id].departed_ms.is_none() {
                return Err(Error::FencedInstanceId {
                    group: self.id.clone(),
                    instance_id: join.group_instance_id.unwrap_or_default(),
                });
            }
            let mut m = st.members.remove(&old_id).expect("found above");
            let resubscribed = m.topics != join.topics;
            m.topics = join.topics;
            m.departed_ms = None;
            m.in_poll_until_ms = None;
            m.last_poll_ms = now;
            m.max_poll_interval_ms = join.max_poll_interval_ms;
            m.rebalance_timeout_ms = join.rebalance_timeout_ms;
            m.session_timeout_ms = join.session_timeout_ms;
            m.synced = 0;
            m.waiter = join.waiter;
            // Who comes back may be the other kind (a Kafka client with the
            // instance id of an in-process consumer): its requests follow it.
            m.remote = join.remote;
            st.members.insert(join.member_id.clone(), m);
            if resubscribed {
                Self::begin_rebalance(st, coordinator, now, false);
            }
            Self::rejoined(st, &join.member_id);
            Self::try_complete(st, coordinator, now);
            return Ok(());
        }
        let first = st.members.is_empty();
        if first {
            st.assignor = join.assignor;
            st.phase = Phase::Stable;
        }
        let member = Member {
            instance_id: join.group_instance_id,
            topics: join.topics,
            target: Vec::new(),
            in_poll_until_ms: None,
            last_poll_ms: now,
            max_poll_interval_ms: join.max_poll_interval_ms,
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            session_timeout_ms: join.session_timeout_ms,
            departed_ms: None,
            rejoined: false,
            synced: 0,
            waiter: join.waiter,
            remote: join.remote,
        };
        st.members.insert(join.member_id.clone(), member);
        Self::begin_rebalance(st, coordinator, now, true);
        Self::rejoined(st, &join.member_id);
        Self::try_complete(st, coordinator, now);
        Ok(())
    }

    /// Removes a member, releases what it held, and starts a rebalance; a
    /// static member only departs (it keeps its place for its session
    /// timeout). Returns whether the group is now empty, and the members
    /// to wake (after the caller's lock).
    fn leave(&self, coordinator: &Coordinator, member_id: &str, now_ms: i64) -> (bool, Wakes) {
        let mut st = self.lock();
        if let Some(m) = st.members.get_mut(member_id) {
            if m.instance_id.is_some() && !m.remote {
                m.departed_ms = Some(now_ms);
                m.in_poll_until_ms = None;
            } else {
                st.members.remove(member_id);
            }
            Self::release_all(&mut st, member_id);
            if !st.members.contains_key(member_id) {
                Self::begin_rebalance(&mut st, coordinator, now_ms, false);
            }
            Self::try_complete(&mut st, coordinator, now_ms);
        }
        let empty = st.members.is_empty();
        // Marked under the group's lock, before the caller takes it out of
        // the registry: a join that looked it up meanwhile sees the mark.
        st.removed |= empty;
        (empty, st.unlock())
    }

    /// Records a poll: evicts expired members, notices subscription and
    /// partition count changes, counts the poll as this member's rejoin if
    /// the group is collecting its members, and returns this member's
    /// generation and target, or `None` if it is no longer a member.
    /// `topics_epoch` is the broker's, loaded by the caller.
    pub fn sync(
        &self,
        coordinator: &Coordinator,
        member_id: &str,
        topics: &BTreeSet<String>,
        topics_epoch: u64,
        now_ms: i64,
    ) -> Option<SyncState> {
        let mut st = self.lock();
        Self::tick(&mut st, coordinator, now_ms);
        let member = st.members.get_mut(member_id)?;
        let mut changed = false;
        if member.topics != *topics {
            member.topics = topics.clone();
            changed = true;
        }
        if !changed && st.phase == Phase::Stable && topics_epoch != st.counts_epoch {
            // Topics changed somewhere: did the partition counts we use?
            let epoch = coordinator.topics_epoch();
            changed = coordinator.counts(Self::all_topics(&st).into_iter()) != st.counts;
            st.counts_epoch = epoch;
        }
        if changed {
            Self::begin_rebalance(&mut st, coordinator, now_ms, false);
        }
        Self::rejoined(&mut st, member_id);
        Self::try_complete(&mut st, coordinator, now_ms);
        let wake_at_ms = Self::next_event(&st);
        let (generation, cooperative) = (st.generation, st.assignor.is_cooperative());
        let member = st.members.get_mut(member_id)?;
        member.synced = generation;
        Some(SyncState { generation, cooperative, target: member.target.clone(), wake_at_ms })
    }

    /// Replaces the waiter woken for this member on rebalances.
    pub fn set_waiter(&self, member_id: &str, waiter: &Arc<Waiter>) {
        if let Some(m) = self.lock().members.get_mut(member_id) {
            m.waiter = Arc::clone(waiter);
        }
    }

    /// Removes expired members (past their poll deadline, or static ones
    /// departed longer than their session timeout), starting a rebalance
    /// if any went, and completes a rebalance that is due.
    fn tick(st: &mut GroupInner, coordinator: &Coordinator, now_ms: i64) {
        let expired: Vec<String> =
            st.members.iter().filter(|(_, m)| now_ms > m.expires_at()).map(|(id, _)| id.clone()).collect();
        for id in &expired {
            st.members.remove(id);
            Self::release_all(st, id);
        }
        if !expired.is_empty() {
            Self::begin_rebalance(st, coordinator, now_ms, false);
        }
        Self::try_complete(st, coordinator, now_ms);
    }

    /// Enters `PreparingRebalance` (if not there already): every member must
    /// rejoin. A join into an empty group waits the initial delay, which
    /// each further join extends (up to the rebalance timeout), as Kafka's
    /// `group.initial.rebalance.delay.ms`.
    fn begin_rebalance(st: &mut GroupInner, coordinator: &Coordinator, now_ms: i64, by_join: bool) {
        let delay = coordinator.initial_delay_ms;
        match &mut st.phase {
            Phase::Preparing { not_before_ms, deadline_ms, initial: true } if by_join => {
                *not_before_ms = now_ms.saturating_add(delay).min(*deadline_ms);
            }
            Phase::Preparing { .. } => {}
            Phase::Stable => {
                // A group of one member that just joined: the initial delay.
                let initial = by_join && st.members.len() == 1;
                let timeout = st.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
                let not_before_ms = if initial { now_ms.saturating_add(delay) } else { now_ms };
                let deadline_ms = now_ms.saturating_add(timeout).max(not_before_ms);
                st.phase = Phase::Preparing { not_before_ms, deadline_ms, initial };
                for m in st.members.values_mut() {
                    m.rejoined = false;
                    // Its next poll is its rejoin: a parked one looks now.
                    st.wakes.add(&m.waiter);
                }
            }
        }
    }

    fn rejoined(st: &mut GroupInner, member_id: &str) {
        if matches!(st.phase, Phase::Preparing { .. })
            && let Some(m) = st.members.get_mut(member_id)
        {
            m.rejoined = true;
        }
    }

    /// Assigns if every member rejoined (and the initial delay passed), or
    /// the rebalance timeout expired: then members that did not rejoin are
    /// removed first.
    fn try_complete(st: &mut GroupInner, coordinator: &Coordinator, now_ms: i64) {
        let Phase::Preparing { not_before_ms, deadline_ms, .. } = st.phase else { return };
        let all = st.members.values().all(|m| m.rejoined);
        if now_ms < deadline_ms && !(all && now_ms >= not_before_ms) {
            return;
        }
        let late: Vec<String> = st.members.iter().filter(|(_, m)| !m.rejoined).map(|(id, _)| id.clone()).collect();
        for id in &late {
            st.members.remove(id);
            Self::release_all(st, id);
        }
        st.phase = Phase::Stable;
        if !st.members.is_empty() {
            Self::assign(st, coordinator);
        }
    }

    /// When the group may next change by time alone.
    fn next_event(st: &GroupInner) -> Option<i64> {
        let rebalance = match st.phase {
            Phase::Preparing { not_before_ms, deadline_ms, .. } => {
                Some(if st.members.values().all(|m| m.rejoined) { not_before_ms } else { deadline_ms })
            }
            Phase::Stable => None,
        };
        // Any member past its poll deadline (a remote one past its session,
        // a departed static member past its session) is removed then:
        // whoever waits, a pending async recv included, looks again.
        let expiring =
            st.members.values().map(|m| m.expires_at()).filter(|&t| t < i64::MAX).map(|t| t.saturating_add(1));
        rebalance.into_iter().chain(expiring).min()
    }

    fn release_all(st: &mut GroupInner, member_id: &str) {
        Self::release_unless(st, member_id, &[]);
    }

    /// A member enters a `poll` that returns by `until_ms`. If it missed
    /// its deadline since the last one, it is removed (and learns so from
    /// `sync`).
    pub fn enter_poll(&self, coordinator: &Coordinator, member_id: &str, now_ms: i64, until_ms: i64) {
        let mut st = self.lock();
        Self::tick(&mut st, coordinator, now_ms);
        if let Some(m) = st.members.get_mut(member_id) {
            m.in_poll_until_ms = Some(until_ms);
        }
    }

    /// A member leaves `poll`: its `max_poll_interval` starts now.
    pub fn exit_poll(&self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.lock().members.get_mut(member_id) {
            m.in_poll_until_ms = None;
            m.last_poll_ms = now_ms;
        }
    }

    /// Takes `tp` for `member_id` if nobody else holds it.
    pub fn acquire(&self, member_id: &str, tp: &TopicPartition) -> bool {
        let mut st = self.lock();
        if !st.members.contains_key(member_id) {
            return false;
        }
        match st.owners.get(tp) {
            Some(owner) => owner == member_id,
            None => {
                st.owners.insert(tp.clone(), member_id.to_owned());
                true
            }
        }
    }

    /// Gives `tp` up and wakes the other members, one of which may be
    /// waiting for it. Not the releasing member: it is in its poll, and a
    /// wake of its own would end the wait that follows at once.
    pub fn release(&self, member_id: &str, tp: &TopicPartition) {
        let mut st = self.lock();
        if st.owners.get(tp).is_some_and(|o| o == member_id) {
            st.owners.remove(tp);
            let st = &mut *st;
            for (id, m) in &st.members {
                if id != member_id {
                    st.wakes.add(&m.waiter);
                }
            }
        }
    }

    /// Commits for a member, fenced: it must still be in the group and hold
    /// every partition it commits. A member that a rebalance has moved on
    /// from (removed, or whose partitions went to others) is rejected with
    /// [`Error::StaleGeneration`]; one that still holds its partitions may
    /// commit them, as in Kafka before it rejoins. The check and the write
    /// happen under the group's lock.
    pub fn commit_fenced(
        &self,
        member_id: &str,
        generation: u32,
        offsets: &[(TopicPartition, u64, &str)],
        logs: &[Arc<Partition>],
        store: &OffsetStore,
        now_ms: i64,
    ) -> Result<()> {
        let st = self.lock();
        let stale = !st.members.contains_key(member_id)
            || offsets.iter().any(|(tp, _, _)| st.owners.get(tp).is_none_or(|o| o != member_id));
        if stale {
            return Err(Error::StaleGeneration {
                group: self.id.clone(),
                member_generation: generation,
                group_generation: st.generation,
            });
        }
        store.commit_with_metadata(&self.id, offsets, logs, now_ms)
    }

    fn all_topics(st: &GroupInner) -> BTreeSet<String> {
        st.members.values().flat_map(|m| m.topics.iter().cloned()).collect()
    }

    /// A new generation: the assignor's answer becomes every member's target.
    fn assign(st: &mut GroupInner, coordinator: &Coordinator) {
        st.generation += 1;
        // Relaxed: a statistic.
        coordinator.rebalances.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The epoch first: a change racing with the lookup moves it again.
        st.counts_epoch = coordinator.topics_epoch();
        st.counts = coordinator.counts(Self::all_topics(st).into_iter());
        let subs: Vec<MemberSubscription> = st
            .members
            .iter()
            .map(|(id, m)| {
                // What it holds, and what of its target nobody holds (it has
                // not polled since, e.g. a static member that came back):
                // the sticky assignor keeps both where they are.
                let mut owned: Vec<TopicPartition> =
                    st.owners.iter().filter(|(_, o)| *o == id).map(|(tp, _)| tp.clone()).collect();
                owned.extend(m.target.iter().filter(|tp| !st.owners.contains_key(*tp)).cloned());
                MemberSubscription {
                    member_id: id.clone(),
                    topics: m.topics.clone(),
                    owned,
                    group_instance_id: m.instance_id.clone(),
                }
            })
            .collect();
        let mut assignment = st.assignor.assign(&subs, &st.counts);
        let mut moved = 0;
        for (id, m) in st.members.iter_mut() {
            m.target = assignment.remove(id).unwrap_or_default();
            moved += m.target.iter().filter(|tp| st.owners.get(*tp) != Some(id)).count();
            m.rejoined = false;
            st.wakes.add(&m.waiter);
        }
        tracing::info!(
            group = %st.id,
            generation = st.generation,
            members = st.members.len(),
            partitions = st.members.values().map(|m| m.target.len()).sum::<usize>(),
            partitions_moved = moved,
            "group rebalanced"
        );
    }

    /// A remote member (re)joins: a known one updates its subscription and
    /// timeouts and releases what it no longer holds (`owned` is what the
    /// client says it still holds: nothing for an eager client, which
    /// revoked everything before rejoining), then counts as rejoined. A
    /// rejoin into a stable group whose subscription did not change keeps
    /// the current generation. `false` if `member_id` is not a remote
    /// member of the group (a new member joins through [`Group::join`]).
    pub fn remote_rejoin(
        &self,
        coordinator: &Coordinator,
        member_id: &str,
        topics: BTreeSet<String>,
        owned: &[TopicPartition],
        timeouts: (i64, i64),
        now_ms: i64,
    ) -> bool {
        let mut st = self.lock();
        Self::tick(&mut st, coordinator, now_ms);
        let Some(m) = st.members.get_mut(member_id).filter(|m| m.remote) else { return false };
        let changed = m.topics != topics;
        m.topics = topics;
        (m.max_poll_interval_ms, m.rebalance_timeout_ms) = timeouts;
        m.last_poll_ms = now_ms;
        Self::release_unless(&mut st, member_id, owned);
        if changed {
            Self::begin_rebalance(&mut st, coordinator, now_ms, false);
        }
        Self::rejoined(&mut st, member_id);
        Self::try_complete(&mut st, coordinator, now_ms);
        true
    }

    /// Releases what `member_id` holds but `keep`.
    fn release_unless(st: &mut GroupInner, member_id: &str, keep: &[TopicPartition]) {
        let before = st.owners.len();
        st.owners.retain(|tp, owner| owner != member_id || keep.contains(tp));
        if st.owners.len() != before {
            add_members(&mut st.wakes, &st.members);
        }
    }

    /// Where `member_id`'s join stands; `None` if it is no longer a member
    /// (removed: it missed the rebalance deadline). It counts as alive
    /// until `until_ms` (it waits in its JoinGroup); `waiter` is woken when
    /// the group moves on.
    pub fn remote_join_state(
        &self,
        coordinator: &Coordinator,
        member_id: &str,
        waiter: &Arc<Waiter>,
        now_ms: i64,
        until_ms: i64,
    ) -> (Option<RemoteJoinState>, Option<i64>) {
        let mut st = self.lock();
        Self::tick(&mut st, coordinator, now_ms);
        let wake_at = Self::next_event(&st);
        let preparing = matches!(st.phase, Phase::Preparing { .. });
        let (generation, assignor) = (st.generation, st.assignor);
        let members: Vec<String> = st.members.keys().cloned().collect();
        let Some(m) = st.members.get_mut(member_id) else { return (None, wake_at) };
        m.waiter = Arc::clone(waiter);
        m.last_poll_ms = m.last_poll_ms.max(now_ms);
        if preparing {
            m.in_poll_until_ms = Some(until_ms);
            return (Some(RemoteJoinState::Pending), wake_at);
        }
        m.in_poll_until_ms = None;
        (Some(RemoteJoinState::Joined { generation, assignor, members }), wake_at)
    }

    /// SyncGroup of a remote member: takes what is free of its target and
    /// reports its assignment (what it holds of its target).
    pub fn remote_sync(
        &self,
        coordinator: &Coordinator,
        member_id: &str,
        generation: u32,
        waiter: &Arc<Waiter>,
        now_ms: i64,
        until_ms: Option<i64>,
    ) -> Result<(RemoteSync, Option<i64>)> {
        let mut st = self.lock();
        Self::tick(&mut st, coordinator, now_ms);
        let wake_at = Self::next_event(&st);
        self.check_remote(&st, member_id, generation)?;
        let st = &mut *st;
        let m = st.members.get_mut(member_id).expect("checked");
        m.last_poll_ms = m.last_poll_ms.max(now_ms);
        m.in_poll_until_ms = until_ms;
        m.waiter = Arc::clone(waiter);
        m.synced = generation;
        let mut incomplete = false;
        let mut assignment = Vec::new();
        for tp in &m.target {
            match st.owners.get(tp) {
                Some(o) if o != member_id => incomplete = true,
                Some(_) => assignment.push(tp.clone()),
                None => {
                    st.owners.insert(tp.clone(), member_id.to_owned());
                    assignment.push(tp.clone());
                }
            }
        }
        let holds_others = st.owners.iter().any(|(tp, o)| o == member_id && !m.target.contains(tp));
        Ok((RemoteSync { assignment, incomplete, holds_others }, wake_at))
    }

    /// The checks of Kafka's group requests: a known remote member, no
    /// rebalance under way, the current generation.
    fn check_remote(&self, st: &GroupInner, member_id: &str, generation: u32) -> Result<()> {
        if !st.members.get(member_id).is_some_and(|m| m.remote) {
            return Err(Error::UnknownMember { group: self.id.clone(), member_id: member_id.to_owned() });
        }
        if matches!(st.phase, Phase::Preparing { .. }) {
            return Err(Error::RebalanceInProgress { group: self.id.clone() });
        }
        if generation != st.generation {
            return Err(Error::StaleGeneration {
                group: self.id.clone(),
                member_generation: generation,
                group_generation: st.generation,
            });
        }
        Ok(())
    }

    /// Heartbeat of a remote member: alive. [`Error::RebalanceInProgress`]
    /// when it must rejoin: the group is rebalancing, or part of its target
    /// that it could not take at its sync is free now.
    pub fn remote_heartbeat(
        &self,
        coordinator: &Coordinator,
        member_id: &str,
        generation: u32,
        now_ms: i64,
    ) -> Result<()> {
        let mut st = self.lock();
        Self::tick(&mut st, coordinator, now_ms);
        if let Some(m) = st.members.get_mut(member_id).filter(|m| m.remote) {
            m.last_poll_ms = m.last_poll_ms.max(now_ms);
        }
        self.check_remote(&st, member_id, generation)?;
        // Partition counts may have changed (remote members do not poll):
        // as in `sync`, a change of the counts in use rebalances.
        let epoch = coordinator.topics_epoch();
        if epoch != st.counts_epoch {
            let changed = coordinator.counts(Self::all_topics(&st).into_iter()) != st.counts;
            st.counts_epoch = epoch;
            if changed {
                Self::begin_rebalance(&mut st, coordinator, now_ms, false);
                return Err(Error::RebalanceInProgress { group: self.id.clone() });
            }
        }
        let m = &st.members[member_id];
        if m.target.iter().any(|tp| !st.owners.contains_key(tp)) {
            return Err(Error::RebalanceInProgress { group: self.id.clone() });
        }
        Ok(())
    }

    /// Commits for a remote member of `generation`: as
    /// [`Group::commit_fenced`], and the generation must be the group's.
    pub fn remote_commit(
        &self,
        coordinator: &Coordinator,
        member_id: &str,
        generation: u32,
        offsets: &[(TopicPartition, u64, &str)],
        logs: &[Arc<Partition>],
        now_ms: i64,
    ) -> Result<()> {
        let mut st = self.lock();
        Self::tick(&mut st, coordinator, now_ms);
        if let Some(m) = st.members.get_mut(member_id).filter(|m| m.remote) {
            m.last_poll_ms = m.last_poll_ms.max(now_ms);
        }
        if !st.members.get(member_id).is_some_and(|m| m.remote) {
            return Err(Error::UnknownMember { group: self.id.clone(), member_id: member_id.to_owned() });
        }
        let stale = generation != st.generation
            || offsets.iter().any(|(tp, _, _)| st.owners.get(tp).is_none_or(|o| o != member_id));
        if stale {
            return Err(Error::StaleGeneration {
                group: self.id.clone(),
                member_generation: generation,
                group_generation: st.generation,
            });
        }
        coordinator.offsets.commit_with_metadata(&self.id, offsets, logs, now_ms)
    }

    /// Whether `member_id` is a remote member of the group.
    pub fn has_remote_member(&self, member_id: &str) -> bool {
        self.lock().members.get(member_id).is_some_and(|m| m.remote)
    }

    /// The group's state, generation, assignor, and members with what they
    /// hold, after expiring members whose time ran out.
    pub fn describe(&self, coordinator: &Coordinator, now_ms: i64) -> GroupSnapshot {
        let mut st = self.lock();
        Self::tick(&mut st, coordinator, now_ms);
        let state = if st.members.is_empty() {
            GroupState::Empty
        } else if matches!(st.phase, Phase::Preparing { .. }) {
            GroupState::PreparingRebalance
        } else if st.members.values().any(|m| m.departed_ms.is_none() && m.synced != st.generation) {
            GroupState::CompletingRebalance
        } else {
            GroupState::Stable
        };
        let members = st
            .members
            .iter()
            .map(|(id, m)| {
                let held = st.owners.iter().filter(|(_, o)| *o == id).map(|(tp, _)| tp.clone()).collect();
                (id.clone(), m.instance_id.clone(), held)
            })
            .collect();
        GroupSnapshot { state, generation: st.generation, assignor: st.assignor, members }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use crate::{Broker, BrokerOptions, ConsumerConfig, TopicConfig};

    thread_local! {
        static AFTER_GROUP_LOOKUP: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    }

    /// Runs (once) the hook set on this thread, between a join's lookup of
    /// its group and the join itself.
    pub(crate) fn after_group_lookup() {
        let hook = AFTER_GROUP_LOOKUP.with(|h| h.borrow_mut().take());
        if let Some(f) = hook {
            f();
        }
    }

    /// The last member leaves while a join has looked the group up but not
    /// joined it yet: the join must land in the group that later members
    /// find, not in the one the leave took out of the registry (its member
    /// and the later ones would each own every partition).
    #[test]
    fn a_join_racing_the_last_leave_lands_in_the_registered_group() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
        broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
        let cfg = || ConsumerConfig::with_group("g");
        let mut last = broker.consumer(cfg()).unwrap();
        last.subscribe(&["t"]).unwrap();
        last.poll(Duration::ZERO).unwrap();
        assert_eq!(last.assignment().len(), 2);
        AFTER_GROUP_LOOKUP.with(|h| *h.borrow_mut() = Some(Box::new(move || drop(last))));
        let mut b = broker.consumer(cfg()).unwrap();
        b.subscribe(&["t"]).unwrap();
        let mut c = broker.consumer(cfg()).unwrap();
        c.subscribe(&["t"]).unwrap();
        for _ in 0..4 {
            b.poll(Duration::ZERO).unwrap();
            c.poll(Duration::ZERO).unwrap();
        }
        assert_eq!(broker.describe_group("g").unwrap().members.len(), 2, "both in one group");
        let (b, c) = (b.assignment(), c.assignment());
        assert!(b.iter().all(|tp| !c.contains(tp)), "b holds {b:?}, c holds {c:?}");
        assert_eq!(b.len() + c.len(), 2);
    }
}

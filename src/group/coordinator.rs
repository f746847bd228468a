//! The group coordinator: members, generations, assignments, and who holds
//! which partition at every moment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::group::offsets::OffsetStore;
use crate::group::{Assignor, MemberSubscription, TopicPartition, TopicView};
use crate::log::notify::Waiter;
use crate::log::partition::Partition;

/// What a member learns when it syncs with its group.
#[derive(Debug, Clone)]
pub(crate) struct SyncState {
    pub generation: u32,
    /// Whether the group's assignor revokes only what moves.
    pub cooperative: bool,
    /// Partitions the member should hold in this generation.
    pub target: Vec<TopicPartition>,
}

/// A member joining a group.
pub(crate) struct Join {
    pub member_id: String,
    pub topics: BTreeSet<String>,
    /// Used if the group is empty; the first member decides.
    pub assignor: Assignor,
    pub max_poll_interval_ms: i64,
    pub now_ms: i64,
    /// Woken when the group rebalances or a partition is released.
    pub waiter: Arc<Waiter>,
}

struct Member {
    topics: BTreeSet<String>,
    target: Vec<TopicPartition>,
    /// Inside `poll` now, which returns by this time at the latest: alive
    /// until then (plus `max_poll_interval`), however long it waits, and
    /// no longer even if it never leaves (a panic inside poll).
    in_poll_until_ms: Option<i64>,
    /// When the member last left `poll` (or joined).
    last_poll_ms: i64,
    max_poll_interval_ms: i64,
    waiter: Arc<Waiter>,
}

#[derive(Default)]
struct GroupState {
    generation: u32,
    assignor: Assignor,
    members: BTreeMap<String, Member>,
    /// Who holds each partition now. A partition is handed to its new
    /// member only once the old one released it: one owner at a time.
    owners: BTreeMap<TopicPartition, String>,
    /// Partition counts the current assignment was computed with.
    counts: BTreeMap<String, u32>,
    /// The broker's topics epoch when `counts` was read: until it moves,
    /// the counts cannot have changed.
    counts_epoch: u64,
}

/// A consumer group's membership and assignment.
pub(crate) struct Group {
    pub id: String,
    state: Mutex<GroupState>,
}

/// The broker's registry of groups and their committed offsets.
pub(crate) struct Coordinator {
    topics: Weak<dyn TopicView>,
    groups: Mutex<BTreeMap<String, Arc<Group>>>,
    next_member: Mutex<u64>,
    pub offsets: OffsetStore,
}

impl Coordinator {
    /// Loads the committed offsets; those of topics that no longer exist (a
    /// delete that crashed before forgetting them) are forgotten now.
    pub fn new(
        view: Weak<dyn TopicView>,
        offsets_log: Arc<Partition>,
        topics: &BTreeSet<String>,
        now_ms: i64,
    ) -> Result<Coordinator> {
        let offsets = OffsetStore::load(offsets_log)?;
        for t in offsets.topics().difference(topics) {
            offsets.forget_topic(t, now_ms)?;
        }
        Ok(Coordinator { topics: view, groups: Mutex::new(BTreeMap::new()), next_member: Mutex::new(0), offsets })
    }

    pub fn group(&self, id: &str) -> Arc<Group> {
        let mut groups = self.groups.lock();
        Arc::clone(
            groups
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(Group { id: id.to_owned(), state: Mutex::new(GroupState::default()) })),
        )
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

    /// A member leaves `group`; an empty group is forgotten (its committed
    /// offsets stay).
    pub fn leave(&self, group: &Arc<Group>, member_id: &str) {
        let mut groups = self.groups.lock();
        if group.leave(self, member_id) && groups.get(&group.id).is_some_and(|g| Arc::ptr_eq(g, group)) {
            groups.remove(&group.id);
        }
    }

    pub fn new_member_id(&self, client_id: &str) -> String {
        let mut n = self.next_member.lock();
        *n += 1;
        format!("{client_id}-{:08}", *n)
    }

    /// Partition counts of `topics` that exist now.
    fn topics_epoch(&self) -> u64 {
        self.topics.upgrade().map_or(0, |t| t.topics_epoch())
    }

    fn counts(&self, topics: impl Iterator<Item = String>) -> BTreeMap<String, u32> {
        let Some(view) = self.topics.upgrade() else { return BTreeMap::new() };
        topics.filter_map(|t| view.partition_count(&t).map(|n| (t, n))).collect()
    }
}

impl Group {
    /// Adds a member and rebalances.
    pub fn join(&self, coordinator: &Coordinator, join: Join) {
        let mut st = self.state.lock();
        if st.members.is_empty() {
            st.assignor = join.assignor;
        }
        let member = Member {
            topics: join.topics,
            target: Vec::new(),
            in_poll_until_ms: None,
            last_poll_ms: join.now_ms,
            max_poll_interval_ms: join.max_poll_interval_ms,
            waiter: join.waiter,
        };
        st.members.insert(join.member_id, member);
        Self::rebalance(&mut st, coordinator);
    }

    /// Removes a member, releases what it held, and rebalances. Returns
    /// whether the group is now empty.
    fn leave(&self, coordinator: &Coordinator, member_id: &str) -> bool {
        let mut st = self.state.lock();
        if st.members.remove(member_id).is_some() {
            st.owners.retain(|_, owner| owner != member_id);
            Self::rebalance(&mut st, coordinator);
        }
        st.members.is_empty()
    }

    /// Records a poll: evicts members past their poll deadline, notices
    /// subscription and partition count changes, and returns this member's
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
        let mut st = self.state.lock();
        let mut changed = Self::evict_expired(&mut st, now_ms);
        let member = st.members.get_mut(member_id)?;
        if member.topics != *topics {
            member.topics = topics.clone();
            changed = true;
        }
        if !changed && topics_epoch != st.counts_epoch {
            // Topics changed somewhere: did the partition counts we use?
            let epoch = coordinator.topics_epoch();
            changed = coordinator.counts(Self::all_topics(&st).into_iter()) != st.counts;
            st.counts_epoch = epoch;
        }
        if changed {
            Self::rebalance(&mut st, coordinator);
        }
        let member = &st.members[member_id];
        Some(SyncState {
            generation: st.generation,
            cooperative: st.assignor.is_cooperative(),
            target: member.target.clone(),
        })
    }

    /// Replaces the waiter woken for this member on rebalances.
    pub fn set_waiter(&self, member_id: &str, waiter: &Arc<Waiter>) {
        if let Some(m) = self.state.lock().members.get_mut(member_id) {
            m.waiter = Arc::clone(waiter);
        }
    }

    /// Removes members that are not in `poll` and left it more than their
    /// `max_poll_interval` ago. Returns whether any went.
    fn evict_expired(st: &mut GroupState, now_ms: i64) -> bool {
        let expired: Vec<String> = st
            .members
            .iter()
            .filter(|(_, m)| {
                let alive_from = m.in_poll_until_ms.map_or(m.last_poll_ms, |d| d.max(m.last_poll_ms));
                now_ms.saturating_sub(alive_from) > m.max_poll_interval_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            st.members.remove(id);
            st.owners.retain(|_, owner| owner != id);
        }
        !expired.is_empty()
    }

    /// A member enters a `poll` that returns by `until_ms`. If it missed
    /// its deadline since the last one, it is removed (and learns so from
    /// `sync`).
    pub fn enter_poll(&self, coordinator: &Coordinator, member_id: &str, now_ms: i64, until_ms: i64) {
        let mut st = self.state.lock();
        if Self::evict_expired(&mut st, now_ms) {
            Self::rebalance(&mut st, coordinator);
        }
        if let Some(m) = st.members.get_mut(member_id) {
            m.in_poll_until_ms = Some(until_ms);
        }
    }

    /// A member leaves `poll`: its `max_poll_interval` starts now.
    pub fn exit_poll(&self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.state.lock().members.get_mut(member_id) {
            m.in_poll_until_ms = None;
            m.last_poll_ms = now_ms;
        }
    }

    /// Takes `tp` for `member_id` if nobody else holds it.
    pub fn acquire(&self, member_id: &str, tp: &TopicPartition) -> bool {
        let mut st = self.state.lock();
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

    /// Gives `tp` up and wakes the members, one of which may be waiting for it.
    pub fn release(&self, member_id: &str, tp: &TopicPartition) {
        let mut st = self.state.lock();
        if st.owners.get(tp).is_some_and(|o| o == member_id) {
            st.owners.remove(tp);
            for m in st.members.values() {
                m.waiter.wake();
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
        offsets: &[(TopicPartition, u64)],
        logs: &[Arc<Partition>],
        store: &OffsetStore,
        now_ms: i64,
    ) -> Result<()> {
        let st = self.state.lock();
        let stale = !st.members.contains_key(member_id)
            || offsets.iter().any(|(tp, _)| st.owners.get(tp).is_none_or(|o| o != member_id));
        if stale {
            return Err(Error::StaleGeneration {
                group: self.id.clone(),
                member_generation: generation,
                group_generation: st.generation,
            });
        }
        store.commit(&self.id, offsets, logs, now_ms)
    }

    fn all_topics(st: &GroupState) -> BTreeSet<String> {
        st.members.values().flat_map(|m| m.topics.iter().cloned()).collect()
    }

    fn rebalance(st: &mut GroupState, coordinator: &Coordinator) {
        st.generation += 1;
        // The epoch first: a change racing with the lookup moves it again.
        st.counts_epoch = coordinator.topics_epoch();
        st.counts = coordinator.counts(Self::all_topics(st).into_iter());
        let subs: Vec<MemberSubscription> = st
            .members
            .iter()
            .map(|(id, m)| MemberSubscription {
                member_id: id.clone(),
                topics: m.topics.clone(),
                owned: st.owners.iter().filter(|(_, o)| *o == id).map(|(tp, _)| tp.clone()).collect(),
            })
            .collect();
        let mut assignment = st.assignor.assign(&subs, &st.counts);
        for (id, m) in st.members.iter_mut() {
            m.target = assignment.remove(id).unwrap_or_default();
            m.waiter.wake();
        }
    }

    /// Members with their targets, and the group's generation and assignor.
    pub fn describe(&self) -> (u32, Assignor, Vec<(String, Vec<TopicPartition>)>) {
        let st = self.state.lock();
        let members = st
            .members
            .keys()
            .map(|id| (id.clone(), st.owners.iter().filter(|(_, o)| *o == id).map(|(tp, _)| tp.clone()).collect()))
            .collect();
        (st.generation, st.assignor, members)
    }
}

//! Consumer groups: the in-process coordinator (members, generations,
//! assignments, who holds which partition), the assignors, and the durable
//! offset store kept in the `__consumer_offsets` topic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::broker::BrokerInner;
use crate::error::{Error, Result};
use crate::log::notify::Waiter;
use crate::log::partition::Partition;
use crate::log::record::Record;

/// Name of the internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// How a group splits partitions among its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignor {
    /// Kafka's default: per topic, consecutive ranges of partitions to the
    /// members (sorted by id); the first members get one more when it does
    /// not divide evenly. Eager: a rebalance revokes everything.
    #[default]
    Range,
    /// All partitions, sorted by topic and number, dealt to the members in
    /// turn (skipping members not subscribed to the topic). Eager.
    RoundRobin,
    /// Balanced like round robin, but keeps every partition where it is
    /// unless it must move; a rebalance revokes only the partitions that
    /// move (Kafka's `CooperativeStickyAssignor`).
    CooperativeSticky,
}

/// One member's input to an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    pub topics: BTreeSet<String>,
    /// Partitions the member holds now (used by the sticky assignor).
    pub owned: Vec<TopicPartition>,
}

impl Assignor {
    /// Whether a rebalance revokes only the partitions that move.
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }

    /// Assigns the partitions of the subscribed topics (`partition_counts`)
    /// to `members`. Every member gets an entry, possibly empty.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partition_counts: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut out: BTreeMap<String, Vec<TopicPartition>> =
            members.iter().map(|m| (m.member_id.clone(), Vec::new())).collect();
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        match self {
            Assignor::Range => {
                for (topic, &count) in partition_counts {
                    let subs: Vec<&&MemberSubscription> = sorted.iter().filter(|m| m.topics.contains(topic)).collect();
                    if subs.is_empty() {
                        continue;
                    }
                    let (per, extra) = (count / subs.len() as u32, count % subs.len() as u32);
                    for (i, m) in subs.iter().enumerate() {
                        let i = i as u32;
                        let start = i * per + i.min(extra);
                        let len = per + u32::from(i < extra);
                        let list = out.get_mut(&m.member_id).expect("every member has an entry");
                        list.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
                    }
                }
            }
            Assignor::RoundRobin => {
                let mut next = 0usize;
                for (topic, &count) in partition_counts {
                    if !sorted.iter().any(|m| m.topics.contains(topic)) {
                        continue;
                    }
                    for p in 0..count {
                        while !sorted[next % sorted.len()].topics.contains(topic) {
                            next += 1;
                        }
                        let m = sorted[next % sorted.len()];
                        out.get_mut(&m.member_id).expect("entry").push(TopicPartition::new(topic.clone(), p));
                        next += 1;
                    }
                }
            }
            Assignor::CooperativeSticky => sticky(&sorted, partition_counts, &mut out),
        }
        for list in out.values_mut() {
            list.sort();
        }
        out
    }
}

/// Keeps what members own (if still valid), deals out the rest to the least
/// loaded subscribed member, then moves partitions one at a time from the
/// most to the least loaded member until no move can narrow the gap.
fn sticky(
    members: &[&MemberSubscription],
    partition_counts: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let exists = |tp: &TopicPartition| partition_counts.get(&tp.topic).is_some_and(|&n| tp.partition < n);
    let mut taken = BTreeSet::new();
    for m in members {
        for tp in &m.owned {
            if m.topics.contains(&tp.topic) && exists(tp) && taken.insert(tp.clone()) {
                out.get_mut(&m.member_id).expect("entry").push(tp.clone());
            }
        }
    }
    let subscribed = |id: &str, topic: &str| members.iter().any(|m| m.member_id == id && m.topics.contains(topic));
    for (topic, &count) in partition_counts {
        for p in 0..count {
            let tp = TopicPartition::new(topic.clone(), p);
            if taken.contains(&tp) {
                continue;
            }
            let least = members
                .iter()
                .filter(|m| m.topics.contains(topic))
                .min_by_key(|m| (out[&m.member_id].len(), m.member_id.clone()));
            if let Some(m) = least {
                out.get_mut(&m.member_id).expect("entry").push(tp.clone());
                taken.insert(tp);
            }
        }
    }
    // Balance: move from the fullest member to an emptier one that can take
    // one of its partitions, while that narrows the gap by two or more.
    loop {
        let mut best: Option<(String, String, usize)> = None;
        for from in members {
            for to in members {
                let (nf, nt) = (out[&from.member_id].len(), out[&to.member_id].len());
                if nf < nt + 2 {
                    continue;
                }
                let movable = out[&from.member_id].iter().rposition(|tp| subscribed(&to.member_id, &tp.topic));
                if let Some(i) = movable
                    && best.as_ref().is_none_or(|b| nf - nt > out[&b.0].len() - out[&b.1].len())
                {
                    best = Some((from.member_id.clone(), to.member_id.clone(), i));
                }
            }
        }
        let Some((from, to, i)) = best else { break };
        let tp = out.get_mut(&from).expect("entry").remove(i);
        out.get_mut(&to).expect("entry").push(tp);
    }
}

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
    broker: Weak<BrokerInner>,
    groups: Mutex<BTreeMap<String, Arc<Group>>>,
    next_member: Mutex<u64>,
    pub offsets: OffsetStore,
}

impl Coordinator {
    /// Loads the committed offsets; those of topics that no longer exist (a
    /// delete that crashed before forgetting them) are forgotten now.
    pub fn new(
        broker: Weak<BrokerInner>,
        offsets_log: Arc<Partition>,
        topics: &BTreeSet<String>,
        now_ms: i64,
    ) -> Result<Coordinator> {
        let offsets = OffsetStore::load(offsets_log)?;
        let orphans: BTreeSet<String> =
            offsets.committed.read().keys().map(|(_, tp)| tp.topic.clone()).filter(|t| !topics.contains(t)).collect();
        for t in orphans {
            offsets.forget_topic(&t, now_ms)?;
        }
        Ok(Coordinator { broker, groups: Mutex::new(BTreeMap::new()), next_member: Mutex::new(0), offsets })
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
        self.broker.upgrade().map_or(0, |b| b.topics_epoch.load(std::sync::atomic::Ordering::Acquire))
    }

    fn counts(&self, topics: impl Iterator<Item = String>) -> BTreeMap<String, u32> {
        let Some(broker) = self.broker.upgrade() else { return BTreeMap::new() };
        topics.filter_map(|t| broker.topic(&t).ok().map(|topic| (t, topic.partition_count()))).collect()
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

/// What `kafka-consumer-groups --describe` shows for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// Rebalances so far (0 if the group never had a member in this run).
    pub generation: u32,
    pub assignor: Assignor,
    pub members: Vec<MemberDescription>,
    /// Every partition with a committed offset or an owner.
    pub partitions: Vec<PartitionOffsets>,
}

/// A member and the partitions it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub partitions: Vec<TopicPartition>,
}

/// Offsets of one partition for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: TopicPartition,
    pub committed: Option<u64>,
    pub log_end_offset: u64,
    /// `log_end_offset - committed`, when there is a commit.
    pub lag: Option<u64>,
    pub owner: Option<String>,
}

/// Committed offsets, durable in the `__consumer_offsets` log.
///
/// Record key: `1u8`, group (u16 length + UTF-8), topic (u16 length +
/// UTF-8), partition (u32), all little-endian. Value: `1u8`, offset (u64),
/// commit time in ms (i64). The latest record per key wins, so the log
/// compacts to one record per committed partition.
pub(crate) struct OffsetStore {
    log: Arc<Partition>,
    committed: RwLock<HashMap<(String, TopicPartition), u64>>,
    /// Serializes appends with their map updates, so the map and the log
    /// agree on which commit came last.
    write: Mutex<()>,
}

const OFFSET_RECORD_VERSION: u8 = 1;

fn offset_key(group: &str, tp: &TopicPartition) -> Bytes {
    let mut k = Vec::with_capacity(1 + 2 + group.len() + 2 + tp.topic.len() + 4);
    k.push(OFFSET_RECORD_VERSION);
    k.extend_from_slice(&(group.len() as u16).to_le_bytes());
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(&(tp.topic.len() as u16).to_le_bytes());
    k.extend_from_slice(tp.topic.as_bytes());
    k.extend_from_slice(&tp.partition.to_le_bytes());
    Bytes::from(k)
}

fn parse_offset_key(k: &[u8]) -> Option<(String, TopicPartition)> {
    let (&version, rest) = k.split_first()?;
    if version != OFFSET_RECORD_VERSION {
        return None;
    }
    let take_str = |b: &[u8]| -> Option<(String, usize)> {
        let n = u16::from_le_bytes(b.get(..2)?.try_into().ok()?) as usize;
        Some((std::str::from_utf8(b.get(2..2 + n)?).ok()?.to_owned(), 2 + n))
    };
    let (group, used) = take_str(rest)?;
    let rest = &rest[used..];
    let (topic, used) = take_str(rest)?;
    let partition = u32::from_le_bytes(rest.get(used..used + 4)?.try_into().ok()?);
    (rest.len() == used + 4).then_some((group, TopicPartition { topic, partition }))
}

fn parse_offset_value(v: &[u8]) -> Option<u64> {
    (v.len() == 17 && v[0] == OFFSET_RECORD_VERSION).then(|| u64::from_le_bytes(v[1..9].try_into().expect("8 bytes")))
}

impl OffsetStore {
    /// Replays the offsets log.
    fn load(log: Arc<Partition>) -> Result<OffsetStore> {
        let mut committed = HashMap::new();
        let mut next = log.log_start_offset();
        while next < log.high_watermark() {
            let batches = log.read(next, 1 << 20)?;
            if batches.is_empty() {
                break;
            }
            for batch in batches {
                for r in batch.try_records()? {
                    let Some(key) = r.key.as_deref().and_then(parse_offset_key) else { continue };
                    match r.value.as_deref().and_then(parse_offset_value) {
                        Some(offset) => committed.insert(key, offset),
                        None => committed.remove(&key),
                    };
                }
                next = batch.next_offset();
            }
        }
        Ok(OffsetStore { log, committed: RwLock::new(committed), write: Mutex::new(()) })
    }

    pub fn get(&self, group: &str, tp: &TopicPartition) -> Option<u64> {
        self.committed.read().get(&(group.to_owned(), tp.clone())).copied()
    }

    /// Appends the commits as one batch, then makes them visible. Commits
    /// for partitions whose log is closed by now (a topic deleted since the
    /// caller looked it up) are dropped, under the same lock that
    /// `forget_topic` takes, so a deleted topic's offsets never come back.
    pub fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, u64)],
        logs: &[Arc<Partition>],
        now_ms: i64,
    ) -> Result<()> {
        let _w = self.write.lock();
        let offsets: Vec<(TopicPartition, u64)> =
            offsets.iter().zip(logs).filter(|(_, log)| !log.is_closed()).map(|(o, _)| o.clone()).collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> = offsets
            .iter()
            .map(|(tp, off)| {
                let mut v = Vec::with_capacity(17);
                v.push(OFFSET_RECORD_VERSION);
                v.extend_from_slice(&off.to_le_bytes());
                v.extend_from_slice(&now_ms.to_le_bytes());
                Record::new(v).with_key(offset_key(group, tp)).with_timestamp(now_ms)
            })
            .collect();
        self.log.append(&records)?;
        let mut map = self.committed.write();
        for (tp, off) in offsets {
            map.insert((group.to_owned(), tp), off);
        }
        Ok(())
    }

    /// Forgets every group's offsets of `topic` (deleted), durably.
    pub fn forget_topic(&self, topic: &str, now_ms: i64) -> Result<()> {
        let _w = self.write.lock();
        let doomed: Vec<(String, TopicPartition)> =
            self.committed.read().keys().filter(|(_, tp)| tp.topic == topic).cloned().collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let tombstones: Vec<Record> =
            doomed.iter().map(|(g, tp)| Record::tombstone(offset_key(g, tp)).with_timestamp(now_ms)).collect();
        self.log.append(&tombstones)?;
        // As durable as the delete itself.
        self.log.flush()?;
        let mut map = self.committed.write();
        for k in &doomed {
            map.remove(k);
        }
        Ok(())
    }

    /// Committed offsets of one group.
    pub fn of_group(&self, group: &str) -> BTreeMap<TopicPartition, u64> {
        self.committed.read().iter().filter(|((g, _), _)| g == group).map(|((_, tp), o)| (tp.clone(), *o)).collect()
    }

    fn groups(&self) -> BTreeSet<String> {
        self.committed.read().keys().map(|(g, _)| g.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: vec![],
        }
    }

    fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
        list.iter().map(|&(t, p)| TopicPartition::new(t, p)).collect()
    }

    fn counts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|&(t, n)| (t.to_owned(), n)).collect()
    }

    /// Kafka's documented RangeAssignor example: two consumers, two topics
    /// of three partitions.
    #[test]
    fn range_matches_kafkas_example() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let a = Assignor::Range.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(a["C0"], tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]));
        assert_eq!(a["C1"], tps(&[("t0", 2), ("t1", 2)]));
    }

    /// Kafka's documented RoundRobinAssignor example: same input, the
    /// partitions dealt in turn.
    #[test]
    fn round_robin_matches_kafkas_example() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let a = Assignor::RoundRobin.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(a["C0"], tps(&[("t0", 0), ("t0", 2), ("t1", 1)]));
        assert_eq!(a["C1"], tps(&[("t0", 1), ("t1", 0), ("t1", 2)]));
    }

    #[test]
    fn round_robin_skips_unsubscribed_members() {
        // Kafka's example with different subscriptions: C0 t0; C1 t0,t1; C2 t0,t1,t2
        // with t0 1 partition, t1 2, t2 3.
        let members = [member("C0", &["t0"]), member("C1", &["t0", "t1"]), member("C2", &["t0", "t1", "t2"])];
        let a = Assignor::RoundRobin.assign(&members, &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        assert_eq!(a["C0"], tps(&[("t0", 0)]));
        assert_eq!(a["C1"], tps(&[("t1", 0)]));
        assert_eq!(a["C2"], tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]));
    }

    #[test]
    fn sticky_keeps_ownership_and_moves_the_minimum() {
        let c = counts(&[("t", 6)]);
        let mut members = vec![member("A", &["t"]), member("B", &["t"])];
        let first = Assignor::CooperativeSticky.assign(&members, &c);
        assert_eq!(first["A"].len(), 3);
        assert_eq!(first["B"].len(), 3);
        // C joins: exactly two partitions move, one from each, to C.
        for m in members.iter_mut() {
            m.owned = first[&m.member_id].clone();
        }
        members.push(member("C", &["t"]));
        let second = Assignor::CooperativeSticky.assign(&members, &c);
        assert_eq!(second["C"].len(), 2);
        for id in ["A", "B"] {
            assert_eq!(second[id].len(), 2);
            assert!(second[id].iter().all(|tp| first[id].contains(tp)), "{id} kept what it could");
        }
        // B leaves: its partitions go to A and C, nothing else moves.
        let members: Vec<MemberSubscription> = ["A", "C"]
            .iter()
            .map(|id| MemberSubscription { owned: second[*id].clone(), ..member(id, &["t"]) })
            .collect();
        let third = Assignor::CooperativeSticky.assign(&members, &c);
        for id in ["A", "C"] {
            assert_eq!(third[id].len(), 3);
            assert!(second[id].iter().all(|tp| third[id].contains(tp)));
        }
    }

    #[test]
    fn offset_records_round_trip() {
        let tp = TopicPartition::new("orders", 7);
        let k = offset_key("g1", &tp);
        assert_eq!(parse_offset_key(&k), Some(("g1".to_owned(), tp)));
        assert_eq!(parse_offset_key(&k[..k.len() - 1]), None);
        assert_eq!(parse_offset_key(b""), None);
    }
}

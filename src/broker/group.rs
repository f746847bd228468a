//! [`ConsumerGroup`]: the admin handle on one consumer group, as Kafka's
//! `kafka-consumer-groups` sees it (describe, offsets, lag, reset, delete).
//! It lives in the broker layer because it needs the topics as well as the
//! coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::BrokerState;
use crate::error::{Error, Result};
use crate::group::coordinator::{Join, RemoteJoinState};
use crate::group::{
    Assignor, GroupDescription, GroupState, MemberDescription, OffsetAndMetadata, PartitionOffsets, TopicPartition,
};
use crate::log::notify::Waiter;
use crate::log::partition::Partition;

/// A JoinGroup of a member outside this process (a Kafka client over the
/// wire), for [`ConsumerGroup::remote_join`].
#[derive(Debug, Clone)]
pub struct RemoteJoin {
    /// The member id: one the group knows (a rejoin) or a new one from
    /// [`ConsumerGroup::new_member_id`].
    pub member_id: String,
    /// Static membership (KIP-345): a new member with the instance id of a
    /// remote member replaces it (a restarted client).
    pub group_instance_id: Option<String>,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// What the client says it still holds (a cooperative client keeps its
    /// partitions through a rejoin; an eager one revoked all: empty).
    /// Anything else it held is released.
    pub owned: Vec<TopicPartition>,
    /// The assignor it asks for; the group's first member decides.
    pub assignor: Assignor,
    /// It is removed when it sends nothing for this long.
    pub session_timeout: Duration,
    /// How long a rebalance waits for the members to rejoin.
    pub rebalance_timeout: Duration,
}

/// Where a [`ConsumerGroup::remote_join`] stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteJoinOutcome {
    /// The join phase is over: the member is in this generation. Its
    /// partitions come from [`ConsumerGroup::remote_sync`].
    Joined {
        /// The generation.
        generation: u32,
        /// The group's assignor (the broker assigns for every member).
        assignor: Assignor,
        /// Every member id, in this process and remote.
        members: Vec<String>,
    },
    /// The group still collects its members: call again with the same id.
    Pending,
}

/// Where [`ConsumerGroup::reset_offsets`] moves a group's committed offsets:
/// the targets of `kafka-consumer-groups --reset-offsets`. Every result is
/// clamped to the partition's `[log start offset, high watermark]`, as
/// Kafka does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start offset (`--to-earliest`).
    Earliest,
    /// The high watermark (`--to-latest`).
    Latest,
    /// The first offset whose record has a timestamp at or after this one
    /// (ms), or the high watermark if none (`--to-datetime`).
    Timestamp(i64),
    /// This offset (`--to-offset`).
    Offset(u64),
    /// The committed offset moved by this many records, from the log start
    /// where there is none (`--shift-by`).
    ShiftBy(i64),
}

/// A handle on one consumer group, from [`Broker::group`](crate::Broker::group).
/// The group need not exist: an unknown group describes as
/// [`GroupState::Dead`].
#[derive(Clone)]
pub struct ConsumerGroup {
    broker: Arc<BrokerState>,
    id: String,
}

impl fmt::Debug for ConsumerGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerGroup").field("id", &self.id).finish()
    }
}

impl ConsumerGroup {
    pub(super) fn new(broker: Arc<BrokerState>, id: &str) -> ConsumerGroup {
        ConsumerGroup { broker, id: id.to_owned() }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// State, generation, assignor, members with the partitions they hold,
    /// and every partition with a committed offset or an owner, with its lag.
    pub fn describe(&self) -> Result<GroupDescription> {
        let inner = &*self.broker;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        let committed = coordinator.offsets.of_group(&self.id);
        let snapshot = coordinator.existing_group(&self.id).map(|g| g.describe(coordinator, inner.now_ms()));
        let (state, generation, assignor, members) = match snapshot {
            Some(s) => (s.state, s.generation, s.assignor, s.members),
            None if !committed.is_empty() => (GroupState::Empty, 0, Default::default(), Vec::new()),
            None => (GroupState::Dead, 0, Default::default(), Vec::new()),
        };
        let mut tps: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
        tps.extend(members.iter().flat_map(|(_, _, p)| p.iter().cloned()));
        let partitions = tps
            .into_iter()
            .map(|tp| {
                let end =
                    inner.topic(&tp.topic).and_then(|t| t.partition(tp.partition)).map_or(0, |p| p.high_watermark());
                let committed = committed.get(&tp).copied();
                let owner = members.iter().find(|(_, _, ps)| ps.contains(&tp)).map(|(m, _, _)| m.clone());
                PartitionOffsets {
                    lag: committed.map(|c| end.saturating_sub(c)),
                    partition: tp,
                    committed,
                    log_end_offset: end,
                    owner,
                }
            })
            .collect();
        Ok(GroupDescription {
            group_id: self.id.clone(),
            state,
            generation,
            assignor,
            members: members
                .into_iter()
                .map(|(member_id, group_instance_id, partitions)| MemberDescription {
                    member_id,
                    group_instance_id,
                    partitions,
                })
                .collect(),
            partitions,
        })
    }

    /// The group's committed offsets (each the next offset to read).
    pub fn committed(&self) -> Result<BTreeMap<TopicPartition, u64>> {
        self.broker.check_open()?;
        Ok(self.broker.coordinator().offsets.of_group(&self.id))
    }

    /// The group's committed offsets with the metadata committed with each.
    pub fn committed_with_metadata(&self) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        self.broker.check_open()?;
        Ok(self.broker.coordinator().offsets.of_group_with_metadata(&self.id))
    }

    /// A fresh member id for a remote member (`<client_id>-<n>`).
    pub fn new_member_id(&self, client_id: &str) -> String {
        self.broker.coordinator().new_member_id(client_id)
    }

    /// Whether `member_id` is a remote member of the group now.
    pub fn has_remote_member(&self, member_id: &str) -> bool {
        self.broker.coordinator().existing_group(&self.id).is_some_and(|g| g.has_remote_member(member_id))
    }

    /// Joins or rejoins a member outside this process to the group, which
    /// may have members in this process too: one coordinator, one owner per
    /// partition. The broker's assignor assigns for every member (Kafka
    /// clients get their part from [`ConsumerGroup::remote_sync`], encoded
    /// by the wire front). Waits up to `max_wait` for the join phase to
    /// end, parking the calling thread (woken by the group); meanwhile the
    /// member counts as alive. [`Error::UnknownMember`] if the rebalance
    /// went on without it, or if `member_id` is an in-process consumer's;
    /// [`Error::FencedInstanceId`] if an in-process consumer holds its
    /// instance id.
    pub fn remote_join(&self, join: RemoteJoin, max_wait: Duration) -> Result<RemoteJoinOutcome> {
        let inner = &*self.broker;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        let waiter = Waiter::current();
        let now = inner.now_ms();
        let topics: BTreeSet<String> = join.topics.into_iter().collect();
        let session = millis(join.session_timeout);
        let rebalance = millis(join.rebalance_timeout);
        let rejoined = coordinator.existing_group(&self.id).filter(|g| {
            g.remote_rejoin(coordinator, &join.member_id, topics.clone(), &join.owned, (session, rebalance), now)
        });
        let group = match rejoined {
            Some(group) => group,
            None => coordinator.join(
                &self.id,
                Join {
                    member_id: join.member_id.clone(),
                    group_instance_id: join.group_instance_id,
                    topics,
                    assignor: join.assignor,
                    max_poll_interval_ms: session,
                    rebalance_timeout_ms: rebalance,
                    session_timeout_ms: session,
                    now_ms: now,
                    waiter: Arc::clone(&waiter),
                    remote: true,
                },
            )?,
        };
        inner.waiters.register(&waiter);
        let result = self.wait_joined(&group, &join.member_id, &waiter, max_wait);
        inner.waiters.unregister(&waiter);
        result
    }

    fn wait_joined(
        &self,
        group: &crate::group::coordinator::Group,
        member_id: &str,
        waiter: &Arc<Waiter>,
        max_wait: Duration,
    ) -> Result<RemoteJoinOutcome> {
        let inner = &*self.broker;
        let coordinator = inner.coordinator();
        let deadline = Instant::now().checked_add(max_wait).unwrap_or_else(Instant::now);
        loop {
            // Reset before looking: a change after the look wakes the park.
            waiter.reset();
            inner.check_open()?;
            let now = inner.now_ms();
            let left = millis(deadline.saturating_duration_since(Instant::now()));
            let (state, wake_at) =
                group.remote_join_state(coordinator, member_id, waiter, now, now.saturating_add(left));
            match state {
                None => return Err(Error::UnknownMember { group: self.id.clone(), member_id: member_id.to_owned() }),
                Some(RemoteJoinState::Joined { generation, assignor, members }) => {
                    return Ok(RemoteJoinOutcome::Joined { generation, assignor, members });
                }
                Some(RemoteJoinState::Pending) if Instant::now() >= deadline => return Ok(RemoteJoinOutcome::Pending),
                Some(RemoteJoinState::Pending) => waiter.park_until(park_deadline(deadline, wake_at, now)),
            }
        }
    }

    /// SyncGroup of a remote member of `generation`: its assignment, the
    /// partitions of its target that it now holds. Partitions still held by
    /// a member that has yet to release them are waited for, up to
    /// `max_wait` (not when this member itself still holds partitions
    /// that moved: others may be waiting for those); what is still missing
    /// then is reported by [`ConsumerGroup::remote_heartbeat`] once free.
    /// [`Error::UnknownMember`], [`Error::RebalanceInProgress`] or
    /// [`Error::StaleGeneration`] as Kafka's SyncGroup.
    pub fn remote_sync(&self, member_id: &str, generation: u32, max_wait: Duration) -> Result<Vec<TopicPartition>> {
        self.remote_sync_unless(member_id, generation, max_wait, &|| false)
    }

    /// [`ConsumerGroup::remote_sync`] that stops waiting (and answers with
    /// what the member holds so far) once `stop` returns true; it is asked
    /// at least every 100 ms. A server shutting down passes its stopping
    /// flag, so that a waiting SyncGroup does not hold the shutdown.
    pub fn remote_sync_unless(
        &self,
        member_id: &str,
        generation: u32,
        max_wait: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<TopicPartition>> {
        let inner = &*self.broker;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        let Some(group) = coordinator.existing_group(&self.id) else {
            return Err(Error::UnknownMember { group: self.id.clone(), member_id: member_id.to_owned() });
        };
        let waiter = Waiter::current();
        inner.waiters.register(&waiter);
        let deadline = Instant::now().checked_add(max_wait).unwrap_or_else(Instant::now);
        let result = loop {
            waiter.reset();
            if let Err(e) = inner.check_open() {
                break Err(e);
            }
            let now = inner.now_ms();
            let left = millis(deadline.saturating_duration_since(Instant::now()));
            let until = (left > 0).then(|| now.saturating_add(left));
            match group.remote_sync(coordinator, member_id, generation, &waiter, now, until) {
                Err(e) => break Err(e),
                Ok((s, wake_at)) => {
                    if !s.incomplete || s.holds_others || Instant::now() >= deadline || stop() {
                        break Ok(s.assignment);
                    }
                    waiter.park_until(park_deadline(deadline, wake_at, now));
                }
            }
        };
        inner.waiters.unregister(&waiter);
        result
    }

    /// Heartbeat of a remote member: keeps it alive. As Kafka's: an error
    /// tells it to rejoin ([`Error::RebalanceInProgress`]) or to join
    /// again as a new member ([`Error::UnknownMember`]).
    pub fn remote_heartbeat(&self, member_id: &str, generation: u32) -> Result<()> {
        let inner = &*self.broker;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        let Some(group) = coordinator.existing_group(&self.id) else {
            return Err(Error::UnknownMember { group: self.id.clone(), member_id: member_id.to_owned() });
        };
        group.remote_heartbeat(coordinator, member_id, generation, inner.now_ms())
    }

    /// A remote member leaves (static or not): its partitions are released
    /// and the group rebalances.
    pub fn remote_leave(&self, member_id: &str) -> Result<()> {
        let inner = &*self.broker;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        match coordinator.existing_group(&self.id) {
            Some(group) if group.has_remote_member(member_id) => {
                coordinator.leave(&group, member_id, inner.now_ms());
                Ok(())
            }
            _ => Err(Error::UnknownMember { group: self.id.clone(), member_id: member_id.to_owned() }),
        }
    }

    /// Commits for a remote member of `generation`, fenced as in-process
    /// members' commits are: it must hold every partition it commits, in
    /// the group's current generation ([`Error::StaleGeneration`]).
    pub fn remote_commit(
        &self,
        member_id: &str,
        generation: u32,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        let inner = &*self.broker;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        let Some(group) = coordinator.existing_group(&self.id) else {
            return Err(Error::UnknownMember { group: self.id.clone(), member_id: member_id.to_owned() });
        };
        let mut logs = Vec::with_capacity(offsets.len());
        for (tp, o) in offsets {
            let log = inner.topic(&tp.topic)?.partition(tp.partition)?;
            let end = log.high_watermark();
            if o.offset > end {
                return Err(Error::OffsetOutOfRange { requested: o.offset, start: log.log_start_offset(), end });
            }
            logs.push(log);
        }
        let offsets: Vec<(TopicPartition, u64, &str)> =
            offsets.iter().map(|(tp, o)| (tp.clone(), o.offset, o.metadata.as_str())).collect();
        group.remote_commit(coordinator, member_id, generation, &offsets, &logs, inner.now_ms())
    }

    /// Per partition with a committed offset or an owner: the committed
    /// offset, the high watermark and the lag between them.
    pub fn lag(&self) -> Result<Vec<PartitionOffsets>> {
        Ok(self.describe()?.partitions)
    }

    /// Sum of the lags of the partitions with a committed offset.
    pub fn total_lag(&self) -> Result<u64> {
        Ok(self.lag()?.iter().filter_map(|p| p.lag).sum())
    }

    /// Deletes the group's committed offsets, durably. Refused with
    /// [`Error::GroupNotEmpty`] while it has members (a static member that
    /// closed counts until its session timeout), and with
    /// [`Error::UnknownGroup`] if it has neither members nor offsets.
    pub fn delete(&self) -> Result<()> {
        let inner = &*self.broker;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        let now = inner.now_ms();
        coordinator.with_empty_group(&self.id, now, || {
            if coordinator.offsets.of_group(&self.id).is_empty() {
                return Err(Error::UnknownGroup { group: self.id.clone() });
            }
            coordinator.offsets.forget_group(&self.id, now)
        })
    }

    /// Moves the committed offsets of `partitions` (every partition with a
    /// committed offset if empty) to `to`, and returns the new offsets.
    /// Refused with [`Error::GroupNotEmpty`] while the group has members,
    /// as `kafka-consumer-groups --reset-offsets` is; no member can join
    /// while the reset is written.
    pub fn reset_offsets(&self, partitions: &[TopicPartition], to: ResetTo) -> Result<Vec<(TopicPartition, u64)>> {
        let inner = &*self.broker;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        let now = inner.now_ms();
        coordinator.with_empty_group(&self.id, now, || {
            let committed = coordinator.offsets.of_group(&self.id);
            let list: Vec<TopicPartition> =
                if partitions.is_empty() { committed.keys().cloned().collect() } else { partitions.to_vec() };
            let mut plan = Vec::with_capacity(list.len());
            let mut logs: Vec<Arc<Partition>> = Vec::with_capacity(list.len());
            for tp in list {
                let log = inner.topic(&tp.topic)?.partition(tp.partition)?;
                let (start, end) = (log.log_start_offset(), log.high_watermark());
                let new = match to {
                    ResetTo::Earliest => start,
                    ResetTo::Latest => end,
                    ResetTo::Timestamp(ts) => log.offset_for_timestamp(ts)?.unwrap_or(end),
                    ResetTo::Offset(o) => o,
                    ResetTo::ShiftBy(n) => committed.get(&tp).copied().unwrap_or(start).saturating_add_signed(n),
                };
                plan.push((tp, new.clamp(start, end)));
                logs.push(log);
            }
            coordinator.offsets.commit(&self.id, &plan, &logs, now)?;
            Ok(plan)
        })
    }
}

/// A duration in whole milliseconds, saturated to fit the clock's `i64`.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// When a waiting remote request looks again: at its deadline, at the
/// group's next timed change (by the broker's clock), or every 100 ms (a
/// manual clock moves without waking anyone).
fn park_deadline(deadline: Instant, wake_at_ms: Option<i64>, now_ms: i64) -> Instant {
    let mut at = deadline.min(Instant::now() + Duration::from_millis(100));
    if let Some(w) = wake_at_ms {
        let ms = w.saturating_sub(now_ms).max(1) as u64;
        if let Some(t) = Instant::now().checked_add(Duration::from_millis(ms)) {
            at = at.min(t);
        }
    }
    at
}

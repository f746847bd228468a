//! [`ConsumerGroup`]: the admin handle on one consumer group, as Kafka's
//! `kafka-consumer-groups` sees it (describe, offsets, lag, reset, delete).
//! It lives in the broker layer because it needs the topics as well as the
//! coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::broker::BrokerState;
use crate::error::{Error, Result};
use crate::group::{
    GroupDescription, GroupState, MemberDescription, OffsetAndMetadata, PartitionOffsets, TopicPartition,
};
use crate::log::partition::Partition;

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

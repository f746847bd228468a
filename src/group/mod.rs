//! Consumer groups: the coordinator (members, generations, who holds which
//! partition), the assignors (pure functions), and the offset store kept in
//! the `__consumer_offsets` topic.
//!
//! The group layer sits on the log layer; it sees the broker's topics only
//! through [`TopicView`], so it does not depend on the broker that owns it.

pub(crate) mod assignor;
pub(crate) mod coordinator;
pub(crate) mod offsets;

use std::fmt;

pub use assignor::{Assignor, MemberSubscription};
pub use offsets::{MAX_OFFSET_METADATA_LEN, OffsetAndMetadata};

/// What the coordinator needs to know of the broker's topics.
pub(crate) trait TopicView: Send + Sync {
    /// Bumped after every change to the set of topics or their partition
    /// counts; while it stays, earlier answers stay true.
    fn topics_epoch(&self) -> u64;
    /// The partition count of `topic`, if it exists.
    fn partition_count(&self, topic: &str) -> Option<u32>;
}

/// Longest group id, in bytes: Kafka's limit (a wire string has an `i16`
/// length). The offsets log stores it with a `u16` length.
pub const MAX_GROUP_ID_LEN: usize = 32_767;

/// Name of the internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition index, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Where a group is in its life, as Kafka's `ConsumerGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (committed offsets may remain).
    Empty,
    /// Membership or subscriptions changed: the coordinator is collecting
    /// the members (each one's next poll is its rejoin) before it assigns.
    PreparingRebalance,
    /// The new assignment is made; some members have not picked it up yet.
    CompletingRebalance,
    /// Every member works on the current generation.
    Stable,
    /// Unknown to the broker: no members and no committed offsets.
    Dead,
}

/// What `kafka-consumer-groups --describe` shows for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Where the group is in its life.
    pub state: GroupState,
    /// Rebalances so far (0 if the group never had a member in this run).
    pub generation: u32,
    /// The assignor the group uses (its first member's choice).
    pub assignor: Assignor,
    /// The members in this process, with what each holds.
    pub members: Vec<MemberDescription>,
    /// Every partition with a committed offset or an owner.
    pub partitions: Vec<PartitionOffsets>,
}

/// A member and the partitions it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id (`<client_id>-<n>`).
    pub member_id: String,
    /// Set for static members (KIP-345).
    pub group_instance_id: Option<String>,
    /// The partitions it holds.
    pub partitions: Vec<TopicPartition>,
}

/// Offsets of one partition for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The partition.
    pub partition: TopicPartition,
    /// The group's committed offset (the next to read), if any.
    pub committed: Option<u64>,
    /// The partition's high watermark.
    pub log_end_offset: u64,
    /// `log_end_offset - committed`, when there is a commit.
    pub lag: Option<u64>,
    /// The member id holding the partition, if any.
    pub owner: Option<String>,
}

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in streamlog.
///
/// Fatal for writes until the partition is reopened: [`Error::Poisoned`] (and
/// the failed sync that caused it, reported once as [`Error::Io`] with
/// `op: "sync"`). Retryable: [`Error::Io`] from a full disk (the failed append
/// wrote nothing that readers or recovery will ever see),
/// [`Error::OffsetOutOfRange`]. The rest describe bad input or bad files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed. `op` says what we were doing.
    #[error("{op} {path}: {source}")]
    Io {
        /// What streamlog was doing (`"open"`, `"write"`, `"sync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Another handle, in this process or another, holds the directory.
    #[error("{path} is locked by another streamlog handle")]
    Locked {
        /// The locked directory.
        path: PathBuf,
    },

    /// The offset is below the log start or above the high watermark.
    #[error("offset {requested} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// The log start offset at the time.
        start: u64,
        /// The high watermark (next offset to be written) at the time.
        end: u64,
    },

    /// Stored bytes fail their checksum or do not parse.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The damaged file (or directory).
        path: PathBuf,
        /// Byte position in that file.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// A batch that passed its checksum holds a record that does not decode
    /// (written by a broken writer).
    #[error("corrupt record in batch at offset {base_offset}: {reason}")]
    CorruptBatch {
        /// The first offset of the batch.
        base_offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A file written by a newer streamlog (or not by streamlog at all).
    #[error("{path} at byte {position}: unsupported format version {version}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Byte position of the version byte.
        position: u64,
        /// The version found.
        version: u8,
    },

    /// An earlier sync failed, so the page cache can no longer be trusted;
    /// reopen the partition to recover from what reached the disk.
    #[error("partition {path} refuses writes after a failed sync; reopen it")]
    Poisoned {
        /// The partition's directory.
        path: PathBuf,
    },

    /// The handle was closed.
    #[error("the handle is closed")]
    Closed,

    /// An option is out of its documented range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// One append is larger than a segment may hold.
    #[error("a batch of {size} bytes exceeds the segment limit of {max} bytes")]
    RecordTooLarge {
        /// The encoded size of the batch, in bytes.
        size: u64,
        /// The most a segment can take, in bytes.
        max: u64,
    },

    /// A record's timestamp is outside what the partition accepts: negative
    /// (but for `-1`, Kafka's "no timestamp"), past
    /// [`MAX_TIMESTAMP`](crate::MAX_TIMESTAMP), or outside the
    /// `timestamp_before_max` / `timestamp_after_max` window around the
    /// log's clock (`now`). Nothing of the batch was appended.
    #[error("record timestamp {timestamp} is invalid (now {now}): {reason}")]
    InvalidTimestamp {
        /// The rejected timestamp (ms since the Unix epoch).
        timestamp: i64,
        /// The log's clock when it was checked (ms since the Unix epoch).
        now: i64,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// `append` was called with no records.
    #[error("a batch needs at least one record")]
    EmptyBatch,

    /// No topic of that name exists.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The topic name.
        topic: String,
    },

    /// `create_topic` of a name already taken.
    #[error("topic {topic:?} already exists")]
    TopicExists {
        /// The topic name.
        topic: String,
    },

    /// A topic name outside Kafka's rules (1 to 249 of `[a-zA-Z0-9._-]`,
    /// not `.` or `..`).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A partition index at or past the topic's partition count.
    #[error("topic {topic:?} has {count} partitions; there is no partition {partition}")]
    UnknownPartition {
        /// The topic name.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// The topic's partition count.
        count: u32,
    },

    /// A non-empty directory that streamlog did not create.
    #[error("{path} is not a streamlog directory")]
    NotAStreamlogDirectory {
        /// The directory.
        path: PathBuf,
    },

    /// A commit from a group member that is no longer current: the group
    /// rebalanced (or the member was removed) since it last polled, or it
    /// does not hold the partition. Poll again, then retry.
    #[error(
        "commit rejected for group {group:?}: member generation {member_generation}, group generation {group_generation}"
    )]
    StaleGeneration {
        /// The group id.
        group: String,
        /// The generation the member last joined.
        member_generation: u32,
        /// The group's current generation.
        group_generation: u32,
    },

    /// The group has members; it cannot be deleted or reset now, and a
    /// consumer outside it (no subscription) cannot commit for it.
    #[error("group {group:?} has active members")]
    GroupNotEmpty {
        /// The group id.
        group: String,
    },

    /// Another live member of the group has this `group_instance_id`
    /// (static membership, KIP-345). Close it first; a member that closed
    /// keeps its place, and its assignment, for its session timeout.
    #[error("group {group:?} already has a live member with instance id {instance_id:?}")]
    FencedInstanceId {
        /// The group id.
        group: String,
        /// The `group_instance_id` already in use.
        instance_id: String,
    },

    /// No group of this id has members or committed offsets.
    #[error("unknown group {group:?}")]
    UnknownGroup {
        /// The group id.
        group: String,
    },

    /// The consumer is not assigned this partition.
    #[error("partition {partition} of topic {topic:?} is not assigned to this consumer")]
    NotAssigned {
        /// The topic name.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// No committed offset and `auto_offset_reset` is `Error`, or the
    /// committed offset is out of range.
    #[error("no valid committed offset for partition {partition} of topic {topic:?}")]
    NoOffset {
        /// The topic name.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// A consumer group id longer than Kafka's limit
    /// ([`MAX_GROUP_ID_LEN`](crate::MAX_GROUP_ID_LEN) bytes).
    #[error("a group id of {len} bytes exceeds the limit of {max} bytes")]
    GroupIdTooLong {
        /// The id's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// A group request from a member the group does not know (removed when
    /// its session ran out, or never joined): join again as a new member
    /// (Kafka's `UNKNOWN_MEMBER_ID`).
    #[error("member {member_id:?} is not in group {group:?}")]
    UnknownMember {
        /// The group id.
        group: String,
        /// The member id.
        member_id: String,
    },

    /// The group is rebalancing (or has more to hand this member): rejoin
    /// (Kafka's `REBALANCE_IN_PROGRESS`). Retryable.
    #[error("group {group:?} is rebalancing: rejoin")]
    RebalanceInProgress {
        /// The group id.
        group: String,
    },

    /// Metadata committed with an offset longer than
    /// [`MAX_OFFSET_METADATA_LEN`](crate::MAX_OFFSET_METADATA_LEN) bytes
    /// (Kafka's `OFFSET_METADATA_TOO_LARGE`). Nothing was committed.
    #[error("offset metadata of {len} bytes exceeds the limit of {max} bytes")]
    OffsetMetadataTooLarge {
        /// The metadata's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// A topic of more partitions than
    /// [`MAX_PARTITIONS`](crate::MAX_PARTITIONS).
    #[error("{requested} partitions exceed the limit of {max} per topic")]
    TooManyPartitions {
        /// The partition count asked for.
        requested: u32,
        /// The limit per topic.
        max: u32,
    },

    /// [`Consumer::wakeup`](crate::Consumer::wakeup) interrupted (or
    /// preceded) this `poll`. The consumer stays usable.
    #[error("the poll was interrupted by wakeup()")]
    Wakeup,

    /// A [`BatchingProducer`](crate::BatchingProducer)'s buffer has no
    /// room: its records not yet delivered, with the room its clones
    /// reserved and are using, reach `max`. Retry later, or use the send
    /// that waits for room. Retryable.
    #[error("the producer's buffer is full (max_queued {max})")]
    QueueFull {
        /// The buffer's limit, in records
        /// ([`BatchingConfig::max_queued`](crate::BatchingConfig::max_queued)).
        max: usize,
    },

    /// The batch a record of a [`BatchingProducer`](crate::BatchingProducer)
    /// was appended with failed with this error (shared by its records). A
    /// batch too large for one append, or one with a timestamp outside the
    /// topic's window, is appended in parts first: then only the part that
    /// failed (a record too large on its own, the record with that
    /// timestamp) reports it.
    #[error("the batch failed: {0}")]
    BatchFailed(std::sync::Arc<Error>),

    /// A directory or metadata file written by a newer streamlog.
    #[error("{path}: unsupported format version {version}")]
    UnsupportedFormat {
        /// The directory or file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },

    /// A typed key or value that its [`Codec`](crate::Codec) rejects (a
    /// poison record): `part` is `"key"` or `"value"`. Only this record is
    /// affected; the consumer's position is already past it.
    #[error("cannot decode the {part} of {topic}:{partition}:{offset}: {reason}")]
    Decode {
        /// The record's topic.
        topic: String,
        /// The record's partition.
        partition: u32,
        /// The record's offset.
        offset: u64,
        /// `"key"` or `"value"`.
        part: &'static str,
        /// The codec's error.
        reason: String,
    },

    /// A typed key or value that its [`Codec`](crate::Codec) could not
    /// encode; nothing was sent.
    #[error("cannot encode a {part} for topic {topic:?}: {reason}")]
    Encode {
        /// The topic it was for.
        topic: String,
        /// `"key"` or `"value"`.
        part: &'static str,
        /// The codec's error.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// True for errors caused by a full disk or a file size limit.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge)
                    || matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EFBIG | libc::EDQUOT))
            }
            _ => false,
        }
    }
}

/// `Result` with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Topics: a name, a configuration and a set of partitions.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::log::options::{Durability, PartitionOptions};
use crate::log::partition::Partition;
use crate::log::record::TimestampType;
use crate::topic_name::TopicName;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Most partitions one topic may have. Every partition is a directory
/// with open files and a mapping, so a count in the millions is a mistake
/// that would take minutes to fail; this limit makes it fail at once.
pub const MAX_PARTITIONS: u32 = 10_000;

/// Checks a topic name against Kafka's rules: 1 to 249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidTopicName { name: name.to_owned(), reason });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// What happens to old records of a topic (Kafka's `cleanup.policy`).
/// Applied by maintenance ([`Broker::run_maintenance`](crate::Broker::run_maintenance),
/// or the maintenance thread), to sealed segments only.
///
/// A compacted topic keeps the latest value per key, at its offset:
///
/// ```
/// use std::time::Duration;
/// use streamlog::{Broker, BrokerOptions, CleanupPolicy, ConsumerConfig, ProducerRecord, TopicConfig, TopicPartition};
/// let broker = Broker::temporary_with(BrokerOptions::default().fsync(false).maintenance_interval(None))?;
/// let config = TopicConfig::default().cleanup_policy(CleanupPolicy::Compact).min_cleanable_dirty_ratio(0.0);
/// let topic = broker.create_topic("prices", config)?;
/// let producer = broker.producer();
/// for (i, price) in [10, 11, 20, 12, 21].iter().enumerate() {
///     let item = if i % 2 == 0 { "apple" } else { "pear" };
///     producer.send(ProducerRecord::new("prices", price.to_string()).key(item))?;
/// }
/// producer.send(ProducerRecord::tombstone("prices", "pear"))?; // deletes "pear" (after `delete_retention`)
/// topic.partition(0)?.roll()?; // the active segment is never compacted; seal it now
/// let report = broker.run_maintenance()?;
/// assert_eq!(report.records_compacted, 4);
///
/// let tp = TopicPartition::new("prices", 0);
/// let mut consumer = broker.consumer(ConsumerConfig::default())?;
/// consumer.assign(&[tp.clone()])?;
/// consumer.seek_to_beginning(&[])?;
/// let left: Vec<_> = consumer.poll(Duration::from_millis(50))?.into_iter().map(|r| (r.offset, r.value)).collect();
/// assert_eq!(left, [(4, Some("21".into())), (5, None)]);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Whole old segments are deleted by time and size retention. Default.
    #[default]
    Delete,
    /// Only the latest record per key is kept.
    Compact,
    /// Both: compacted, and old segments deleted by retention.
    CompactDelete,
}

impl CleanupPolicy {
    fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    fn parse(s: &str) -> Option<CleanupPolicy> {
        match s {
            "delete" => Some(CleanupPolicy::Delete),
            "compact" => Some(CleanupPolicy::Compact),
            "compact,delete" | "delete,compact" => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }
}

/// A topic's configuration, persisted with the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// Number of partitions, 1 to [`MAX_PARTITIONS`]; may only grow
    /// ([`crate::Broker::add_partitions`]). Default: 1.
    pub partitions: u32,
    /// See [`PartitionOptions::segment_bytes`] (Kafka's `segment.bytes`). Default: 1 GiB.
    pub segment_bytes: u32,
    /// See [`PartitionOptions::segment_age`] (Kafka's `segment.ms`). Default: 7 days.
    pub segment_age: Duration,
    /// See [`PartitionOptions::index_interval_bytes`] (Kafka's `index.interval.bytes`). Default: 4096.
    pub index_interval_bytes: u32,
    /// See [`PartitionOptions::max_index_bytes`] (Kafka's `segment.index.bytes`). Default: 10 MiB.
    pub max_index_bytes: u32,
    /// When appends reach the disk (Kafka's `flush.ms` / `flush.messages`).
    /// Default: [`Durability::Os`].
    pub durability: Durability,
    /// Delete segments whose newest record is older than this (Kafka's
    /// `retention.ms`); `None` keeps them forever. Default: 7 days.
    pub retention: Option<Duration>,
    /// Delete the oldest segments while a partition is larger than this
    /// (Kafka's `retention.bytes`). Default: `None`, no limit.
    pub retention_bytes: Option<u64>,
    /// Delete old segments, compact, or both (Kafka's `cleanup.policy`).
    /// Default: [`CleanupPolicy::Delete`].
    pub cleanup_policy: CleanupPolicy,
    /// Compaction runs once at least this share of a partition's cleanable
    /// bytes was written since it last ran (Kafka's
    /// `min.cleanable.dirty.ratio`), within 0 ..= 1. Default: 0.5.
    pub min_cleanable_dirty_ratio: f64,
    /// Records younger than this are not compacted (Kafka's
    /// `min.compaction.lag.ms`). Default: 0.
    pub min_compaction_lag: Duration,
    /// Compaction drops a tombstone once its timestamp is older than this
    /// (Kafka's `delete.retention.ms`, which counts from the compaction
    /// instead; see [`crate::CompactionOptions::delete_retention`]).
    /// Default: 1 day.
    pub delete_retention: Duration,
    /// See [`PartitionOptions::timestamp_type`] (Kafka's
    /// `message.timestamp.type`). Default: [`TimestampType::CreateTime`].
    pub timestamp_type: TimestampType,
    /// See [`PartitionOptions::timestamp_before_max`] (Kafka's
    /// `message.timestamp.before.max.ms`). Default: `None`, no limit.
    pub timestamp_before_max: Option<Duration>,
    /// See [`PartitionOptions::timestamp_after_max`] (Kafka's
    /// `message.timestamp.after.max.ms`). Default: `None`, no limit.
    pub timestamp_after_max: Option<Duration>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        let p = PartitionOptions::default();
        TopicConfig {
            partitions: 1,
            segment_bytes: p.segment_bytes,
            segment_age: p.segment_age,
            index_interval_bytes: p.index_interval_bytes,
            max_index_bytes: p.max_index_bytes,
            durability: p.durability,
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag: Duration::ZERO,
            delete_retention: Duration::from_secs(24 * 3600),
            timestamp_type: p.timestamp_type,
            timestamp_before_max: p.timestamp_before_max,
            timestamp_after_max: p.timestamp_after_max,
        }
    }
}

/// A duration as stored: whole milliseconds, rounded up (so that a positive
/// duration stays positive) and saturated.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

const META_HEADER: &str = "streamlog-topic";
const META_VERSION: u32 = 1;

impl TopicConfig {
    /// A default configuration with `partitions` partitions.
    pub fn with_partitions(partitions: u32) -> TopicConfig {
        TopicConfig { partitions, ..TopicConfig::default() }
    }

    /// Sets the partition count (Kafka's `num.partitions` / `--partitions`). Default: 1.
    #[must_use]
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self
    }

    /// Sets the segment size in bytes (Kafka's `segment.bytes`). Default: 1 GiB.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u32) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets the age at which the active segment rolls (Kafka's `segment.ms`). Default: 7 days.
    #[must_use]
    pub fn segment_age(mut self, age: Duration) -> Self {
        self.segment_age = age;
        self
    }

    /// Sets the bytes between offset-index entries (Kafka's `index.interval.bytes`). Default: 4096.
    #[must_use]
    pub fn index_interval_bytes(mut self, bytes: u32) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Sets when appends are synced (Kafka's `flush.ms` / `flush.messages`). Default: [`Durability::Os`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets time retention (Kafka's `retention.ms`; `None` is `-1`). Default: 7 days.
    #[must_use]
    pub fn retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// Sets size retention per partition in bytes (Kafka's `retention.bytes`). Default: `None`.
    #[must_use]
    pub fn retention_bytes(mut self, bytes: Option<u64>) -> Self {
        self.retention_bytes = bytes;
        self
    }

    /// Sets the cleanup policy (Kafka's `cleanup.policy`). Default: [`CleanupPolicy::Delete`].
    #[must_use]
    pub fn cleanup_policy(mut self, policy: CleanupPolicy) -> Self {
        self.cleanup_policy = policy;
        self
    }

    /// Sets Kafka's `min.cleanable.dirty.ratio`, within 0 ..= 1. Default: 0.5.
    #[must_use]
    pub fn min_cleanable_dirty_ratio(mut self, ratio: f64) -> Self {
        self.min_cleanable_dirty_ratio = ratio;
        self
    }

    /// Sets Kafka's `min.compaction.lag.ms`. Default: 0.
    #[must_use]
    pub fn min_compaction_lag(mut self, lag: Duration) -> Self {
        self.min_compaction_lag = lag;
        self
    }

    /// Sets how long after its timestamp a tombstone is kept by compaction
    /// (Kafka's `delete.retention.ms`, counted there from the compaction). Default: 1 day.
    #[must_use]
    pub fn delete_retention(mut self, retention: Duration) -> Self {
        self.delete_retention = retention;
        self
    }

    /// Sets Kafka's `message.timestamp.type`. Default: [`TimestampType::CreateTime`].
    #[must_use]
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Sets Kafka's `message.timestamp.before.max.ms`. Default: `None`, no limit.
    #[must_use]
    pub fn timestamp_before_max(mut self, max: Option<Duration>) -> Self {
        self.timestamp_before_max = max;
        self
    }

    /// Sets Kafka's `message.timestamp.after.max.ms`. Default: `None`, no limit.
    #[must_use]
    pub fn timestamp_after_max(mut self, max: Option<Duration>) -> Self {
        self.timestamp_after_max = max;
        self
    }

    /// Whether old segments are deleted by retention.
    pub fn deletes(&self) -> bool {
        matches!(self.cleanup_policy, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the topic is compacted.
    pub fn compacts(&self) -> bool {
        matches!(self.cleanup_policy, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    pub(crate) fn compaction_options(&self) -> crate::CompactionOptions {
        crate::CompactionOptions {
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
            min_compaction_lag: self.min_compaction_lag,
            delete_retention: self.delete_retention,
            ..crate::CompactionOptions::default()
        }
    }

    /// The configuration as it will be stored: durations in whole
    /// milliseconds (rounded up). What [`crate::Topic::config`] returns.
    pub fn normalized(&self) -> TopicConfig {
        let norm = |d: Duration| Duration::from_millis(ms(d));
        TopicConfig {
            segment_age: norm(self.segment_age),
            durability: match self.durability {
                Durability::Interval(d) => Durability::Interval(norm(d)),
                other => other,
            },
            retention: self.retention.map(norm),
            min_compaction_lag: norm(self.min_compaction_lag),
            delete_retention: norm(self.delete_retention),
            timestamp_before_max: self.timestamp_before_max.map(norm),
            timestamp_after_max: self.timestamp_after_max.map(norm),
            ..self.clone()
        }
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 {
            return Err(Error::InvalidConfig("a topic needs at least one partition".into()));
        }
        if self.partitions > MAX_PARTITIONS {
            return Err(Error::TooManyPartitions { requested: self.partitions, max: MAX_PARTITIONS });
        }
        if self.retention.is_some_and(|r| r.is_zero()) {
            return Err(Error::InvalidConfig("retention must be positive (or None)".into()));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(Error::InvalidConfig("min_cleanable_dirty_ratio must be within 0 ..= 1".into()));
        }
        self.partition_options().validate()
    }

    /// The options its partitions open with (the clock is the broker's).
    pub(crate) fn partition_options(&self) -> PartitionOptions {
        PartitionOptions::default()
            .segment_bytes(self.segment_bytes)
            .segment_age(self.segment_age)
            .index_interval_bytes(self.index_interval_bytes)
            .max_index_bytes(self.max_index_bytes)
            .durability(self.durability)
            .timestamp_type(self.timestamp_type)
            .timestamp_before_max(self.timestamp_before_max)
            .timestamp_after_max(self.timestamp_after_max)
    }

    /// The metadata file: `key=value` lines after a header line, ending
    /// with a CRC-32 of everything before it.
    pub(crate) fn encode(&self) -> String {
        let durability = match self.durability {
            Durability::Os => "os".to_owned(),
            Durability::Sync => "sync".to_owned(),
            Durability::Interval(d) => format!("interval:{}", ms(d)),
        };
        let opt = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        let mut s = format!(
            "{META_HEADER} {META_VERSION}\npartitions={}\nsegment_bytes={}\nsegment_age_ms={}\n\
             index_interval_bytes={}\nmax_index_bytes={}\ndurability={durability}\nretention_ms={}\n\
             retention_bytes={}\ncleanup_policy={}\nmin_cleanable_dirty_ratio={}\n\
             min_compaction_lag_ms={}\ndelete_retention_ms={}\ntimestamp_type={}\n\
             timestamp_before_max_ms={}\ntimestamp_after_max_ms={}\n",
            self.partitions,
            self.segment_bytes,
            ms(self.segment_age),
            self.index_interval_bytes,
            self.max_index_bytes,
            opt(self.retention.map(ms)),
            opt(self.retention_bytes),
            self.cleanup_policy.as_str(),
            self.min_cleanable_dirty_ratio,
            ms(self.min_compaction_lag),
            ms(self.delete_retention),
            match self.timestamp_type {
                TimestampType::CreateTime => "create_time",
                TimestampType::LogAppendTime => "log_append_time",
            },
            opt(self.timestamp_before_max.map(ms)),
            opt(self.timestamp_after_max.map(ms)),
        );
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(&format!("crc={crc:08x}\n"));
        s
    }

    pub(crate) fn decode(text: &str, path: &Path) -> Result<TopicConfig> {
        let corrupt = |reason: &str| Error::Corrupt { path: path.to_owned(), position: 0, reason: reason.to_owned() };
        let body_end = text.rfind("crc=").ok_or_else(|| corrupt("no checksum line"))?;
        let stored = u32::from_str_radix(text[body_end + 4..].trim(), 16).map_err(|_| corrupt("bad checksum line"))?;
        // Exactly as written: a flipped bit in the line itself ('a' to 'A',
        // a newline) must not pass either.
        if text[body_end + 4..] != format!("{stored:08x}\n") {
            return Err(corrupt("bad checksum line"));
        }
        if crc32fast::hash(&text.as_bytes()[..body_end]) != stored {
            return Err(corrupt("checksum mismatch"));
        }
        let mut lines = text[..body_end].lines();
        let header = lines.next().unwrap_or_default();
        let version = header.strip_prefix(META_HEADER).map(str::trim).and_then(|v| v.parse::<u32>().ok());
        match version {
            Some(META_VERSION) => {}
            Some(version) => return Err(Error::UnsupportedFormat { path: path.to_owned(), version }),
            None => return Err(corrupt("not a topic metadata file")),
        }
        let mut c = TopicConfig::default();
        for line in lines {
            let (key, value) = line.split_once('=').ok_or_else(|| corrupt("a line without '='"))?;
            let num = || value.parse::<u64>().map_err(|_| corrupt("a bad number"));
            let opt = || if value == "none" { Ok(None) } else { num().map(Some) };
            match key {
                "partitions" => c.partitions = num()? as u32,
                "segment_bytes" => c.segment_bytes = num()? as u32,
                "segment_age_ms" => c.segment_age = Duration::from_millis(num()?),
                "index_interval_bytes" => c.index_interval_bytes = num()? as u32,
                "max_index_bytes" => c.max_index_bytes = num()? as u32,
                "durability" => {
                    c.durability = match value {
                        "os" => Durability::Os,
                        "sync" => Durability::Sync,
                        v => {
                            let ms = v.strip_prefix("interval:").and_then(|ms| ms.parse().ok());
                            Durability::Interval(Duration::from_millis(ms.ok_or_else(|| corrupt("bad durability"))?))
                        }
                    }
                }
                "retention_ms" => c.retention = opt()?.map(Duration::from_millis),
                "retention_bytes" => c.retention_bytes = opt()?,
                "cleanup_policy" => {
                    c.cleanup_policy = CleanupPolicy::parse(value).ok_or_else(|| corrupt("bad policy"))?
                }
                "min_cleanable_dirty_ratio" => {
                    c.min_cleanable_dirty_ratio = value.parse().map_err(|_| corrupt("a bad ratio"))?;
                }
                "min_compaction_lag_ms" => c.min_compaction_lag = Duration::from_millis(num()?),
                "delete_retention_ms" => c.delete_retention = Duration::from_millis(num()?),
                "timestamp_type" => {
                    c.timestamp_type = match value {
                        "create_time" => TimestampType::CreateTime,
                        "log_append_time" => TimestampType::LogAppendTime,
                        _ => return Err(corrupt("bad timestamp type")),
                    }
                }
                "timestamp_before_max_ms" => c.timestamp_before_max = opt()?.map(Duration::from_millis),
                "timestamp_after_max_ms" => c.timestamp_after_max = opt()?.map(Duration::from_millis),
                // Keys from a newer minor version are ignored.
                _ => {}
            }
        }
        c.validate().map_err(|e| corrupt(&e.to_string()))?;
        Ok(c)
    }
}

/// A handle to a topic. Cheap to clone; every clone is the same topic.
#[derive(Clone)]
pub struct Topic {
    pub(crate) inner: Arc<TopicInner>,
}

pub(crate) struct TopicInner {
    pub name: TopicName,
    pub dir: PathBuf,
    pub config: RwLock<TopicConfig>,
    pub partitions: RwLock<Arc<Vec<Arc<Partition>>>>,
    pub deleted: AtomicBool,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The topic's configuration (a snapshot).
    pub fn config(&self) -> TopicConfig {
        self.inner.config.read().clone()
    }

    /// The number of partitions now (it grows with [`Broker::add_partitions`](crate::Broker::add_partitions)).
    pub fn partition_count(&self) -> u32 {
        self.inner.partitions.read().len() as u32
    }

    /// One partition's log. [`Error::UnknownPartition`] if out of range,
    /// [`Error::UnknownTopic`] once the topic was deleted.
    pub fn partition(&self, index: u32) -> Result<Arc<Partition>> {
        if self.inner.deleted.load(Ordering::Acquire) {
            return Err(Error::UnknownTopic { topic: self.name().to_owned() });
        }
        let parts = self.inner.partitions.read();
        parts.get(index as usize).cloned().ok_or_else(|| Error::UnknownPartition {
            topic: self.name().to_owned(),
            partition: index,
            count: parts.len() as u32,
        })
    }

    /// The current partition list, shared (no per-partition clones).
    pub(crate) fn partitions_snapshot(&self) -> Arc<Vec<Arc<Partition>>> {
        Arc::clone(&self.inner.partitions.read())
    }

    /// All partitions, in order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.inner.partitions.read().to_vec()
    }

    /// Each partition's high watermark, in partition order.
    pub fn end_offsets(&self) -> Vec<u64> {
        self.inner.partitions.read().iter().map(|p| p.high_watermark()).collect()
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic").field("name", &self.name()).field("partitions", &self.partition_count()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        for ok in ["a", "orders", "my.topic_v2-x", "__consumer_offsets", &"x".repeat(249)] {
            validate_topic_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "with space", "slash/x", "ümlaut", "star*", &"x".repeat(250)] {
            assert!(matches!(validate_topic_name(bad), Err(Error::InvalidTopicName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn config_round_trips_and_rejects_damage() {
        let c = TopicConfig::with_partitions(6)
            .segment_bytes(1 << 20)
            .durability(Durability::Interval(Duration::from_millis(250)))
            .retention(None)
            .retention_bytes(Some(1 << 30))
            .cleanup_policy(CleanupPolicy::CompactDelete)
            .min_cleanable_dirty_ratio(0.25)
            .min_compaction_lag(Duration::from_secs(60))
            .delete_retention(Duration::from_secs(7))
            .timestamp_type(TimestampType::LogAppendTime)
            .timestamp_before_max(Some(Duration::from_secs(3600)))
            .timestamp_after_max(None);
        let text = c.encode();
        let path = Path::new("meta");
        assert_eq!(TopicConfig::decode(&text, path).unwrap(), c);
        let tampered = text.replace("partitions=6", "partitions=7");
        assert!(matches!(TopicConfig::decode(&tampered, path), Err(Error::Corrupt { .. })));
        let newer = {
            let body = text[..text.rfind("crc=").unwrap()].replace("streamlog-topic 1", "streamlog-topic 9");
            format!("{body}crc={:08x}\n", crc32fast::hash(body.as_bytes()))
        };
        assert!(matches!(TopicConfig::decode(&newer, path), Err(Error::UnsupportedFormat { version: 9, .. })));
        assert!(TopicConfig::decode("", path).is_err());
    }

    #[test]
    fn odd_durations_survive_the_round_trip() {
        let c = TopicConfig::default()
            .retention(Some(Duration::from_micros(500)))
            .segment_age(Duration::MAX)
            .durability(Durability::Interval(Duration::from_nanos(1)))
            .delete_retention(Duration::from_nanos(1_500_001));
        let n = c.normalized();
        n.validate().unwrap();
        assert_eq!(n.retention, Some(Duration::from_millis(1)));
        assert_eq!(n.delete_retention, Duration::from_millis(2));
        assert_eq!(TopicConfig::decode(&c.encode(), Path::new("m")).unwrap(), n);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert!(TopicConfig::with_partitions(0).validate().is_err());
        assert!(TopicConfig::default().segment_bytes(10).validate().is_err());
        assert!(TopicConfig::default().retention(Some(Duration::ZERO)).validate().is_err());
    }
}

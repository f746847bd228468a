//! [`Broker::stats`]: a snapshot of every partition, group and counter,
//! cheap enough to export every few seconds.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::log::stats::LogStats;

/// The broker's own counters (the partitions keep theirs).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub maintenance_runs: AtomicU64,
    pub maintenance_failures: AtomicU64,
}

impl Counters {
    /// Relaxed: statistics, read on their own.
    pub fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A snapshot of a broker, from [`Broker::stats`].
///
/// The counters run from the broker's open; sums over partitions cover
/// the partitions that exist now (a deleted topic's counts go with it).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Every partition of every topic, the internal offsets topic included,
    /// by topic name then partition.
    pub partitions: Vec<PartitionStats>,
    /// Every group with members in this process or committed offsets.
    pub groups: Vec<GroupStats>,
    /// Successful appends (batches) to all partitions.
    pub appends: u64,
    /// Records in those batches.
    pub records_appended: u64,
    /// Bytes in those batches, as stored.
    pub bytes_appended: u64,
    /// Partition reads (a consumer's poll reads each partition it fetches).
    pub reads: u64,
    /// Syncs of partition data (see [`LogStats::fsyncs`]).
    pub fsyncs: u64,
    /// Rebalances of all groups (each starts a new generation).
    pub rebalances: u64,
    /// Maintenance passes (retention and compaction) run, by the thread or
    /// [`Broker::run_maintenance`].
    pub maintenance_runs: u64,
    /// Partitions whose maintenance failed, summed over the passes.
    pub maintenance_failures: u64,
}

/// One partition in [`BrokerStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The topic's name.
    pub topic: String,
    /// The partition's index in its topic.
    pub partition: u32,
    /// Its offsets, files and counters.
    pub log: LogStats,
}

/// One consumer group in [`BrokerStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group's id.
    pub group_id: String,
    /// Its generation (0 for a group with committed offsets only).
    pub generation: u32,
    /// Members in this process now.
    pub members: usize,
    /// Records between the committed offsets and the log ends, summed over
    /// the partitions with a committed offset.
    pub lag: u64,
}

impl Broker {
    /// A snapshot of every partition (log start and end, size, segments,
    /// mappings, counters), every group (generation, members, lag) and
    /// the broker's counters. It takes the topic registry's and the
    /// groups' locks briefly and a `stat` per unmapped sealed segment;
    /// appends and reads never wait for it. Fails only once closed.
    ///
    /// ```
    /// use streamlog::{Broker, ProducerRecord, TopicConfig};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("orders", TopicConfig::with_partitions(2))?;
    /// broker.producer().send(ProducerRecord::new("orders", "created").partition(1))?;
    /// let stats = broker.stats()?;
    /// assert_eq!(stats.appends, 1);
    /// let p1 = stats.partitions.iter().find(|p| p.topic == "orders" && p.partition == 1).unwrap();
    /// assert_eq!(p1.log.log_end_offset, 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> crate::Result<BrokerStats> {
        let inner = &**self.state();
        inner.check_open()?;
        let topics: Vec<_> = inner.topics.read().values().cloned().collect();
        let mut stats = BrokerStats::default();
        for topic in &topics {
            for (i, p) in topic.partitions().iter().enumerate() {
                let log = p.stats();
                // The offsets topic's appends are commits, not produced data.
                if topic.name() != OFFSETS_TOPIC {
                    stats.appends += log.appends;
                    stats.records_appended += log.records_appended;
                    stats.bytes_appended += log.bytes_appended;
                    stats.reads += log.reads;
                }
                stats.fsyncs += log.fsyncs;
                stats.partitions.push(PartitionStats { topic: topic.name().to_owned(), partition: i as u32, log });
            }
        }
        let coordinator = inner.coordinator();
        for group_id in coordinator.group_ids() {
            let Ok(d) = self.describe_group(&group_id) else { continue };
            stats.groups.push(GroupStats {
                group_id,
                generation: d.generation,
                members: d.members.len(),
                lag: d.partitions.iter().filter_map(|p| p.lag).sum(),
            });
        }
        stats.rebalances = coordinator.rebalances.load(Ordering::Relaxed);
        stats.maintenance_runs = inner.stats.maintenance_runs.load(Ordering::Relaxed);
        stats.maintenance_failures = inner.stats.maintenance_failures.load(Ordering::Relaxed);
        Ok(stats)
    }
}

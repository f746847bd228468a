//! Producing: records addressed to a topic, placed on a partition the way
//! Kafka's Java client places them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::broker::BrokerState;
use crate::client::partitioner::{DefaultPartitioner, NoKeyStrategy, Partitioner};
use crate::error::{Error, Result};
use crate::log::partition::timestamp_out_of_range;
use crate::log::record::{Header, Record};
use crate::topic_name::TopicName;

/// How a [`Producer`] places and stamps records.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Default: [`DefaultPartitioner`] with [`NoKeyStrategy::default`] (sticky).
    pub partitioner: Arc<dyn Partitioner>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig { partitioner: Arc::new(DefaultPartitioner::default()) }
    }
}

impl ProducerConfig {
    /// Sets the partitioner (Kafka's `partitioner.class`).
    #[must_use]
    pub fn partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// The default partitioner with this strategy for records without a key.
    #[must_use]
    pub fn no_key_strategy(self, strategy: NoKeyStrategy) -> Self {
        self.partitioner(Arc::new(DefaultPartitioner::new(strategy)))
    }
}

/// A record addressed to a topic (and optionally a partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic it goes to: a literal (`&'static str`) is kept as it is,
    /// without an allocation per record; a `String` is moved in.
    pub topic: Cow<'static, str>,
    /// Explicit partition; otherwise the partitioner's choice (the default
    /// partitioner hashes the key, if any).
    pub partition: Option<u32>,
    /// Decides the partition (murmur2, as Kafka) and is what compaction keeps the latest of.
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Application headers, in order.
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; `None` takes the broker clock's
    /// time at `send` (Kafka's create time).
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value, no key, no headers, the time of the send as timestamp.
    /// `topic` is a literal (kept as it is, no allocation) or a `String`; a
    /// borrowed name that is not `'static` goes in as `name.to_owned()`.
    pub fn new(topic: impl Into<Cow<'static, str>>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord { topic: topic.into(), value: Some(value.into()), ..ProducerRecord::default() }
    }

    /// A record with a key and no value (deletes the key when compacted).
    pub fn tombstone(topic: impl Into<Cow<'static, str>>, key: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord { topic: topic.into(), key: Some(key.into()), ..ProducerRecord::default() }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sends to this partition, bypassing the partitioner.
    #[must_use]
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch (Kafka's create time).
    #[must_use]
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Appends a header (`None`: a header with a null value).
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(Header { key: key.into(), value });
        self
    }

    /// Same as [`ProducerRecord::key`], named as [`Record::with_key`](crate::Record::with_key).
    #[must_use]
    pub fn with_key(self, key: impl Into<Bytes>) -> Self {
        self.key(key)
    }

    /// Same as [`ProducerRecord::partition`].
    #[must_use]
    pub fn with_partition(self, partition: u32) -> Self {
        self.partition(partition)
    }

    /// Same as [`ProducerRecord::timestamp`].
    #[must_use]
    pub fn with_timestamp(self, timestamp_ms: i64) -> Self {
        self.timestamp(timestamp_ms)
    }

    /// Same as [`ProducerRecord::header`].
    #[must_use]
    pub fn with_header(self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.header(key, value)
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: TopicName,
    /// The partition it was placed on.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
    /// The record's timestamp (as given, or the time of the send).
    pub timestamp: i64,
}

/// The future of [`Producer::send_async`]: where the record landed, once
/// it is as durable as its topic asks.
#[must_use = "the record is sent; the future tells when it is durable"]
#[derive(Debug)]
pub struct SendFuture {
    /// `None` once resolved.
    state: Option<SendState>,
}

#[derive(Debug)]
enum SendState {
    Done(RecordMetadata),
    Failed(Error),
    Syncing { log: Arc<crate::Partition>, meta: RecordMetadata },
}

impl Future for SendFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.state.take() {
            Some(SendState::Done(meta)) => Poll::Ready(Ok(meta)),
            Some(SendState::Failed(e)) => Poll::Ready(Err(e)),
            Some(SendState::Syncing { log, meta }) => match log.poll_synced(meta.offset + 1, cx) {
                Poll::Ready(r) => Poll::Ready(r.map(|()| meta)),
                Poll::Pending => {
                    this.state = Some(SendState::Syncing { log, meta });
                    Poll::Pending
                }
            },
            None => Poll::Ready(Err(Error::InvalidConfig("SendFuture polled after it resolved".into()))),
        }
    }
}

/// Topics a [`Producer`] clone keeps looked up (a service sending to a few
/// topics from one shared producer does not look them up per send).
const CACHED_TOPICS: usize = 8;

/// Records of one `send_batch` bound for one partition.
struct Group {
    topic: Arc<CachedTopic>,
    partition: u32,
    /// Where each record stands in the input.
    indexes: Vec<usize>,
    records: Vec<Record>,
}

/// Sends records to topics. `Send + Sync + Clone`: clones share the
/// partitioner's state and are cheap. Share one between threads, or better,
/// give each thread its own clone: each clone caches its topic lookups, so
/// clones on different threads do not contend on the send path.
pub struct Producer {
    broker: Arc<BrokerState>,
    partitioner: Arc<dyn Partitioner>,
    /// The topics this clone sent to lately (at most [`CACHED_TOPICS`]).
    /// Each clone has its own (a clone per thread shares no cache line with
    /// the others on the send path).
    cache: Mutex<Vec<Arc<CachedTopic>>>,
}

/// A topic lookup, valid while the broker's topics epoch is unchanged.
pub(super) struct CachedTopic {
    epoch: u64,
    /// This cache's own copy of the name, handed out in `RecordMetadata`.
    pub(super) name: TopicName,
    pub(super) partitions: Arc<Vec<Arc<crate::Partition>>>,
    topic: crate::Topic,
}

impl Clone for Producer {
    fn clone(&self) -> Producer {
        Producer {
            broker: Arc::clone(&self.broker),
            partitioner: Arc::clone(&self.partitioner),
            cache: Mutex::new(Vec::new()),
        }
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer").field("partitioner", &self.partitioner).finish()
    }
}

impl Producer {
    pub(crate) fn new(broker: Arc<BrokerState>, config: ProducerConfig) -> Producer {
        Producer { broker, partitioner: config.partitioner, cache: Mutex::new(Vec::new()) }
    }

    /// Appends one record and returns where it landed. The record is
    /// visible to consumers when this returns (and durable per the topic's
    /// durability).
    ///
    /// Errors: [`Error::UnknownTopic`] (unless
    /// [`BrokerOptions::auto_create_topics`](crate::BrokerOptions::auto_create_topics)),
    /// [`Error::UnknownPartition`], [`Error::InvalidTimestamp`],
    /// [`Error::RecordTooLarge`], [`Error::Closed`], and the disk's
    /// [`Error::Io`] / [`Error::Poisoned`].
    ///
    /// ```
    /// use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None))?;
    /// broker.create_topic("orders", TopicConfig::with_partitions(4))?;
    /// let producer = broker.producer();
    /// // Records with the same key go to the same partition, in order.
    /// let a = producer.send(ProducerRecord::new("orders", "created").key("order-17"))?;
    /// let b = producer.send(ProducerRecord::new("orders", "paid").key("order-17").header("source", None))?;
    /// assert_eq!(a.partition, b.partition);
    /// assert_eq!(b.offset, a.offset + 1);
    /// // The partition Kafka's Java client would choose for that key.
    /// assert_eq!(a.partition, streamlog::murmur2_partition(b"order-17", 4));
    /// broker.close()?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        let cached = self.lookup(&record.topic)?;
        self.append_to(&cached, record)
    }

    /// The append of [`Producer::send`], to a topic looked up.
    #[inline]
    fn append_to(&self, cached: &CachedTopic, record: ProducerRecord) -> Result<RecordMetadata> {
        let partition = self.choose(&cached.topic, cached.partitions.len() as u32, &record)?;
        let log = &cached.partitions[partition as usize];
        let timestamp = record.timestamp.unwrap_or_else(|| self.broker.now_ms());
        let rec = Record { key: record.key, value: record.value, timestamp: Some(timestamp), headers: record.headers };
        let at = log.append(std::slice::from_ref(&rec))?;
        Ok(RecordMetadata { topic: cached.name.clone(), partition, offset: at.base_offset, timestamp })
    }

    /// [`Producer::send`] without blocking the thread. The record is
    /// appended (and visible to consumers) when this is called, as an
    /// append to the page cache never waits for the disk; the future
    /// resolves at once, but on a topic with [`crate::Durability::Sync`],
    /// where it resolves when a sync covers the record. Syncs are shared
    /// with every other append waiting for one (group commit) and done by a
    /// thread of the partition, never on the executor's thread. Dropping
    /// the future does not undo the send.
    pub fn send_async(&self, record: ProducerRecord) -> SendFuture {
        let sent = (|| {
            let cached = self.lookup(&record.topic)?;
            let partition = self.choose(&cached.topic, cached.partitions.len() as u32, &record)?;
            let log = &cached.partitions[partition as usize];
            let timestamp = record.timestamp.unwrap_or_else(|| self.broker.now_ms());
            let rec =
                Record { key: record.key, value: record.value, timestamp: Some(timestamp), headers: record.headers };
            let (at, durability) = log.append_unsynced(std::slice::from_ref(&rec))?;
            let meta = RecordMetadata { topic: cached.name.clone(), partition, offset: at.base_offset, timestamp };
            // The durability the append applied, not the topic's setting
            // now (an `alter_topic` in between must not skip the sync).
            Ok(if durability == crate::Durability::Sync {
                SendState::Syncing { log: Arc::clone(log), meta }
            } else {
                SendState::Done(meta)
            })
        })();
        SendFuture { state: Some(sent.unwrap_or_else(SendState::Failed)) }
    }

    /// Where `record` goes (its partition of the topic looked up in `slot`)
    /// and the record to append there, stamped with the time if it has
    /// none (a timestamp no partition accepts is [`Error::InvalidTimestamp`]
    /// at once). `slot` is a cache the caller owns, refreshed here when stale:
    /// no lock is taken and no reference count touched while it is fresh.
    /// Always inlined: it is the batching producer's send path.
    #[inline(always)]
    pub(super) fn place_in(
        &self,
        slot: &mut Option<Arc<CachedTopic>>,
        record: ProducerRecord,
    ) -> Result<(u32, Record)> {
        self.broker.check_open()?;
        // Refused here rather than by the append, which would fail every
        // record batched with this one.
        if let Some(ts) = record.timestamp
            && let Some(reason) = timestamp_out_of_range(ts)
        {
            return Err(Error::InvalidTimestamp { timestamp: ts, now: self.broker.now_ms(), reason });
        }
        let epoch = self.broker.topics_epoch();
        let cached = match slot {
            Some(c) if c.epoch == epoch && *c.name == *record.topic => c,
            _ => slot.insert(self.lookup(&record.topic)?),
        };
        let partition = self.choose(&cached.topic, cached.partitions.len() as u32, &record)?;
        let timestamp = record.timestamp.unwrap_or_else(|| self.broker.now_ms());
        let rec = Record { key: record.key, value: record.value, timestamp: Some(timestamp), headers: record.headers };
        Ok((partition, rec))
    }

    /// [`Producer::place_in`] with this clone's own topic cache, for a
    /// caller that holds no lock of its own while the partitioner runs:
    /// the topic looked up, the partition and the record to append there.
    pub(super) fn place(&self, record: ProducerRecord) -> Result<(Arc<CachedTopic>, u32, Record)> {
        let mut slot = None;
        let (partition, rec) = self.place_in(&mut slot, record)?;
        Ok((slot.expect("placed in a topic"), partition, rec))
    }

    /// [`Error::Closed`] once the broker is closed.
    pub(super) fn check_open(&self) -> Result<()> {
        self.broker.check_open()
    }

    /// The topic `name` with its partitions, from this clone's cache while no
    /// topic changed since, else looked up (and auto-created if enabled).
    fn lookup(&self, name: &str) -> Result<Arc<CachedTopic>> {
        self.broker.check_open()?;
        // Loaded before the lookup: a change racing with it bumps the epoch
        // again, so a stale entry is never taken for current.
        let epoch = self.broker.topics_epoch();
        // The lock is held only to look and to clone: never across an
        // append (a `Sync` one waits for the disk) or a partitioner (which
        // may send through this producer).
        if let Some(c) = self.cache.lock().iter().find(|c| c.epoch == epoch && &*c.name == name) {
            return Ok(Arc::clone(c));
        }
        let topic = self.broker.topic_for_produce(name)?;
        let fresh = Arc::new(CachedTopic {
            epoch,
            name: TopicName::from(name),
            partitions: topic.partitions_snapshot(),
            topic,
        });
        let mut cache = self.cache.lock();
        cache.retain(|c| c.epoch >= epoch && *c.name != *name);
        if cache.len() >= CACHED_TOPICS {
            cache.remove(0);
        }
        cache.push(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Appends many records with one append (one lock acquisition) per
    /// partition they go to. Results come back in the order of `records`.
    /// Records for one partition keep their order. If an append fails, the
    /// partitions appended before it keep their records and the error is
    /// returned.
    pub fn send_batch(&self, records: Vec<ProducerRecord>) -> Result<Vec<RecordMetadata>> {
        let now = self.broker.now_ms();
        let mut groups: Vec<Group> = Vec::new();
        // The batch's distinct topics (usually one), and (topic index,
        // partition) -> index in `groups`.
        let mut topics: Vec<Arc<CachedTopic>> = Vec::new();
        let mut group_of: HashMap<(usize, u32), usize> = HashMap::new();
        let mut placed: Vec<(usize, i64)> = Vec::with_capacity(records.len());
        let mut last = 0;
        for (i, r) in records.into_iter().enumerate() {
            let t = match topics.get(last) {
                Some(c) if *c.name == *r.topic => last,
                _ => match topics.iter().position(|c| *c.name == *r.topic) {
                    Some(t) => t,
                    None => {
                        topics.push(self.lookup(&r.topic)?);
                        topics.len() - 1
                    }
                },
            };
            last = t;
            let cached = &topics[t];
            let partition = self.choose(&cached.topic, cached.partitions.len() as u32, &r)?;
            let timestamp = r.timestamp.unwrap_or(now);
            let rec = Record { key: r.key, value: r.value, timestamp: Some(timestamp), headers: r.headers };
            let g = *group_of.entry((t, partition)).or_insert_with(|| {
                groups.push(Group { topic: Arc::clone(cached), partition, indexes: Vec::new(), records: Vec::new() });
                groups.len() - 1
            });
            placed.push((g, timestamp));
            groups[g].indexes.push(i);
            groups[g].records.push(rec);
        }
        let mut offsets = vec![0u64; placed.len()];
        for g in &groups {
            let at = g.topic.partitions[g.partition as usize].append(&g.records)?;
            for (k, &i) in g.indexes.iter().enumerate() {
                offsets[i] = at.base_offset + k as u64;
            }
        }
        Ok(placed
            .into_iter()
            .zip(offsets)
            .map(|((g, timestamp), offset)| {
                let g = &groups[g];
                RecordMetadata { topic: g.topic.name.clone(), partition: g.partition, offset, timestamp }
            })
            .collect())
    }

    /// The explicit partition, else the partitioner's choice.
    #[inline]
    fn choose(&self, topic: &crate::Topic, count: u32, record: &ProducerRecord) -> Result<u32> {
        let partition = match record.partition {
            Some(p) => p,
            None => self.partitioner.partition(topic.name(), record.key.as_deref(), record.value.as_deref(), count),
        };
        if partition >= count {
            return Err(Error::UnknownPartition { topic: topic.name().to_owned(), partition, count });
        }
        Ok(partition)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::ProducerRecord;

    #[test]
    fn a_literal_topic_is_not_copied() {
        // A send of a literal topic allocates nothing for its name.
        assert!(matches!(ProducerRecord::new("orders", "v").topic, Cow::Borrowed("orders")));
        assert!(matches!(ProducerRecord::tombstone("orders", "k").topic, Cow::Borrowed("orders")));
        let owned = String::from("orders");
        let ptr = owned.as_ptr();
        let r = ProducerRecord::new(owned, "v");
        assert!(matches!(&r.topic, Cow::Owned(s) if s.as_ptr() == ptr), "a String is moved in, not copied");
    }
}

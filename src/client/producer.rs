//! Producing: records addressed to a topic, placed on a partition the way
//! Kafka's Java client places them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::broker::BrokerInner;
use crate::error::{Error, Result};
use crate::log::record::{Header, Record};

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with seed `0x9747b28c`, bytes
/// read little-endian four at a time.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a key:
/// `(murmur2(key) & 0x7fffffff) % partitions`.
pub fn murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions.max(1)
}

/// Chooses a partition for a record that names none.
pub trait Partitioner: Send + Sync + fmt::Debug {
    /// A partition in `0..partition_count` for this record.
    fn partition(&self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, partition_count: u32) -> u32;
}

/// Where records without a key go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoKeyStrategy {
    /// Stay on one partition until about `batch_bytes` of values went there,
    /// then move to another (Kafka ≥ 2.4's sticky partitioning; its
    /// `batch.size` default is 16 KiB).
    Sticky { batch_bytes: usize },
    /// Each record to the next partition in turn.
    RoundRobin,
}

impl Default for NoKeyStrategy {
    fn default() -> Self {
        NoKeyStrategy::Sticky { batch_bytes: 16 << 10 }
    }
}

/// Kafka's default: murmur2 of the key; records without a key per
/// [`NoKeyStrategy`].
#[derive(Debug, Default)]
pub struct DefaultPartitioner {
    no_key: NoKeyStrategy,
    /// Per topic: (current partition, bytes sent to it, round robin counter).
    state: Mutex<HashMap<String, NoKeyState>>,
}

#[derive(Debug, Default)]
struct NoKeyState {
    partition: u32,
    bytes: usize,
    counter: u32,
}

impl DefaultPartitioner {
    pub fn new(no_key: NoKeyStrategy) -> DefaultPartitioner {
        DefaultPartitioner { no_key, state: Mutex::new(HashMap::new()) }
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, count: u32) -> u32 {
        if let Some(key) = key {
            return murmur2_partition(key, count);
        }
        let mut state = self.state.lock();
        let s = match state.get_mut(topic) {
            Some(s) => s,
            None => state.entry(topic.to_owned()).or_default(),
        };
        match self.no_key {
            NoKeyStrategy::RoundRobin => {
                s.counter = s.counter.wrapping_add(1);
                s.counter.wrapping_sub(1) % count
            }
            NoKeyStrategy::Sticky { batch_bytes } => {
                if s.partition >= count || s.bytes >= batch_bytes {
                    s.counter = s.counter.wrapping_add(1);
                    // Move on to another partition; a stride that is not a
                    // multiple of small counts spreads the choice around.
                    s.partition = if count == 1 { 0 } else { (s.partition + 1 + s.counter % (count - 1)) % count };
                    s.bytes = 0;
                }
                s.bytes += value.map_or(0, <[u8]>::len).max(1);
                s.partition
            }
        }
    }
}

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
    pub topic: String,
    /// Explicit partition; otherwise the partitioner's choice (the default
    /// partitioner hashes the key, if any).
    pub partition: Option<u32>,
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; `None` takes the broker clock's
    /// time at `send` (Kafka's create time).
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord { topic: topic.into(), value: Some(value.into()), ..ProducerRecord::default() }
    }

    /// A record with a key and no value (deletes the key when compacted).
    pub fn tombstone(topic: impl Into<String>, key: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord { topic: topic.into(), key: Some(key.into()), ..ProducerRecord::default() }
    }

    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    #[must_use]
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    #[must_use]
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(Header { key: key.into(), value });
        self
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    /// The record's timestamp (as given, or the time of the send).
    pub timestamp: i64,
}

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
    broker: Arc<BrokerInner>,
    partitioner: Arc<dyn Partitioner>,
    /// The last topic this clone sent to. Each clone has its own (a clone
    /// per thread shares no cache line with the others on the send path).
    cache: Mutex<Option<Arc<CachedTopic>>>,
}

/// A topic lookup, valid while the broker's topics epoch is unchanged.
struct CachedTopic {
    epoch: u64,
    /// This cache's own copy of the name, handed out in `RecordMetadata`.
    name: Arc<str>,
    partitions: Arc<Vec<Arc<crate::Partition>>>,
    topic: crate::Topic,
}

impl Clone for Producer {
    fn clone(&self) -> Producer {
        Producer {
            broker: Arc::clone(&self.broker),
            partitioner: Arc::clone(&self.partitioner),
            cache: Mutex::new(None),
        }
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer").field("partitioner", &self.partitioner).finish()
    }
}

impl Producer {
    pub(crate) fn new(broker: Arc<BrokerInner>, config: ProducerConfig) -> Producer {
        Producer { broker, partitioner: config.partitioner, cache: Mutex::new(None) }
    }

    /// Appends one record and returns where it landed. The record is
    /// visible to consumers when this returns (and durable per the topic's
    /// durability).
    pub fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        let cached = self.lookup(&record.topic)?;
        let partition = self.choose(&cached.topic, cached.partitions.len() as u32, &record)?;
        let log = &cached.partitions[partition as usize];
        let timestamp = record.timestamp.unwrap_or_else(|| self.broker.opts.clock.now_ms());
        let rec = Record { key: record.key, value: record.value, timestamp: Some(timestamp), headers: record.headers };
        let at = log.append(std::slice::from_ref(&rec))?;
        Ok(RecordMetadata { topic: Arc::clone(&cached.name), partition, offset: at.base_offset, timestamp })
    }

    /// The topic `name` with its partitions, from this clone's cache while no
    /// topic changed since, else looked up (and auto-created if enabled).
    fn lookup(&self, name: &str) -> Result<Arc<CachedTopic>> {
        self.broker.check_open()?;
        // Loaded before the lookup: a change racing with it bumps the epoch
        // again, so a stale entry is never taken for current.
        let epoch = self.broker.topics_epoch.load(Ordering::Acquire);
        let mut cache = self.cache.lock();
        if let Some(c) = cache.as_ref().filter(|c| c.epoch == epoch && &*c.name == name) {
            return Ok(Arc::clone(c));
        }
        let topic = self.broker.topic_for_produce(name)?;
        let fresh =
            Arc::new(CachedTopic { epoch, name: Arc::from(name), partitions: topic.partitions_snapshot(), topic });
        *cache = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Appends many records with one append (one lock acquisition) per
    /// partition they go to. Results come back in the order of `records`.
    /// Records for one partition keep their order. If an append fails, the
    /// partitions appended before it keep their records and the error is
    /// returned.
    pub fn send_batch(&self, records: Vec<ProducerRecord>) -> Result<Vec<RecordMetadata>> {
        let now = self.broker.opts.clock.now_ms();
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
                RecordMetadata { topic: Arc::clone(&g.topic.name), partition: g.partition, offset, timestamp }
            })
            .collect())
    }

    /// The explicit partition, else the partitioner's choice.
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
    use super::*;

    /// Vectors from Kafka's own `UtilsTest.testMurmur2`, and values of
    /// `Utils.murmur2` computed with the Java client (as published by other
    /// Kafka clients that check compatibility against it).
    #[test]
    fn murmur2_matches_kafka() {
        let cases: &[(&str, i32)] = &[
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
            ("0", 971_027_396),
            ("128", -326_012_175),
            ("2187", -1_508_407_203),
            ("16384", -325_739_742),
            ("78125", -1_654_490_814),
            ("279936", 1_462_227_128),
            ("823543", -2_014_198_330),
        ];
        for &(key, hash) in cases {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
        }
    }

    #[test]
    fn keys_land_where_the_java_client_puts_them() {
        // Java: Utils.toPositive(Utils.murmur2(key)) % numPartitions, with the
        // hashes above: toPositive(-973932308) = 1173551340, and so on.
        let expect = |hash: i32, n: u32| ((hash as u32) & 0x7fff_ffff) % n;
        for n in [1, 2, 3, 6, 10, 12, 100] {
            assert_eq!(murmur2_partition(b"21", n), expect(-973_932_308, n));
            assert_eq!(murmur2_partition(b"foobar", n), expect(-790_332_482, n));
            assert_eq!(murmur2_partition(b"abc", n), expect(479_470_107, n));
        }
        assert_eq!(murmur2_partition(b"21", 1 << 31), 1_173_551_340);
    }

    #[test]
    fn sticky_stays_then_moves_and_round_robin_cycles() {
        let sticky = DefaultPartitioner::new(NoKeyStrategy::Sticky { batch_bytes: 100 });
        let v = [0u8; 10];
        let first: Vec<u32> = (0..10).map(|_| sticky.partition("t", None, Some(&v), 4)).collect();
        assert!(first.iter().all(|&p| p == first[0]), "{first:?}");
        let next = sticky.partition("t", None, Some(&v), 4);
        assert_ne!(next, first[0], "moves on after a batch");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            seen.insert(sticky.partition("t", None, Some(&v), 4));
        }
        assert_eq!(seen.len(), 4, "visits every partition");

        let rr = DefaultPartitioner::new(NoKeyStrategy::RoundRobin);
        let got: Vec<u32> = (0..6).map(|_| rr.partition("t", None, None, 3)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(rr.partition("t", Some(b"21"), None, 6), 0, "keys still hash");
    }
}

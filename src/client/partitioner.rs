//! Partitioners: where a record goes when it names no partition. Keys hash
//! with Kafka's murmur2, so a key lands on the partition number Kafka's Java
//! client would choose; keyless records go sticky or round robin.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use parking_lot::Mutex;

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
///
/// A partitioner may send through the producer that asks it (a
/// [`BatchingProducer`](crate::BatchingProducer) runs it before taking its
/// buffer's lock).
pub trait Partitioner: Send + Sync + fmt::Debug {
    /// A partition in `0..partition_count` for this record.
    fn partition(&self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, partition_count: u32) -> u32;

    /// True for [`DefaultPartitioner`] only, which never sends and takes no
    /// lock a sender holds: a batching producer runs it under its buffer's
    /// lock (no lock more per record). Not part of the API: other crates
    /// can neither call nor override it (they cannot name `Sealed`).
    #[doc(hidden)]
    fn is_builtin(&self, _: Sealed) -> bool {
        false
    }
}

pub(crate) use sealed::Sealed;

mod sealed {
    /// The argument of [`Partitioner::is_builtin`](super::Partitioner::is_builtin),
    /// which only this crate can name.
    #[derive(Debug)]
    pub struct Sealed;
}

/// Where records without a key go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoKeyStrategy {
    /// Stay on one partition until about `batch_bytes` of values went there,
    /// then move to another (Kafka ≥ 2.4's sticky partitioning; its
    /// `batch.size` default is 16 KiB).
    Sticky {
        /// Bytes of values sent to one partition before it moves on.
        batch_bytes: usize,
    },
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
    state: Mutex<HashMap<String, NoKeyState, BuildHasherDefault<Fnv1a>>>,
}

/// FNV-1a: the topic-name hash of the no-key state, looked up once per
/// send. Names are the application's own (no flooding to defend against),
/// and SipHash cost more than the rest of the choice.
#[derive(Debug)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug, Default)]
struct NoKeyState {
    partition: u32,
    bytes: usize,
    counter: u32,
    /// State of the random choice of the next sticky partition.
    random: u64,
}

/// SplitMix64: a small, fast generator; the choice of a partition needs
/// spread, not cryptographic strength.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed that differs between partitioners and runs.
fn seed() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    time ^ COUNTER.fetch_add(0x9e37_79b9, std::sync::atomic::Ordering::Relaxed).rotate_left(32)
}

impl DefaultPartitioner {
    /// Murmur2 for keyed records, `no_key` for the others.
    pub fn new(no_key: NoKeyStrategy) -> DefaultPartitioner {
        DefaultPartitioner { no_key, state: Mutex::new(HashMap::default()) }
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, count: u32) -> u32 {
        if let Some(key) = key {
            return murmur2_partition(key, count);
        }
        if count <= 1 {
            // Nothing to choose: no lock, no state (the send path's cost).
            return 0;
        }
        let mut state = self.state.lock();
        let s = match state.get_mut(topic) {
            Some(s) => s,
            None => state.entry(topic.to_owned()).or_insert_with(|| NoKeyState {
                // Start anywhere: producers that start together spread out.
                partition: u32::MAX,
                random: seed(),
                ..NoKeyState::default()
            }),
        };
        match self.no_key {
            NoKeyStrategy::RoundRobin => {
                s.counter = s.counter.wrapping_add(1);
                s.counter.wrapping_sub(1) % count
            }
            NoKeyStrategy::Sticky { batch_bytes } => {
                if s.partition >= count || s.bytes >= batch_bytes {
                    // As Kafka's built-in partitioner: the next sticky
                    // partition is a random one, here never the current.
                    let r = next_random(&mut s.random);
                    s.partition = if count == 1 {
                        0
                    } else if s.partition >= count {
                        (r % u64::from(count)) as u32
                    } else {
                        (s.partition + 1 + (r % u64::from(count - 1)) as u32) % count
                    };
                    s.bytes = 0;
                }
                s.bytes += value.map_or(0, <[u8]>::len).max(1);
                s.partition
            }
        }
    }

    fn is_builtin(&self, _: Sealed) -> bool {
        true
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
    fn one_partition_needs_no_sticky_state() {
        for strategy in [NoKeyStrategy::default(), NoKeyStrategy::RoundRobin] {
            let p = DefaultPartitioner::new(strategy);
            for _ in 0..3 {
                assert_eq!(p.partition("t", None, Some(b"v"), 1), 0);
            }
            assert!(p.state.lock().is_empty(), "no lock taken, no state kept for one partition");
            assert!(p.partition("t", None, Some(b"v"), 2) < 2);
            assert_eq!(p.state.lock().len(), 1);
        }
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
        // 100 moves: missing one of the other three is (2/3)^100 unlikely.
        for _ in 0..1000 {
            seen.insert(sticky.partition("t", None, Some(&v), 4));
        }
        assert_eq!(seen.len(), 4, "visits every partition");

        // Every partition is reached, whatever the count (a fixed stride
        // reached only some when the count was not a power of two).
        for count in (1..=16).chain([100]) {
            let sticky = DefaultPartitioner::new(NoKeyStrategy::Sticky { batch_bytes: 1 });
            let reached: std::collections::HashSet<u32> =
                (0..count * 50).map(|_| sticky.partition("t", None, Some(&v), count)).collect();
            assert_eq!(reached.len(), count as usize, "{count} partitions");
        }

        let rr = DefaultPartitioner::new(NoKeyStrategy::RoundRobin);
        let got: Vec<u32> = (0..6).map(|_| rr.partition("t", None, None, 3)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(rr.partition("t", Some(b"21"), None, 6), 0, "keys still hash");
    }
}

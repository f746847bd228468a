//! Where records land: explicit partition > key hash (Kafka's murmur2) >
//! sticky or round robin; a custom partitioner; timestamps.

use std::collections::HashMap;
use std::sync::Arc;

use streamlog::{
    Broker, BrokerOptions, ManualClock, NoKeyStrategy, Partitioner, ProducerConfig, ProducerRecord, TopicConfig,
    murmur2_partition,
};

#[test]
fn same_key_same_partition_forever_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("customer-{i}")).collect();
    let mut first: HashMap<String, u32> = HashMap::new();
    {
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic("t", TopicConfig::with_partitions(6)).unwrap();
        let p = b.producer();
        for k in &keys {
            let m = p.send(ProducerRecord::new("t", "v").key(k.clone())).unwrap();
            assert_eq!(m.partition, murmur2_partition(k.as_bytes(), 6), "the Java client's partition");
            first.insert(k.clone(), m.partition);
        }
    }
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let p = b.producer();
    for k in &keys {
        assert_eq!(p.send(ProducerRecord::new("t", "v").key(k.clone())).unwrap().partition, first[k]);
    }
    let used: std::collections::HashSet<u32> = first.values().copied().collect();
    assert_eq!(used.len(), 6, "200 keys spread over all partitions");
}

#[test]
fn explicit_partition_wins_over_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(6)).unwrap();
    let hashed = murmur2_partition(b"k", 6);
    let explicit = (hashed + 1) % 6;
    let m = b.producer().send(ProducerRecord::new("t", "v").key("k").partition(explicit)).unwrap();
    assert_eq!(m.partition, explicit);
}

#[test]
fn records_without_keys_stick_then_move_or_round_robin() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(4)).unwrap();
    let sticky =
        b.producer_with(ProducerConfig::default().no_key_strategy(NoKeyStrategy::Sticky { batch_bytes: 1000 }));
    let parts: Vec<u32> =
        (0..40).map(|_| sticky.send(ProducerRecord::new("t", vec![0u8; 100])).unwrap().partition).collect();
    assert!(parts[..10].iter().all(|&p| p == parts[0]), "{parts:?}");
    assert_ne!(parts[10], parts[0]);
    let rr = b.producer_with(ProducerConfig::default().no_key_strategy(NoKeyStrategy::RoundRobin));
    let parts: Vec<u32> = (0..8).map(|_| rr.send(ProducerRecord::new("t", "v")).unwrap().partition).collect();
    assert_eq!(parts, vec![0, 1, 2, 3, 0, 1, 2, 3]);
}

#[derive(Debug)]
struct ByFirstByte;

impl Partitioner for ByFirstByte {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, value: Option<&[u8]>, count: u32) -> u32 {
        u32::from(value.and_then(|v| v.first().copied()).unwrap_or(0)) % count
    }
}

#[test]
fn a_custom_partitioner_decides() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(3)).unwrap();
    let p = b.producer_with(ProducerConfig::default().partitioner(Arc::new(ByFirstByte)));
    assert_eq!(p.send(ProducerRecord::new("t", vec![5u8])).unwrap().partition, 2);
    assert_eq!(p.send(ProducerRecord::new("t", vec![7u8]).key("ignored")).unwrap().partition, 1);
}

#[test]
fn timestamps_default_to_the_clock_and_can_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone())).unwrap();
    b.create_topic("t", TopicConfig::default()).unwrap();
    let p = b.producer();
    assert_eq!(p.send(ProducerRecord::new("t", "a")).unwrap().timestamp, 1_000);
    clock.set(2_000);
    assert_eq!(p.send(ProducerRecord::new("t", "b").timestamp(42)).unwrap().timestamp, 42);
    let part = b.topic("t").unwrap().partition(0).unwrap();
    let ts: Vec<i64> =
        part.read(0, 1 << 20).unwrap().iter().flat_map(|b| b.records()).map(|r| r.unwrap().timestamp).collect();
    assert_eq!(ts, vec![1_000, 42]);
}

#[test]
fn send_batch_appends_once_per_partition_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("a", TopicConfig::with_partitions(2)).unwrap();
    b.create_topic("b", TopicConfig::with_partitions(1)).unwrap();
    let recs: Vec<ProducerRecord> = (0..10)
        .map(|i| {
            let topic = if i % 3 == 0 { "b" } else { "a" };
            ProducerRecord::new(topic, format!("{i}")).partition(if topic == "a" { i % 2 } else { 0 })
        })
        .collect();
    let metas = b.producer().send_batch(recs.clone()).unwrap();
    for (r, m) in recs.iter().zip(&metas) {
        assert_eq!(&*m.topic, r.topic);
        assert_eq!(Some(m.partition), r.partition);
        let part = b.topic(&r.topic).unwrap().partition(m.partition).unwrap();
        let got = part.read(m.offset, 1 << 20).unwrap()[0].records().next().unwrap().unwrap();
        assert_eq!(got.value, r.value);
    }
    // One batch per (topic, partition): three batches in all.
    let batches: usize = ["a", "b"]
        .iter()
        .flat_map(|t| b.topic(t).unwrap().partitions())
        .map(|p| p.read(0, 1 << 20).unwrap().len())
        .sum();
    assert_eq!(batches, 3);
}

#[test]
fn a_producer_notices_topic_changes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let p = b.producer();
    p.send(ProducerRecord::new("t", "a")).unwrap();
    assert!(matches!(
        p.send(ProducerRecord::new("t", "b").partition(3)),
        Err(streamlog::Error::UnknownPartition { .. })
    ));
    b.add_partitions("t", 4).unwrap();
    assert_eq!(p.send(ProducerRecord::new("t", "c").partition(3)).unwrap().partition, 3);
    b.delete_topic("t").unwrap();
    assert!(matches!(p.send(ProducerRecord::new("t", "d")), Err(streamlog::Error::UnknownTopic { .. })));
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    assert_eq!(p.send(ProducerRecord::new("t", "e")).unwrap().offset, 0, "the new topic, not the deleted one");
}

/// A partitioner that sends (an audit record to another topic) through the
/// producer that asked it: the send in progress holds the producer's topic
/// cache, and the nested send of a topic not cached yet must not wait for it.
#[derive(Debug, Default)]
struct Auditing(std::sync::OnceLock<streamlog::Producer>);

impl Partitioner for Auditing {
    fn partition(&self, topic: &str, _key: Option<&[u8]>, _value: Option<&[u8]>, _count: u32) -> u32 {
        if topic == "t" {
            self.0.get().unwrap().send(ProducerRecord::new("audit", "chose 0")).unwrap();
        }
        0
    }
}

#[test]
fn a_partitioner_may_send_through_its_producer() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    b.create_topic("audit", TopicConfig::with_partitions(2)).unwrap();
    let auditing = Arc::new(Auditing::default());
    let p = b.producer_with(ProducerConfig::default().partitioner(auditing.clone()));
    auditing.0.set(p.clone()).unwrap();
    for i in 0..3 {
        assert_eq!(p.send(ProducerRecord::new("t", "v")).unwrap().offset, i);
    }
    assert_eq!(b.topic("audit").unwrap().partition(0).unwrap().high_watermark(), 3);
}

#[test]
fn one_producer_shared_by_threads_sends_to_many_topics() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let topics: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    for t in &topics {
        b.create_topic(t, TopicConfig::with_partitions(1)).unwrap();
    }
    let p = b.producer();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..600 {
                    // More topics than the producer keeps looked up, in turn.
                    p.send(ProducerRecord::new(topics[i % topics.len()].clone(), "v")).unwrap();
                }
            });
        }
    });
    for t in &topics {
        assert_eq!(b.topic(t).unwrap().partition(0).unwrap().high_watermark(), 200, "{t}");
    }
}

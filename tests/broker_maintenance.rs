//! The broker's maintenance: retention and compaction per topic policy, on
//! demand and on a schedule; the offsets topic stays bounded under frequent
//! commits; a panic in the maintenance thread poisons the broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streamlog::{
    Broker, BrokerOptions, CleanupPolicy, Clock, ConsumerConfig, Error, ManualClock, OFFSETS_TOPIC, OffsetReset,
    ProducerRecord, TopicConfig, TopicPartition,
};

fn small(policy: CleanupPolicy) -> TopicConfig {
    TopicConfig::with_partitions(2).segment_bytes(4096).index_interval_bytes(256).cleanup_policy(policy)
}

#[test]
fn retention_and_compaction_follow_each_topics_policy() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let opts = BrokerOptions::default().clock(clock.clone()).maintenance_interval(None);
    let b = Broker::open(dir.path(), opts).unwrap();
    b.create_topic("events", small(CleanupPolicy::Delete).retention(Some(Duration::from_secs(60)))).unwrap();
    b.create_topic("state", small(CleanupPolicy::Compact).min_cleanable_dirty_ratio(0.1)).unwrap();
    let p = b.producer();
    for i in 0..2000u64 {
        p.send(ProducerRecord::new("events", vec![0u8; 100]).key(format!("e{i}"))).unwrap();
        p.send(ProducerRecord::new("state", format!("v{i}")).key(format!("s{}", i % 10))).unwrap();
    }
    let size = |t: &str| b.topic(t).unwrap().partitions().iter().map(|p| p.size_in_bytes().unwrap()).sum::<u64>();
    let (events_before, state_before) = (size("events"), size("state"));
    // Nothing has expired yet; the compacted topic shrinks right away.
    let r = b.run_maintenance().unwrap();
    assert_eq!(r.segments_deleted, 0);
    assert!(r.records_compacted > 0);
    assert!(size("state") < state_before / 3);
    assert_eq!(size("events"), events_before, "a delete-policy topic is not compacted");
    // Two minutes later the events expire (but for the active segments).
    clock.advance(Duration::from_secs(120));
    let r = b.run_maintenance().unwrap();
    assert!(r.segments_deleted > 0);
    assert!(size("events") < events_before / 4);
    for part in b.topic("events").unwrap().partitions() {
        assert!(part.log_start_offset() > 0);
        assert_eq!(part.segment_count(), 1);
    }
    // The latest value of every key survives compaction.
    let mut c = b.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    c.assign(&[TopicPartition::new("state", 0), TopicPartition::new("state", 1)]).unwrap();
    let mut latest = std::collections::BTreeMap::new();
    loop {
        let recs = c.poll(Duration::from_millis(10)).unwrap();
        if recs.is_empty() {
            break;
        }
        for r in recs {
            latest.insert(r.key.unwrap(), r.value.unwrap());
        }
    }
    assert_eq!(latest.len(), 10);
    for k in 0..10 {
        assert_eq!(latest[format!("s{k}").as_bytes()], format!("v{}", 1990 + k).as_bytes());
    }
}

#[test]
fn the_maintenance_thread_runs_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let opts = BrokerOptions::default().clock(clock.clone()).maintenance_interval(Some(Duration::from_millis(10)));
    let b = Broker::open(dir.path(), opts).unwrap();
    b.create_topic("events", small(CleanupPolicy::Delete).retention(Some(Duration::from_secs(1)))).unwrap();
    let p = b.producer();
    for _ in 0..1000 {
        p.send(ProducerRecord::new("events", vec![0u8; 100]).partition(0)).unwrap();
    }
    let part = b.topic("events").unwrap().partition(0).unwrap();
    assert!(part.segment_count() > 5);
    clock.advance(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(20);
    while part.segment_count() > 1 {
        assert!(Instant::now() < deadline, "the maintenance thread never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    b.close().unwrap();
}

#[test]
fn the_offsets_topic_stays_bounded_under_frequent_commits() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BrokerOptions::default().maintenance_interval(None).offsets_segment_bytes(8 << 10);
    {
        let b = Broker::open(dir.path(), opts.clone()).unwrap();
        b.create_topic("t", TopicConfig::with_partitions(4)).unwrap();
        let p = b.producer();
        for i in 0..4000u64 {
            p.send(ProducerRecord::new("t", "x").partition((i % 4) as u32)).unwrap();
        }
        let cfg = ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false);
        let mut c = b.consumer(cfg).unwrap();
        c.subscribe(&["t"]).unwrap();
        c.poll(Duration::ZERO).unwrap();
        c.commit_offsets(&[(TopicPartition::new("t", 0), 0)]).unwrap();
        // Made by the first commit.
        let offsets = b.topic(OFFSETS_TOPIC).unwrap().partition(0).unwrap();
        let mut max_size = 0;
        for round in 0..5000u64 {
            c.poll(Duration::ZERO).unwrap();
            let tps: Vec<(TopicPartition, u64)> = (0..4).map(|p| (TopicPartition::new("t", p), round % 1000)).collect();
            c.seek(&tps[0].0, round % 1000).unwrap();
            c.commit_offsets(&tps).unwrap();
            if round % 500 == 0 {
                b.run_maintenance().unwrap();
                max_size = max_size.max(offsets.size_in_bytes().unwrap());
            }
        }
        b.run_maintenance().unwrap();
        assert!(offsets.high_watermark() >= 20_000, "20k commit records written");
        assert!(max_size < 64 << 10, "compaction keeps the offsets log small: {max_size}");
        c.commit_offsets(&[(TopicPartition::new("t", 2), 777)]).unwrap();
        drop(c);
        b.close().unwrap();
    }
    let b = Broker::open(dir.path(), opts).unwrap();
    let d = b.describe_group("g").unwrap();
    let committed: Vec<Option<u64>> = d.partitions.iter().map(|p| p.committed).collect();
    assert_eq!(committed, vec![Some(999), Some(999), Some(777), Some(999)], "the latest commits survive");
}

/// A clock that panics on demand: a maintenance pass that panics must
/// poison the broker, not vanish.
#[derive(Debug, Default)]
struct Bomb(AtomicBool);
impl Clock for Bomb {
    fn now_ms(&self) -> i64 {
        if self.0.load(Ordering::SeqCst) && std::thread::current().name() == Some("streamlog-maintenance") {
            panic!("boom");
        }
        1_000_000
    }
}

#[test]
fn a_panic_in_maintenance_poisons_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = Arc::new(Bomb::default());
    let opts = BrokerOptions::default().clock(bomb.clone()).maintenance_interval(Some(Duration::from_millis(5)));
    let b = Broker::open(dir.path(), opts).unwrap();
    b.create_topic("t", TopicConfig::default()).unwrap();
    bomb.0.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match b.topic("t") {
            Err(Error::Poisoned { .. }) => break,
            Ok(_) => assert!(Instant::now() < deadline, "never poisoned"),
            Err(e) => panic!("{e}"),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(matches!(b.producer().send(ProducerRecord::new("t", "x")), Err(Error::Poisoned { .. })));
}

#[test]
fn one_damaged_partition_does_not_stop_maintenance_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone()).maintenance_interval(None)).unwrap();
    b.create_topic("a", small(CleanupPolicy::Compact).partitions(1)).unwrap();
    b.create_topic("b", small(CleanupPolicy::Delete).partitions(1).retention(Some(Duration::from_secs(1)))).unwrap();
    let p = b.producer();
    for i in 0..500u64 {
        p.send(ProducerRecord::new("a", vec![1u8; 100]).key(format!("k{}", i % 3))).unwrap();
        p.send(ProducerRecord::new("b", vec![1u8; 100])).unwrap();
    }
    // Damage a sealed segment of topic a.
    let seg = dir.path().join("topics/a/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    clock.advance(Duration::from_secs(10));
    let report = b.run_maintenance().unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].0, TopicPartition::new("a", 0));
    assert!(matches!(report.failures[0].1, Error::Corrupt { .. }));
    assert!(report.segments_deleted > 0, "topic b was still maintained");
}

#[test]
fn interval_durability_is_flushed_by_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    let every = Duration::from_millis(20);
    b.create_topic("flushed", TopicConfig::with_partitions(2).durability(streamlog::Durability::Interval(every)))
        .unwrap();
    b.create_topic("lazy", TopicConfig::with_partitions(1)).unwrap();
    let p = b.producer();
    for i in 0..10 {
        p.send(ProducerRecord::new("flushed", "x").partition(i % 2)).unwrap();
        p.send(ProducerRecord::new("lazy", "x")).unwrap();
    }
    let parts = b.topic("flushed").unwrap().partitions();
    let deadline = Instant::now() + Duration::from_secs(20);
    while parts.iter().any(|p| p.flushed_offset() < 5) {
        assert!(Instant::now() < deadline, "the broker never flushed");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(b.topic("lazy").unwrap().partition(0).unwrap().flushed_offset(), 0, "Os durability is left to the OS");
}

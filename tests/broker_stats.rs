//! `Broker::stats`: partitions, groups and counters as a service would
//! export them.

use std::sync::Arc;
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, CleanupPolicy, ConsumerConfig, ManualClock, OffsetReset, ProducerRecord, TopicConfig,
};

#[test]
fn stats_follow_appends_reads_groups_and_maintenance() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let broker =
        Broker::temporary_with(BrokerOptions::default().fsync(false).clock(clock.clone()).maintenance_interval(None))
            .unwrap();
    let config = TopicConfig::with_partitions(2).segment_bytes(4096).cleanup_policy(CleanupPolicy::Delete);
    broker.create_topic("t", config.retention(Some(Duration::from_secs(1)))).unwrap();
    let producer = broker.producer();
    for i in 0..100u32 {
        producer.send(ProducerRecord::new("t", vec![0u8; 100]).partition(i % 2)).unwrap();
    }
    let before = broker.stats().unwrap();
    assert_eq!((before.appends, before.records_appended), (100, 100));
    assert!(before.bytes_appended > 100 * 100);
    let p0 = before.partitions.iter().find(|p| p.topic == "t" && p.partition == 0).unwrap();
    assert_eq!((p0.log.log_start_offset, p0.log.log_end_offset), (0, 50));
    assert!(p0.log.segments > 1 && p0.log.size_bytes > 50 * 100);
    assert!(p0.log.mapped_segments >= 1 && p0.log.mapped_segments <= p0.log.segments);
    assert!(before.fsyncs >= 2, "rolls count as syncs");

    let mut consumer =
        broker.consumer(ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest)).unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let mut got = 0;
    while got < 30 {
        got += consumer.poll(Duration::from_millis(100)).unwrap().len();
        if got >= 30 {
            consumer.commit().unwrap();
        }
    }
    let s = broker.stats().unwrap();
    assert!(s.reads > before.reads);
    assert!(s.rebalances >= 1);
    let g = s.groups.iter().find(|g| g.group_id == "g").unwrap();
    assert_eq!((g.members, g.generation), (1, consumer.generation().unwrap()));
    assert_eq!(g.lag, 100 - got as u64);

    clock.advance(Duration::from_secs(10));
    broker.run_maintenance().unwrap();
    let s = broker.stats().unwrap();
    assert_eq!((s.maintenance_runs, s.maintenance_failures), (1, 0));
    let p0 = s.partitions.iter().find(|p| p.topic == "t" && p.partition == 0).unwrap();
    assert!(p0.log.log_start_offset > 0, "retention moved the start: {p0:?}");
}

#[test]
fn maintenance_failures_are_counted() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let broker =
        Broker::temporary_with(BrokerOptions::default().fsync(false).clock(clock.clone()).maintenance_interval(None))
            .unwrap();
    let config = TopicConfig::with_partitions(1).segment_bytes(4096).cleanup_policy(CleanupPolicy::Compact);
    broker.create_topic("a", config).unwrap();
    for i in 0..500u64 {
        broker.producer().send(ProducerRecord::new("a", vec![1u8; 100]).key(format!("k{}", i % 3))).unwrap();
    }
    let seg = broker.dir().join("topics/a/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(broker.run_maintenance().unwrap().failures.len(), 1);
    let s = broker.stats().unwrap();
    assert_eq!((s.maintenance_runs, s.maintenance_failures), (1, 1));
}

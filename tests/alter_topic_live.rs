//! Issue 11 item 6: `Broker::alter_topic` applies the partitions' own
//! settings (segment size and age, index interval, durability) without a
//! reopen, durably; `Broker::flush` syncs every partition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Durability, ManualClock, OFFSETS_TOPIC, Partition, PartitionOptions,
    ProducerRecord, Record, TopicConfig, TopicPartition,
};

fn open(dir: &std::path::Path) -> Broker {
    Broker::open(dir, BrokerOptions::default().maintenance_interval(None)).unwrap()
}

fn send(b: &Broker, topic: &str, n: usize) {
    let p = b.producer();
    for _ in 0..n {
        p.send(ProducerRecord::new(topic.to_owned(), vec![7u8; 100]).partition(0)).unwrap();
    }
}

#[test]
fn a_smaller_segment_size_rolls_the_active_segment_without_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", TopicConfig::default().segment_bytes(1 << 20)).unwrap();
    let log = b.topic("t").unwrap().partition(0).unwrap();
    send(&b, "t", 100); // about 15 KiB: far below 1 MiB
    assert_eq!(log.segment_count(), 1);
    let config = b.topic("t").unwrap().config().segment_bytes(4096);
    b.alter_topic("t", config.clone()).unwrap();
    send(&b, "t", 100);
    let segments = log.segments().unwrap();
    assert!(segments.len() >= 4, "{} segments", segments.len());
    // The old active segment rolled at its next roll decision; every segment
    // after it keeps to the new size.
    for s in &segments[1..] {
        assert!(s.size_in_bytes() <= 4096, "{s:?}");
    }
    b.close().unwrap();
    // Durable: the new size is in topic.meta.
    let b = open(dir.path());
    assert_eq!(b.topic("t").unwrap().config(), config.normalized());
}

#[test]
fn a_shorter_segment_age_applies_at_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone()).maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::default()).unwrap();
    let log = b.topic("t").unwrap().partition(0).unwrap();
    send(&b, "t", 1);
    clock.advance(Duration::from_secs(120));
    send(&b, "t", 1);
    assert_eq!(log.segment_count(), 1, "7-day default segment age");
    b.alter_topic("t", b.topic("t").unwrap().config().segment_age(Duration::from_secs(60))).unwrap();
    clock.advance(Duration::from_secs(1));
    send(&b, "t", 1);
    assert_eq!(log.segment_count(), 2, "two minutes of records passed the new 60 s age");
}

#[test]
fn a_new_index_interval_applies_from_the_next_segment() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", TopicConfig::default().index_interval_bytes(1 << 20)).unwrap();
    let log = b.topic("t").unwrap().partition(0).unwrap();
    send(&b, "t", 200);
    log.roll().unwrap();
    b.alter_topic("t", b.topic("t").unwrap().config().index_interval_bytes(256)).unwrap();
    // The active segment was created before the change; the next one has it.
    send(&b, "t", 1);
    log.roll().unwrap();
    send(&b, "t", 200);
    log.roll().unwrap();
    let segs = log.segments().unwrap();
    let index_len = |s: &streamlog::Segment| std::fs::metadata(s.index_path()).map_or(0, |m| m.len());
    let (sparse, dense) = (index_len(&segs[0]), index_len(&segs[2]));
    assert!(dense > sparse + 8 * 40, "index of {sparse} bytes before, {dense} after");
}

#[test]
fn durability_switches_take_effect_for_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", TopicConfig::default()).unwrap();
    let log = b.topic("t").unwrap().partition(0).unwrap();
    send(&b, "t", 10);
    assert!(log.flushed_offset() < log.high_watermark(), "Durability::Os does not sync appends");

    b.alter_topic("t", b.topic("t").unwrap().config().durability(Durability::Sync)).unwrap();
    send(&b, "t", 1);
    assert_eq!(log.flushed_offset(), log.high_watermark(), "a Sync append returns once synced");

    // Interval: the broker's flush thread picks it up.
    b.alter_topic("t", b.topic("t").unwrap().config().durability(Durability::Os)).unwrap();
    send(&b, "t", 5);
    assert!(log.flushed_offset() < log.high_watermark());
    let every = Durability::Interval(Duration::from_millis(5));
    b.alter_topic("t", b.topic("t").unwrap().config().durability(every)).unwrap();
    send(&b, "t", 1);
    wait_flushed(&log);
}

#[test]
fn a_standalone_partition_starts_and_stops_its_flusher_on_update() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    log.append(&[Record::new("a")]).unwrap();
    assert!(log.flushed_offset() < log.high_watermark());
    let interval = PartitionOptions::default().durability(Durability::Interval(Duration::from_millis(5)));
    log.update_options(&interval).unwrap();
    log.append(&[Record::new("b")]).unwrap();
    wait_flushed(&log);
    log.update_options(&PartitionOptions::default()).unwrap();
    log.append(&[Record::new("c")]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(log.flushed_offset() < log.high_watermark(), "the flusher stopped with Durability::Os");
    assert!(log.update_options(&PartitionOptions::default().segment_bytes(10)).is_err());
    log.close().unwrap();
}

fn wait_flushed(log: &Partition) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.flushed_offset() < log.high_watermark() {
        assert!(Instant::now() < deadline, "never flushed");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn broker_flush_syncs_every_partition_and_the_offsets_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("a", TopicConfig::with_partitions(3)).unwrap();
    b.create_topic("b", TopicConfig::default()).unwrap();
    let p = b.producer();
    for i in 0..30 {
        p.send(ProducerRecord::new("a", format!("{i}")).key(format!("k{i}"))).unwrap();
        p.send(ProducerRecord::new("b", format!("{i}"))).unwrap();
    }
    let mut c = b.consumer(ConsumerConfig::default().group_id("g")).unwrap();
    c.assign(&[TopicPartition::new("b", 0)]).unwrap();
    c.commit_offsets(&[(TopicPartition::new("b", 0), 30)]).unwrap();
    let all: Vec<Arc<Partition>> =
        ["a", "b", OFFSETS_TOPIC].iter().flat_map(|t| b.topic(t).unwrap().partitions()).collect();
    assert_eq!(all.len(), 5);
    assert!(all.iter().any(|p| p.flushed_offset() < p.high_watermark()));
    assert!(b.topic(OFFSETS_TOPIC).unwrap().partition(0).unwrap().high_watermark() > 0);
    b.flush().unwrap();
    for p in &all {
        assert_eq!(p.flushed_offset(), p.high_watermark(), "{p:?}");
    }
}

//! Bad input is refused with a typed error before it touches the disk:
//! long topic names delete cleanly, group ids and partition counts have
//! limits, and intervals must make sense.

use std::time::{Duration, Instant};

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Durability, Error, MAX_GROUP_ID_LEN, MAX_PARTITIONS, MAX_TOPIC_NAME_LEN,
    MIN_MAINTENANCE_INTERVAL, OffsetReset, Partition, PartitionOptions, ProducerRecord, TopicConfig, TopicPartition,
};

fn opts() -> BrokerOptions {
    BrokerOptions::default().maintenance_interval(None)
}

#[test]
fn a_topic_with_the_longest_legal_name_is_deleted_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(MAX_TOPIC_NAME_LEN);
    let b = Broker::open(dir.path(), opts()).unwrap();
    b.create_topic(&name, TopicConfig::with_partitions(2)).unwrap();
    b.producer().send(ProducerRecord::new(name.clone(), "v")).unwrap();
    b.delete_topic(&name).unwrap();
    assert!(b.topics().is_empty());
    b.close().unwrap();
    let b = Broker::open(dir.path(), opts()).unwrap();
    assert!(b.topics().is_empty(), "the deleted topic came back: {:?}", b.topics());
    // The name is free again.
    b.create_topic(&name, TopicConfig::default()).unwrap();
    b.delete_topic(&name).unwrap();
}

#[test]
fn group_ids_past_kafkas_limit_are_refused_and_the_longest_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), opts()).unwrap();
    b.create_topic("t", TopicConfig::default()).unwrap();
    b.producer().send(ProducerRecord::new("t", "v").partition(0)).unwrap();
    for len in [MAX_GROUP_ID_LEN + 1, 65_536 + 5] {
        let err = b.consumer(ConsumerConfig::with_group("g".repeat(len))).unwrap_err();
        assert!(matches!(err, Error::GroupIdTooLong { len: l, max: MAX_GROUP_ID_LEN } if l == len), "{err}");
    }
    let longest = "g".repeat(MAX_GROUP_ID_LEN);
    let tp = TopicPartition::new("t", 0);
    let mut c =
        b.consumer(ConsumerConfig::with_group(longest.as_str()).auto_offset_reset(OffsetReset::Earliest)).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.commit_offsets(&[(tp.clone(), 1)]).unwrap();
    drop(c);
    b.close().unwrap();
    let b = Broker::open(dir.path(), opts()).unwrap();
    let c = b.consumer(ConsumerConfig::with_group(longest.as_str())).unwrap();
    assert_eq!(c.committed(&tp).unwrap(), Some(1));
}

#[test]
fn partition_counts_past_the_limit_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), opts()).unwrap();
    let start = Instant::now();
    for n in [MAX_PARTITIONS + 1, u32::MAX] {
        let err = b.create_topic("big", TopicConfig::with_partitions(n)).unwrap_err();
        assert!(matches!(err, Error::TooManyPartitions { requested, max: MAX_PARTITIONS } if requested == n), "{err}");
    }
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    assert!(!dir.path().join("topics/big").exists(), "nothing was created");
    assert!(b.topics().is_empty());
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let err = b.add_partitions("t", u32::MAX).unwrap_err();
    assert!(matches!(err, Error::TooManyPartitions { requested: u32::MAX, .. }), "{err}");
    assert_eq!(b.topic("t").unwrap().partition_count(), 2);
    // The auto-create configuration is checked at open.
    drop(b);
    let bad = opts().default_topic_config(TopicConfig::with_partitions(u32::MAX));
    assert!(matches!(Broker::open(dir.path(), bad), Err(Error::TooManyPartitions { .. })));
}

#[test]
fn maintenance_intervals_that_make_no_sense_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for every in [Duration::ZERO, Duration::from_nanos(1), MIN_MAINTENANCE_INTERVAL - Duration::from_nanos(1)] {
        let err = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(Some(every))).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{every:?}: {err}");
    }
    // The shortest allowed and the longest possible both open and close promptly.
    for every in [MIN_MAINTENANCE_INTERVAL, Duration::MAX] {
        let start = Instant::now();
        let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(Some(every))).unwrap();
        b.close().unwrap();
        assert!(start.elapsed() < Duration::from_secs(2), "{every:?}: took {:?}", start.elapsed());
    }
}

#[test]
fn flush_intervals_below_a_millisecond_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for every in [Duration::ZERO, Duration::from_nanos(1), Duration::from_micros(999)] {
        let opts = PartitionOptions::default().durability(Durability::Interval(every));
        assert!(matches!(Partition::open(dir.path(), opts), Err(Error::InvalidConfig(_))), "{every:?}");
    }
    Partition::open(dir.path(), PartitionOptions::default().durability(Durability::Interval(Duration::from_millis(1))))
        .unwrap();
}

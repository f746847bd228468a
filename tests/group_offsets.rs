//! Committed offsets: durable across reopen, fenced by generation, never
//! moved backwards by accident, auto-committed on an interval.

use std::sync::Arc;
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Error, ManualClock, OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

fn produce(b: &Broker, n: u64) {
    let p = b.producer();
    for i in 0..n {
        p.send(ProducerRecord::new("t", i.to_string()).partition(0)).unwrap();
    }
}

fn group_consumer(b: &Broker, group: &str) -> streamlog::Consumer {
    let cfg = ConsumerConfig::with_group(group).auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false);
    let mut c = b.consumer(cfg.max_poll_records(10)).unwrap();
    c.subscribe(&["t"]).unwrap();
    c
}

#[test]
fn a_restarted_consumer_resumes_where_its_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    {
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
        produce(&b, 100);
        let mut c = group_consumer(&b, "g");
        let got = c.poll(Duration::from_secs(1)).unwrap();
        assert_eq!(got.last().unwrap().offset, 9);
        c.commit().unwrap();
        assert_eq!(c.committed(&tp).unwrap(), Some(10));
        b.close().unwrap();
    }
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert!(b.list_groups().contains(&"g".to_owned()));
    let d = b.describe_group("g").unwrap();
    assert_eq!(d.partitions[0].committed, Some(10));
    assert_eq!(d.partitions[0].lag, Some(90));
    let mut c = group_consumer(&b, "g");
    assert_eq!(c.poll(Duration::from_secs(1)).unwrap()[0].offset, 10);
    // Another group starts from its own reset policy.
    let mut other = group_consumer(&b, "other");
    assert_eq!(other.poll(Duration::from_secs(1)).unwrap()[0].offset, 0);
}

#[test]
fn a_commit_from_a_stale_generation_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone())).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    produce(&b, 10);
    let tp = TopicPartition::new("t", 0);
    let cfg = || {
        ConsumerConfig::with_group("g")
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .max_poll_interval(Duration::from_secs(30))
    };
    let mut c1 = b.consumer(cfg()).unwrap();
    c1.subscribe(&["t"]).unwrap();
    c1.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(c1.assignment(), vec![tp.clone()]);
    // A second member joins: a new generation. c1 still holds the
    // partition (it gives it up in its next poll), so, as in Kafka before it
    // rejoins, its commit goes through.
    let mut c2 = b.consumer(cfg()).unwrap();
    c2.subscribe(&["t"]).unwrap();
    c2.poll(Duration::ZERO).unwrap();
    c1.commit_offsets(&[(tp.clone(), 5)]).unwrap();
    assert_eq!(c1.committed(&tp).unwrap(), Some(5));
    // c1 stops polling past its deadline; c2's next poll removes it and
    // takes the partition. The zombie's commit is fenced off.
    clock.advance(Duration::from_secs(31));
    c2.poll(Duration::ZERO).unwrap();
    c2.poll(Duration::ZERO).unwrap();
    assert_eq!(c2.assignment(), vec![tp.clone()]);
    let err = c1.commit_offsets(&[(tp.clone(), 9)]).unwrap_err();
    assert!(matches!(err, Error::StaleGeneration { .. }), "{err}");
    assert_eq!(c2.committed(&tp).unwrap(), Some(5));
    c2.commit_offsets(&[(tp.clone(), 7)]).unwrap();
    // The same goes for a member whose partition moved by a rebalance.
    assert!(matches!(c1.commit_offsets(&[(tp, 8)]), Err(Error::StaleGeneration { .. })));
}

#[test]
fn commits_never_go_backwards_unless_the_user_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    produce(&b, 50);
    let tp = TopicPartition::new("t", 0);
    let mut c = group_consumer(&b, "g");
    c.poll(Duration::from_secs(1)).unwrap();
    c.poll(Duration::from_secs(1)).unwrap();
    c.commit().unwrap();
    assert_eq!(c.committed(&tp).unwrap(), Some(20));
    c.seek(&tp, 5).unwrap();
    c.commit().unwrap();
    assert_eq!(c.committed(&tp).unwrap(), Some(5), "an explicit seek may rewind the commit");
    c.poll(Duration::from_secs(1)).unwrap();
    c.commit().unwrap();
    assert_eq!(c.committed(&tp).unwrap(), Some(15));
}

#[test]
fn auto_commit_runs_on_its_interval_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000_000));
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone())).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    produce(&b, 30);
    let tp = TopicPartition::new("t", 0);
    let cfg = ConsumerConfig::with_group("g")
        .auto_offset_reset(OffsetReset::Earliest)
        .max_poll_records(10)
        .auto_commit_interval(Duration::from_secs(5));
    let mut c = b.consumer(cfg).unwrap();
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::from_secs(1)).unwrap();
    c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(c.committed(&tp).unwrap(), None, "not yet: the interval has not passed");
    clock.advance(Duration::from_secs(6));
    c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(c.committed(&tp).unwrap(), Some(20), "committed what the previous polls returned");
    c.close().unwrap();
    let d = b.describe_group("g").unwrap();
    assert_eq!(d.partitions[0].committed, Some(30), "close commits the rest");
}

#[test]
fn a_recreated_topic_does_not_inherit_old_commits() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    produce(&b, 10);
    let mut c = group_consumer(&b, "g");
    c.poll(Duration::from_secs(1)).unwrap();
    c.commit().unwrap();
    c.close().unwrap();
    b.delete_topic("t").unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    produce(&b, 10);
    let mut c = group_consumer(&b, "g");
    assert_eq!(c.poll(Duration::from_secs(1)).unwrap()[0].offset, 0);
    drop(c);
    drop(b);
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert!(!b.list_groups().contains(&"g".to_owned()), "the tombstones are durable");
}

#[test]
fn a_seek_past_the_end_does_not_break_auto_commit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000_000));
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone())).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    produce(&b, 10);
    let tp = TopicPartition::new("t", 0);
    let cfg = ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest);
    let mut c = b.consumer(cfg).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert_eq!(c.poll(Duration::from_secs(1)).unwrap().len(), 10);
    c.seek(&tp, 109).unwrap();
    clock.advance(Duration::from_secs(6));
    c.poll(Duration::ZERO).unwrap();
    c.close().unwrap();
    assert_eq!(b.describe_group("g").unwrap().partitions[0].committed, Some(10));
}

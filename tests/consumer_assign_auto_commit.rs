//! Auto-commit for a consumer with manually assigned partitions and a
//! `group_id`: it commits its positions on close and drop (not when a panic
//! drops it), as `enable_auto_commit` promises and Kafka does, and a
//! periodic auto-commit that the group refuses (it has live members) is
//! logged, not returned from `poll`. Before, close and drop committed only
//! for group members, and `poll` failed with `GroupNotEmpty` every
//! `auto_commit_interval` while the group had members.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, Consumer, ConsumerConfig, ManualClock, OffsetReset, ProducerRecord, TopicConfig,
    TopicPartition,
};

/// A broker on a manual clock with topic `t` of one partition, 10 records.
fn broker() -> (tempfile::TempDir, Arc<ManualClock>, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000_000));
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone()).maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let p = b.producer();
    for i in 0..10 {
        p.send(ProducerRecord::new("t", i.to_string())).unwrap();
    }
    (dir, clock, b)
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// Assigned partition 0 of `t`, with group `g` and auto-commit on (5 s).
fn assigned(b: &Broker) -> Consumer {
    let config = ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest);
    let mut c = b.consumer(config).unwrap();
    c.assign(&[tp()]).unwrap();
    c
}

fn committed(b: &Broker) -> Option<u64> {
    b.group("g").committed().unwrap().get(&tp()).copied()
}

#[test]
fn close_and_drop_commit_the_positions_but_not_a_drop_by_a_panic() {
    let (_dir, _clock, b) = broker();
    let mut c = assigned(&b);
    assert_eq!(c.poll(Duration::from_secs(1)).unwrap().len(), 10);
    assert_eq!(committed(&b), None, "the interval has not passed");
    c.close().unwrap();
    assert_eq!(committed(&b), Some(10), "close commits");

    b.producer().send(ProducerRecord::new("t", "10")).unwrap();
    let mut c = assigned(&b);
    assert_eq!(c.poll(Duration::from_secs(1)).unwrap()[0].offset, 10);
    drop(c);
    assert_eq!(committed(&b), Some(11), "drop commits");

    b.producer().send(ProducerRecord::new("t", "11")).unwrap();
    let mut c = assigned(&b);
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        assert_eq!(c.poll(Duration::from_secs(1)).unwrap()[0].offset, 11);
        panic!("processing offset 11 failed");
    }));
    assert!(outcome.is_err());
    assert_eq!(committed(&b), Some(11), "the failed record is read again");
}

#[test]
fn a_periodic_auto_commit_refused_by_a_group_with_members_does_not_fail_poll() {
    let (_dir, clock, b) = broker();
    let mut member = b.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    member.subscribe(&["t"]).unwrap();
    member.poll(Duration::ZERO).unwrap();
    assert_eq!(member.assignment(), [tp()]);

    let mut c = assigned(&b);
    assert_eq!(c.poll(Duration::ZERO).unwrap().len(), 10);
    clock.advance(Duration::from_secs(6));
    // The auto-commit is due: the group refuses it (it has a member).
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    assert_eq!(committed(&b), None);
    // Once the group is empty, the next one goes through.
    member.close().unwrap();
    clock.advance(Duration::from_secs(6));
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    assert_eq!(committed(&b), Some(10));
}

//! Group admin as `kafka-consumer-groups` has it: the `ConsumerGroup`
//! handle (describe with state, committed offsets, lag, reset, delete),
//! commits from outside a group refused while it has members, and unknown
//! groups described as dead.

use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Error, GroupState, OffsetReset, ProducerRecord, ResetTo, TopicConfig,
    TopicPartition,
};

fn setup() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let p = b.producer();
    for i in 0..10i64 {
        for part in 0..2 {
            p.send(ProducerRecord::new("t", "v").partition(part).timestamp(1_000 + i * 100)).unwrap();
        }
    }
    (dir, b)
}

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

#[test]
fn a_commit_from_outside_a_group_with_members_is_refused() {
    let (_d, b) = setup();
    let mut member = b.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    member.subscribe(&["t"]).unwrap();
    member.poll(Duration::ZERO).unwrap();
    let mut outsider = b.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    outsider.assign(&[tp(0)]).unwrap();
    let r = outsider.commit_offsets(&[(tp(0), 3)]);
    assert!(matches!(&r, Err(Error::GroupNotEmpty { group }) if group == "g"), "{r:?}");
    assert_eq!(outsider.committed(&tp(0)).unwrap(), None);
    member.close().unwrap();
    outsider.commit_offsets(&[(tp(0), 3)]).unwrap();
    assert_eq!(outsider.committed(&tp(0)).unwrap(), Some(3));
}

#[test]
fn describe_reports_the_group_state_and_an_unknown_group_as_dead() {
    let (_d, b) = setup();
    let d = b.describe_group("nobody").unwrap();
    assert_eq!(d.state, GroupState::Dead);
    assert!(d.members.is_empty() && d.partitions.is_empty());

    let cfg = || ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest);
    let mut one = b.consumer(cfg()).unwrap();
    one.subscribe(&["t"]).unwrap();
    one.poll(Duration::ZERO).unwrap();
    assert_eq!(b.describe_group("g").unwrap().state, GroupState::Stable);
    let mut two = b.consumer(cfg()).unwrap();
    two.subscribe(&["t"]).unwrap();
    assert_eq!(b.describe_group("g").unwrap().state, GroupState::PreparingRebalance);
    one.poll(Duration::ZERO).unwrap();
    assert_eq!(b.describe_group("g").unwrap().state, GroupState::CompletingRebalance);
    two.poll(Duration::ZERO).unwrap();
    let d = b.describe_group("g").unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.members.len(), 2);
    one.close().unwrap();
    two.close().unwrap();
    assert_eq!(b.describe_group("g").unwrap().state, GroupState::Empty);
}

#[test]
fn the_group_handle_describes_resets_and_deletes() {
    let (_d, b) = setup();
    let group = b.group("g");
    assert_eq!(group.describe().unwrap().state, GroupState::Dead);
    let mut c = b
        .consumer(ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest).max_poll_records(4))
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::ZERO).unwrap();
    c.poll(Duration::ZERO).unwrap();
    c.commit().unwrap();
    assert_eq!(group.committed().unwrap(), [(tp(0), 4), (tp(1), 4)].into());
    assert_eq!(group.total_lag().unwrap(), 12);
    let d = group.describe().unwrap();
    assert_eq!((d.state, d.members.len(), d.members[0].partitions.len()), (GroupState::Stable, 1, 2));
    assert!(matches!(group.reset_offsets(&[], ResetTo::Earliest), Err(Error::GroupNotEmpty { .. })));
    assert!(matches!(group.delete(), Err(Error::GroupNotEmpty { .. })));
    c.close().unwrap();

    assert_eq!(group.reset_offsets(&[], ResetTo::Earliest).unwrap(), vec![(tp(0), 0), (tp(1), 0)]);
    assert_eq!(group.reset_offsets(&[tp(1)], ResetTo::Latest).unwrap(), vec![(tp(1), 10)]);
    assert_eq!(group.reset_offsets(&[tp(1)], ResetTo::ShiftBy(-3)).unwrap(), vec![(tp(1), 7)]);
    assert_eq!(group.reset_offsets(&[tp(1)], ResetTo::ShiftBy(50)).unwrap(), vec![(tp(1), 10)], "clamped");
    assert_eq!(group.reset_offsets(&[tp(0)], ResetTo::Offset(99)).unwrap(), vec![(tp(0), 10)], "clamped");
    assert_eq!(group.reset_offsets(&[tp(0)], ResetTo::Timestamp(1_450)).unwrap(), vec![(tp(0), 5)]);
    assert_eq!(group.reset_offsets(&[tp(0)], ResetTo::Timestamp(99_999)).unwrap(), vec![(tp(0), 10)]);
    assert_eq!(group.committed().unwrap(), [(tp(0), 10), (tp(1), 10)].into());
    // A consumer of the group resumes from the reset.
    group.reset_offsets(&[tp(0)], ResetTo::Offset(8)).unwrap();
    let mut c = b.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    c.subscribe(&["t"]).unwrap();
    let got = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(got.iter().map(|r| (r.partition, r.offset)).collect::<Vec<_>>(), vec![(0, 8), (0, 9)]);
    c.close().unwrap();

    group.delete().unwrap();
    assert!(group.committed().unwrap().is_empty());
    assert_eq!(group.describe().unwrap().state, GroupState::Dead);
    assert!(matches!(group.delete(), Err(Error::UnknownGroup { .. })));
}

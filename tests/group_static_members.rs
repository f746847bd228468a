//! Static membership (KIP-345): a consumer with a `group_instance_id` that
//! closes and comes back within its session timeout takes its partitions
//! back without a rebalance; after the timeout it is removed; range and
//! round robin order static members by instance id; a second live member
//! with the same instance id is refused.

use std::sync::Arc;
use std::time::Duration;

use streamlog::{
    Assignor, Broker, BrokerOptions, Consumer, ConsumerConfig, Error, GroupState, ManualClock, TopicConfig,
    TopicPartition,
};

fn broker() -> (tempfile::TempDir, Arc<ManualClock>, Broker) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone())).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(6)).unwrap();
    (dir, clock, b)
}

fn static_member(b: &Broker, instance: &str) -> Consumer {
    let cfg = ConsumerConfig::with_group("g").group_instance_id(instance).session_timeout(Duration::from_secs(45));
    let mut c = b.consumer(cfg).unwrap();
    c.subscribe(&["t"]).unwrap();
    c
}

fn settle(members: &mut [&mut Consumer]) {
    for _ in 0..3 {
        for m in members.iter_mut() {
            m.poll(Duration::ZERO).unwrap();
        }
    }
}

#[test]
fn a_static_member_that_comes_back_in_time_takes_its_partitions_back_without_a_rebalance() {
    let (_d, clock, b) = broker();
    let mut one = static_member(&b, "one");
    let mut two = static_member(&b, "two");
    settle(&mut [&mut one, &mut two]);
    let generation = one.generation().unwrap();
    let held = one.assignment();
    assert_eq!(held.len(), 3);
    one.close().unwrap();
    clock.advance(Duration::from_secs(30));
    settle(&mut [&mut two]);
    assert_eq!(two.assignment().len(), 3, "nothing moves while it is away");
    let d = b.describe_group("g").unwrap();
    assert_eq!((d.state, d.generation, d.members.len()), (GroupState::Stable, generation, 2));

    let mut back = static_member(&b, "one");
    settle(&mut [&mut back, &mut two]);
    assert_eq!(back.assignment(), held, "the same partitions");
    assert_eq!(back.generation(), Some(generation), "the same generation: no rebalance");
    assert_eq!(two.generation(), Some(generation));
    let d = b.describe_group("g").unwrap();
    assert_eq!(d.generation, generation);
    assert!(d.members.iter().any(|m| m.group_instance_id.as_deref() == Some("one") && m.partitions == held));
}

#[test]
fn a_static_member_away_past_its_session_timeout_is_removed() {
    let (_d, clock, b) = broker();
    let mut one = static_member(&b, "one");
    let mut two = static_member(&b, "two");
    settle(&mut [&mut one, &mut two]);
    let generation = two.generation().unwrap();
    drop(one);
    clock.advance(Duration::from_secs(46));
    settle(&mut [&mut two]);
    assert_eq!(two.generation(), Some(generation + 1));
    assert_eq!(two.assignment().len(), 6);
    // Coming back now is an ordinary join: a rebalance.
    let mut back = static_member(&b, "one");
    settle(&mut [&mut back, &mut two]);
    assert_eq!(back.generation(), Some(generation + 2));
    assert_eq!(back.assignment().len(), 3);
}

#[test]
fn a_second_live_member_with_the_same_instance_id_is_fenced() {
    let (_d, _clock, b) = broker();
    let mut one = static_member(&b, "one");
    settle(&mut [&mut one]);
    let mut twin = b.consumer(ConsumerConfig::with_group("g").group_instance_id("one")).unwrap();
    let r = twin.subscribe(&["t"]);
    assert!(matches!(&r, Err(Error::FencedInstanceId { instance_id, .. }) if instance_id == "one"), "{r:?}");
    // The live member is untouched, and the fenced consumer may try again.
    settle(&mut [&mut one]);
    assert_eq!(one.assignment().len(), 6);
    one.close().unwrap();
    twin.subscribe(&["t"]).unwrap();
    settle(&mut [&mut twin]);
    assert_eq!(twin.assignment().len(), 6);
}

#[test]
fn range_and_round_robin_order_static_members_by_instance_id() {
    for assignor in [Assignor::Range, Assignor::RoundRobin] {
        let (_d, _clock, b) = broker();
        let cfg = |instance: &str| ConsumerConfig::with_group("g").group_instance_id(instance).assignor(assignor);
        // Created first, so its member id sorts first; its instance id sorts last.
        let mut z = b.consumer(cfg("z")).unwrap();
        z.subscribe(&["t"]).unwrap();
        let mut a = b.consumer(cfg("a")).unwrap();
        a.subscribe(&["t"]).unwrap();
        assert!(z.member_id() < a.member_id());
        settle(&mut [&mut z, &mut a]);
        let first: Vec<TopicPartition> = match assignor {
            Assignor::Range => (0..3).map(|p| TopicPartition::new("t", p)).collect(),
            _ => [0, 2, 4].iter().map(|&p| TopicPartition::new("t", p)).collect(),
        };
        assert_eq!(a.assignment(), first, "{assignor:?}: instance a comes first");
    }
}

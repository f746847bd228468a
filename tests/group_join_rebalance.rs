//! A rebalance collects the members before it assigns: when membership or
//! subscriptions change, each member's next poll is its rejoin, and the
//! group assigns once, when all have rejoined or the rebalance timeout
//! expires (Kafka's group protocol). So members that change together cause
//! one generation, and no partition moves that the assignor would keep.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::{
    Assignor, Broker, BrokerOptions, Consumer, ConsumerConfig, ManualClock, MemberSubscription, OffsetReset,
    ProducerRecord, TopicConfig, TopicPartition,
};

/// Polls every member in turn, `rounds` times.
fn poll_all(members: &mut [Consumer], rounds: usize) {
    for _ in 0..rounds {
        for m in members.iter_mut() {
            m.poll(Duration::ZERO).unwrap();
        }
    }
}

fn assignments(members: &[Consumer]) -> BTreeMap<String, Vec<TopicPartition>> {
    members.iter().map(|m| (m.member_id().unwrap().to_owned(), m.assignment())).collect()
}

#[test]
fn members_that_add_a_topic_together_cause_one_generation_and_no_avoidable_moves() {
    for assignor in [Assignor::CooperativeSticky, Assignor::Range, Assignor::RoundRobin] {
        let dir = tempfile::tempdir().unwrap();
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic("a", TopicConfig::with_partitions(12)).unwrap();
        b.create_topic("b", TopicConfig::with_partitions(6)).unwrap();
        let mut members: Vec<Consumer> = (0..6)
            .map(|_| {
                let mut c = b.consumer(ConsumerConfig::with_group("g").assignor(assignor)).unwrap();
                c.subscribe(&["a"]).unwrap();
                c
            })
            .collect();
        poll_all(&mut members, 3);
        let before = assignments(&members);
        assert!(before.values().all(|p| p.len() == 2), "{assignor:?} settled: {before:?}");
        let generation = members[0].generation().unwrap();
        assert!(members.iter().all(|m| m.generation() == Some(generation)));

        for m in members.iter_mut() {
            m.subscribe(&["a", "b"]).unwrap();
        }
        poll_all(&mut members, 3);
        let after = assignments(&members);
        for m in &members {
            assert_eq!(m.generation(), Some(generation + 1), "{assignor:?}: exactly one new generation");
        }
        assert_eq!(b.describe_group("g").unwrap().generation, generation + 1);

        // The assignor alone, fed the same inputs, gives the same answer.
        let subs: Vec<MemberSubscription> = before
            .iter()
            .map(|(id, owned)| MemberSubscription {
                member_id: id.clone(),
                topics: ["a", "b"].iter().map(|t| t.to_string()).collect(),
                owned: owned.clone(),
                group_instance_id: None,
            })
            .collect();
        let counts: BTreeMap<String, u32> = [("a".to_owned(), 12), ("b".to_owned(), 6)].into();
        assert_eq!(after, assignor.assign(&subs, &counts), "{assignor:?}");
        if assignor == Assignor::CooperativeSticky {
            for (id, owned) in &before {
                assert!(owned.iter().all(|tp| after[id].contains(tp)), "{id} kept every partition of a");
            }
        }
    }
}

#[test]
fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_removed() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone())).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(6)).unwrap();
    let cfg = || ConsumerConfig::with_group("g").rebalance_timeout(Duration::from_secs(10));
    let mut members: Vec<Consumer> = (0..2)
        .map(|_| {
            let mut c = b.consumer(cfg()).unwrap();
            c.subscribe(&["t"]).unwrap();
            c
        })
        .collect();
    poll_all(&mut members, 3);
    let generation = members[0].generation().unwrap();
    let mut late = members.pop().unwrap();
    let mut newcomer = b.consumer(cfg()).unwrap();
    newcomer.subscribe(&["t"]).unwrap();
    members.push(newcomer);
    poll_all(&mut members, 2);
    assert_eq!(b.describe_group("g").unwrap().state, streamlog::GroupState::PreparingRebalance);
    assert_eq!(members[0].generation(), Some(generation), "waits for the member that did not rejoin");
    assert_eq!(late.assignment().len(), 3, "which keeps its partitions meanwhile");

    clock.advance(Duration::from_secs(11));
    poll_all(&mut members, 3);
    assert_eq!(members[0].generation(), Some(generation + 1));
    let d = b.describe_group("g").unwrap();
    assert_eq!(d.members.len(), 2, "the late member was removed");
    // Removed like a member past its poll deadline: what it held is
    // released and reassigned, and its commits are fenced.
    assert_eq!(members.iter().map(|m| m.assignment().len()).sum::<usize>(), 6);
    assert!(matches!(late.commit(), Err(streamlog::Error::StaleGeneration { .. })));
    // It learns on its next poll that it is out, gives everything up and
    // joins again as a new member.
    late.poll(Duration::ZERO).unwrap();
    assert!(late.assignment().is_empty());
    members.push(late);
    poll_all(&mut members, 3);
    let held: BTreeSet<TopicPartition> = members.iter().flat_map(|m| m.assignment()).collect();
    assert_eq!(held.len(), 6);
    assert_eq!(b.describe_group("g").unwrap().state, streamlog::GroupState::Stable);
}

#[test]
fn the_initial_delay_gathers_a_starting_group_into_one_generation() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let dir = tempfile::tempdir().unwrap();
    let opts = BrokerOptions::default().clock(clock.clone()).group_initial_rebalance_delay(Duration::from_secs(3));
    let b = Broker::open(dir.path(), opts).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(6)).unwrap();
    let mut members = Vec::new();
    for _ in 0..3 {
        let mut c = b.consumer(ConsumerConfig::with_group("g")).unwrap();
        c.subscribe(&["t"]).unwrap();
        c.poll(Duration::ZERO).unwrap();
        members.push(c);
        clock.advance(Duration::from_secs(1));
    }
    assert!(members.iter().all(|m| m.assignment().is_empty()), "nothing assigned during the delay");
    assert_eq!(b.describe_group("g").unwrap().generation, 0);
    clock.advance(Duration::from_secs(3));
    poll_all(&mut members, 2);
    assert!(members.iter().all(|m| m.generation() == Some(1) && m.assignment().len() == 2));
}

#[test]
fn a_member_parked_in_poll_rejoins_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let cfg = || ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest);
    let mut parked = b.consumer(cfg()).unwrap();
    parked.subscribe(&["t"]).unwrap();
    parked.poll(Duration::ZERO).unwrap();
    assert_eq!(parked.assignment().len(), 2);
    let stop = parked.wakeup_handle();
    let t = std::thread::spawn(move || {
        // Parks for long; the newcomer's join wakes it to rejoin.
        while !matches!(parked.poll(Duration::from_secs(30)), Err(streamlog::Error::Wakeup)) {}
        parked
    });
    std::thread::sleep(Duration::from_millis(50));
    b.producer().send(ProducerRecord::new("t", "x").partition(0)).unwrap();
    b.producer().send(ProducerRecord::new("t", "y").partition(1)).unwrap();
    let mut newcomer = b.consumer(cfg()).unwrap();
    newcomer.subscribe(&["t"]).unwrap();
    let start = Instant::now();
    while newcomer.assignment().is_empty() && start.elapsed() < Duration::from_secs(20) {
        newcomer.poll(Duration::from_millis(100)).unwrap();
    }
    assert_eq!(newcomer.assignment().len(), 1);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    stop.wakeup();
    let parked = t.join().unwrap();
    assert_eq!(parked.assignment().len(), 1);
}

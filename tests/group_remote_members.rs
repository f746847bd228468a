//! Members outside this process (the Kafka front's clients) and in-process
//! consumers in one group: one owner per partition at every moment. A
//! remote member's partitions move only once it rejoined without them,
//! left, or its session expired; an in-process member's once it revoked.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use streamlog::{
    Assignor, Broker, BrokerOptions, ConsumerConfig, Error, ManualClock, OffsetAndMetadata, OffsetReset, RemoteJoin,
    RemoteJoinOutcome, TopicConfig, TopicPartition,
};

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn join(member_id: &str, owned: Vec<TopicPartition>) -> RemoteJoin {
    RemoteJoin {
        member_id: member_id.to_owned(),
        group_instance_id: None,
        topics: vec!["t".into()],
        owned,
        assignor: Assignor::CooperativeSticky,
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(60),
    }
}

fn generation(o: RemoteJoinOutcome) -> u32 {
    match o {
        RemoteJoinOutcome::Joined { generation, .. } => generation,
        other => panic!("not joined: {other:?}"),
    }
}

/// Nobody holds a partition twice, per the group's own record.
fn owners_disjoint(broker: &Broker) {
    let d = broker.describe_group("g").unwrap();
    let mut seen = BTreeSet::new();
    for m in &d.members {
        for p in &m.partitions {
            assert!(seen.insert(p.clone()), "{p} held twice: {d:?}");
        }
    }
}

#[test]
fn remote_and_in_process_members_hand_partitions_over_only_once_released() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone())).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    broker.producer().send(streamlog::ProducerRecord::new("t", "x").partition(0)).unwrap();
    let group = broker.group("g");
    let wait = Duration::from_millis(200);

    // A remote member alone: it gets both partitions.
    let r = group.new_member_id("kafka-client");
    let g1 = generation(group.remote_join(join(&r, vec![]), wait).unwrap());
    assert_eq!(group.remote_sync(&r, g1, wait).unwrap(), [tp(0), tp(1)]);
    group.remote_commit(&r, g1, &[(tp(0), OffsetAndMetadata::new(1, "by-wire"))]).unwrap();

    // An in-process member joins: the group waits for the remote one to
    // rejoin; meanwhile nothing moves.
    let mut c = broker
        .consumer(ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false))
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    assert!(c.assignment().is_empty());
    assert!(matches!(group.remote_heartbeat(&r, g1), Err(Error::RebalanceInProgress { .. })));
    owners_disjoint(&broker);

    // A cooperative client rejoins keeping what it owns: the new
    // generation moves one partition, but not before the client rejoins
    // without it.
    let g2 = generation(group.remote_join(join(&r, vec![tp(0), tp(1)]), wait).unwrap());
    assert!(g2 > g1);
    let kept = group.remote_sync(&r, g2, wait).unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let moving = if kept[0] == tp(0) { tp(1) } else { tp(0) };
    c.poll(Duration::ZERO).unwrap();
    assert!(c.assignment().is_empty(), "still held by the remote member");
    owners_disjoint(&broker);
    // Stale generation commits are fenced.
    assert!(matches!(
        group.remote_commit(&r, g1, &[(kept[0].clone(), OffsetAndMetadata::new(0, ""))]),
        Err(Error::StaleGeneration { .. })
    ));
    // It revokes and rejoins without it: the in-process member takes it,
    // and resumes from the remote member's commit.
    generation(group.remote_join(join(&r, kept.clone()), wait).unwrap());
    let records = c.poll(Duration::ZERO).unwrap();
    assert_eq!(c.assignment(), std::slice::from_ref(&moving));
    if moving == tp(0) {
        assert!(records.is_empty(), "resumed after the wire commit, not from 0");
        assert_eq!(c.position(&tp(0)).unwrap(), 1);
        assert_eq!(c.committed_with_metadata(&tp(0)).unwrap(), Some(OffsetAndMetadata::new(1, "by-wire")));
    }
    owners_disjoint(&broker);

    // The remote member's session expires: its partition moves.
    clock.advance(Duration::from_secs(11));
    c.poll(Duration::ZERO).unwrap();
    c.poll(Duration::ZERO).unwrap();
    assert_eq!(c.assignment(), [tp(0), tp(1)]);
    assert!(matches!(group.remote_heartbeat(&r, g2), Err(Error::UnknownMember { .. })));
    assert!(matches!(
        group.remote_commit(&r, g2, &[(kept[0].clone(), OffsetAndMetadata::new(0, ""))]),
        Err(Error::UnknownMember { .. })
    ));
    owners_disjoint(&broker);

    // A remote member joins again; the in-process member leaves: the
    // remote one gets both (the in-process one revoked on close).
    let r2 = group.new_member_id("kafka-client");
    assert_eq!(group.remote_join(join(&r2, vec![]), Duration::ZERO).unwrap(), RemoteJoinOutcome::Pending);
    c.poll(Duration::ZERO).unwrap();
    let g = generation(group.remote_join(join(&r2, vec![]), wait).unwrap());
    c.close().unwrap();
    assert!(matches!(group.remote_heartbeat(&r2, g), Err(Error::RebalanceInProgress { .. })));
    let g = generation(group.remote_join(join(&r2, vec![]), wait).unwrap());
    assert_eq!(group.remote_sync(&r2, g, wait).unwrap(), [tp(0), tp(1)]);
    group.remote_leave(&r2).unwrap();
    assert!(broker.describe_group("g").unwrap().members.is_empty());
}

/// A Kafka client with the instance id of an in-process static member that
/// closed within its session takes its place as a remote member: its
/// SyncGroup, Heartbeat and commits are those of a remote member (it was
/// left an in-process one: UNKNOWN_MEMBER_ID, then FENCED_INSTANCE_ID on
/// the client's rejoin, which is fatal to it).
#[test]
fn a_remote_member_takes_the_place_of_a_departed_in_process_static_member() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone())).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let group = broker.group("g");
    let wait = Duration::from_millis(200);
    let mut c = broker
        .consumer(ConsumerConfig::with_group("g").group_instance_id("one").session_timeout(Duration::from_secs(45)))
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    clock.advance(Duration::from_secs(10));
    for _ in 0..3 {
        c.poll(Duration::ZERO).unwrap();
    }
    assert_eq!(c.assignment().len(), 2);
    c.close().unwrap();

    let r = group.new_member_id("kafka-client");
    let joined = RemoteJoin { group_instance_id: Some("one".into()), ..join(&r, vec![]) };
    let g = generation(group.remote_join(joined, wait).unwrap());
    assert!(group.has_remote_member(&r));
    assert_eq!(group.remote_sync(&r, g, wait).unwrap(), [tp(0), tp(1)]);
    group.remote_heartbeat(&r, g).unwrap();
    group.remote_commit(&r, g, &[(tp(0), OffsetAndMetadata::new(0, ""))]).unwrap();
    // Its explicit leave removes it (a remote member, static or not).
    group.remote_leave(&r).unwrap();
    assert!(broker.describe_group("g").unwrap().members.is_empty());
}

/// A remote member whose session ended without a LeaveGroup leaves no
/// group behind once maintenance runs (one per group id ever used, for the
/// broker's life, before); committed offsets keep theirs listed.
#[test]
fn a_group_whose_remote_members_expired_is_forgotten() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let dir = tempfile::tempdir().unwrap();
    let broker =
        Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone()).maintenance_interval(None)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let wait = Duration::from_millis(200);
    for (id, commits) in [("gone", false), ("kept", true)] {
        let group = broker.group(id);
        let r = group.new_member_id("kafka-client");
        let g1 = generation(group.remote_join(join(&r, vec![]), wait).unwrap());
        assert_eq!(group.remote_sync(&r, g1, wait).unwrap(), [tp(0), tp(1)]);
        if commits {
            group.remote_commit(&r, g1, &[(tp(0), OffsetAndMetadata::new(0, ""))]).unwrap();
        }
    }
    assert_eq!(broker.list_groups(), ["gone", "kept"]);
    broker.run_maintenance().unwrap();
    assert_eq!(broker.list_groups(), ["gone", "kept"], "members still in their sessions");
    clock.advance(Duration::from_secs(11));
    broker.run_maintenance().unwrap();
    assert_eq!(broker.list_groups(), ["kept"]);
    assert_eq!(broker.describe_group("kept").unwrap().members.len(), 0);
    // The id works as a new group.
    let group = broker.group("gone");
    let r = group.new_member_id("kafka-client");
    assert!(matches!(group.remote_join(join(&r, vec![]), wait).unwrap(), RemoteJoinOutcome::Joined { .. }));
}

/// A SyncGroup waiting for partitions another member has yet to release
/// stops waiting when its caller says so (a server shutting down), instead
/// of holding it for the whole wait.
#[test]
fn a_waiting_remote_sync_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let group = broker.group("g");
    let wait = Duration::from_millis(200);
    let r1 = group.new_member_id("kafka-client");
    let g1 = generation(group.remote_join(join(&r1, vec![]), wait).unwrap());
    assert_eq!(group.remote_sync(&r1, g1, wait).unwrap(), [tp(0), tp(1)]);
    // A second member: both rejoin, the first keeping what it owns, so
    // the second's partition is not free until the first rejoins without.
    let r2 = group.new_member_id("kafka-client");
    assert_eq!(group.remote_join(join(&r2, vec![]), Duration::ZERO).unwrap(), RemoteJoinOutcome::Pending);
    let g2 = generation(group.remote_join(join(&r1, vec![tp(0), tp(1)]), wait).unwrap());
    assert_eq!(generation(group.remote_join(join(&r2, vec![]), wait).unwrap()), g2);
    assert_eq!(group.remote_sync(&r1, g2, wait).unwrap().len(), 1);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let start = std::time::Instant::now();
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, std::sync::atomic::Ordering::Release);
        });
        group.remote_sync_unless(&r2, g2, Duration::from_secs(30), &|| stop.load(std::sync::atomic::Ordering::Acquire))
    });
    let took = start.elapsed();
    assert_eq!(got.unwrap(), Vec::<TopicPartition>::new(), "nothing free yet");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(5), "{took:?}");
}

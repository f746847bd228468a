//! Groups share partitions: each record goes to exactly one member of a
//! group, every group sees every record, and members that leave (closing,
//! dropping, or missing their poll deadline) hand their partitions over.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamlog::{
    Assignor, Broker, BrokerOptions, Consumer, ConsumerConfig, ManualClock, OffsetReset, ProducerRecord,
    RebalanceListener, TopicConfig, TopicPartition,
};

fn broker(clock: Option<Arc<ManualClock>>) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = BrokerOptions::default();
    if let Some(c) = clock {
        opts = opts.clock(c);
    }
    let b = Broker::open(dir.path(), opts).unwrap();
    b.create_topic("orders", TopicConfig::with_partitions(6)).unwrap();
    (dir, b)
}

fn produce(b: &Broker, from: u64, n: u64) {
    let p = b.producer();
    for i in from..from + n {
        p.send(ProducerRecord::new("orders", i.to_string()).key(format!("k{i}"))).unwrap();
    }
}

fn member(b: &Broker, group: &str, assignor: Assignor) -> Consumer {
    let cfg = ConsumerConfig::with_group(group).auto_offset_reset(OffsetReset::Earliest).assignor(assignor);
    let mut c = b.consumer(cfg).unwrap();
    c.subscribe(&["orders"]).unwrap();
    c
}

/// Polls every member in turn until `rounds` polls in a row return nothing.
fn pump(members: &mut [&mut Consumer], seen: &mut Vec<(String, u64)>) {
    let mut idle = 0;
    while idle < 3 {
        let mut got = 0;
        for m in members.iter_mut() {
            for r in m.poll(Duration::from_millis(5)).unwrap() {
                seen.push((
                    m.member_id().unwrap().to_owned(),
                    std::str::from_utf8(r.value.as_ref().unwrap()).unwrap().parse().unwrap(),
                ));
                got += 1;
            }
        }
        idle = if got == 0 { idle + 1 } else { 0 };
    }
}

fn assert_disjoint_and_complete(members: &[&Consumer], partitions: u32) {
    let mut all = BTreeSet::new();
    for m in members {
        for tp in m.assignment() {
            assert!(all.insert(tp.clone()), "{tp} held twice");
        }
    }
    assert_eq!(all.len() as u32, partitions, "every partition held");
}

#[test]
fn three_members_split_six_partitions_and_each_record_is_seen_once() {
    let (_d, b) = broker(None);
    produce(&b, 0, 600);
    let mut c1 = member(&b, "g", Assignor::Range);
    let mut c2 = member(&b, "g", Assignor::Range);
    let mut c3 = member(&b, "g", Assignor::Range);
    let mut seen = Vec::new();
    pump(&mut [&mut c1, &mut c2, &mut c3], &mut seen);
    assert_disjoint_and_complete(&[&c1, &c2, &c3], 6);
    for c in [&c1, &c2, &c3] {
        assert_eq!(c.assignment().len(), 2);
    }
    let values: Vec<u64> = seen.iter().map(|(_, v)| *v).collect();
    let unique: HashSet<u64> = values.iter().copied().collect();
    assert_eq!(unique.len(), 600);
    assert_eq!(values.len(), 600, "no record delivered twice");

    // A second group sees everything again.
    let mut other = member(&b, "other", Assignor::RoundRobin);
    let mut seen2 = Vec::new();
    pump(&mut [&mut other], &mut seen2);
    assert_eq!(seen2.len(), 600);
}

#[test]
fn a_member_that_leaves_hands_over_its_partitions() {
    let (_d, b) = broker(None);
    produce(&b, 0, 300);
    let mut c1 = member(&b, "g", Assignor::Range);
    let mut c2 = member(&b, "g", Assignor::Range);
    let mut c3 = member(&b, "g", Assignor::Range);
    let mut seen = Vec::new();
    pump(&mut [&mut c1, &mut c2, &mut c3], &mut seen);
    c3.close().unwrap();
    produce(&b, 300, 300);
    pump(&mut [&mut c1, &mut c2], &mut seen);
    assert_disjoint_and_complete(&[&c1, &c2], 6);
    drop(c2);
    produce(&b, 600, 300);
    pump(&mut [&mut c1], &mut seen);
    assert_eq!(c1.assignment().len(), 6);
    let unique: HashSet<u64> = seen.iter().map(|(_, v)| *v).collect();
    assert_eq!(unique.len(), 900, "nothing lost across the handovers");
    c1.commit().unwrap();
    let d = b.describe_group("g").unwrap();
    assert_eq!(d.members.len(), 1);
    assert!(d.partitions.iter().all(|p| p.lag == Some(0)), "{:?}", d.partitions);
}

#[test]
fn a_member_that_stops_polling_is_removed() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let (_d, b) = broker(Some(clock.clone()));
    let cfg = |g: &str| {
        ConsumerConfig::with_group(g)
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_interval(Duration::from_secs(10))
    };
    let mut alive = b.consumer(cfg("g")).unwrap();
    alive.subscribe(&["orders"]).unwrap();
    let mut stuck = b.consumer(cfg("g")).unwrap();
    stuck.subscribe(&["orders"]).unwrap();
    stuck.poll(Duration::ZERO).unwrap();
    // The rebalance completes when alive rejoins (its poll); stuck picks
    // its half up on its next poll.
    alive.poll(Duration::ZERO).unwrap();
    stuck.poll(Duration::ZERO).unwrap();
    assert_eq!(alive.assignment().len(), 3);
    assert_eq!(stuck.assignment().len(), 3);
    clock.advance(Duration::from_secs(11));
    alive.poll(Duration::ZERO).unwrap();
    alive.poll(Duration::ZERO).unwrap();
    assert_eq!(alive.assignment().len(), 6, "the stuck member's partitions moved");
    // The stuck member learns on its next poll that it lost everything, and rejoins.
    let lost = Arc::new(Mutex::new(Vec::new()));
    struct Lost(Arc<Mutex<Vec<TopicPartition>>>);
    impl RebalanceListener for Lost {
        fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
            self.0.lock().unwrap().extend_from_slice(p);
        }
    }
    stuck.set_listener(Box::new(Lost(lost.clone())));
    stuck.poll(Duration::ZERO).unwrap();
    assert_eq!(lost.lock().unwrap().len(), 3);
}

#[derive(Default)]
struct Events {
    revoked: Vec<TopicPartition>,
    assigned: Vec<TopicPartition>,
}
struct Recorder(Arc<Mutex<Events>>);
impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().revoked.extend_from_slice(p);
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().assigned.extend_from_slice(p);
    }
}

#[test]
fn cooperative_sticky_revokes_only_what_moves() {
    let (_d, b) = broker(None);
    let events = Arc::new(Mutex::new(Events::default()));
    let mut a = member(&b, "g", Assignor::CooperativeSticky);
    a.set_listener(Box::new(Recorder(events.clone())));
    a.poll(Duration::ZERO).unwrap();
    assert_eq!(a.assignment().len(), 6);
    let before: BTreeSet<TopicPartition> = a.assignment().into_iter().collect();
    let mut c = member(&b, "g", Assignor::CooperativeSticky);
    let mut seen = Vec::new();
    pump(&mut [&mut a, &mut c], &mut seen);
    let ev = events.lock().unwrap();
    assert_eq!(ev.revoked.len(), 3, "only the moved partitions are revoked: {:?}", ev.revoked);
    let after: BTreeSet<TopicPartition> = a.assignment().into_iter().collect();
    assert!(after.is_subset(&before));
    assert_disjoint_and_complete(&[&a, &c], 6);
}

#[test]
fn eager_assignors_revoke_everything_then_reassign() {
    let (_d, b) = broker(None);
    let events = Arc::new(Mutex::new(Events::default()));
    let mut a = member(&b, "g", Assignor::Range);
    a.set_listener(Box::new(Recorder(events.clone())));
    a.poll(Duration::ZERO).unwrap();
    let mut c = member(&b, "g", Assignor::Range);
    let mut seen = Vec::new();
    pump(&mut [&mut a, &mut c], &mut seen);
    let ev = events.lock().unwrap();
    assert_eq!(ev.revoked.len(), 6);
    assert_eq!(ev.assigned.len(), 6 + 3);
}

#[test]
fn pattern_subscriptions_follow_new_topics() {
    let (_d, b) = broker(None);
    b.create_topic("metrics.cpu", TopicConfig::with_partitions(1)).unwrap();
    let mut c = b.consumer(ConsumerConfig::with_group("m").auto_offset_reset(OffsetReset::Earliest)).unwrap();
    c.subscribe_pattern(|t| t.starts_with("metrics.")).unwrap();
    c.poll(Duration::ZERO).unwrap();
    assert_eq!(c.assignment(), vec![TopicPartition::new("metrics.cpu", 0)]);
    b.create_topic("metrics.disk", TopicConfig::with_partitions(2)).unwrap();
    b.producer().send(ProducerRecord::new("metrics.disk", "x").partition(1)).unwrap();
    let recs = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(c.assignment().len(), 3);
    assert_eq!(recs.len(), 1);
    let groups: BTreeMap<String, usize> =
        b.list_groups().into_iter().map(|g| (g.clone(), b.describe_group(&g).unwrap().members.len())).collect();
    assert_eq!(groups.get("m"), Some(&1));
}

#[test]
fn a_parked_member_is_woken_when_a_partition_is_released() {
    let (_d, b) = broker(None);
    produce(&b, 0, 60);
    let cfg =
        || ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest).spin(Duration::from_millis(300));
    let mut a = b.consumer(cfg()).unwrap();
    a.subscribe(&["orders"]).unwrap();
    let mut seen = Vec::new();
    pump(&mut [&mut a], &mut seen);
    let mut late = b.consumer(cfg().enable_auto_commit(false)).unwrap();
    late.subscribe(&["orders"]).unwrap();
    produce(&b, 60, 600);
    let leaver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        a.close().unwrap();
    });
    let start = std::time::Instant::now();
    let got = late.poll(Duration::from_secs(20)).unwrap();
    assert!(!got.is_empty());
    assert!(start.elapsed() < Duration::from_secs(10), "woken by the release: {:?}", start.elapsed());
    leaver.join().unwrap();
}

#[test]
fn a_long_idle_poll_keeps_the_member_alive() {
    let (_d, b) = broker(None);
    let cfg = ConsumerConfig::with_group("g").max_poll_interval(Duration::from_millis(200));
    let mut c = b.consumer(cfg).unwrap();
    c.subscribe(&["orders"]).unwrap();
    c.poll(Duration::ZERO).unwrap();
    let (id, generation) = (c.member_id().unwrap().to_owned(), c.generation());
    c.poll(Duration::from_millis(400)).unwrap();
    c.poll(Duration::ZERO).unwrap();
    assert_eq!(c.member_id().unwrap(), id);
    assert_eq!(c.generation(), generation);
}

#[test]
fn a_member_that_panicked_inside_poll_is_evicted_after_its_deadline() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let (_d, b) = broker(Some(clock.clone()));
    let cfg = || ConsumerConfig::with_group("g").max_poll_interval(Duration::from_secs(10));
    struct Boom;
    impl RebalanceListener for Boom {
        fn on_partitions_assigned(&mut self, _: &[TopicPartition]) {
            panic!("listener failed");
        }
    }
    let mut doomed = b.consumer(cfg()).unwrap();
    doomed.subscribe_with(&["orders"], Box::new(Boom)).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doomed.poll(Duration::ZERO)));
    assert!(caught.is_err());
    let mut other = b.consumer(cfg()).unwrap();
    other.subscribe(&["orders"]).unwrap();
    other.poll(Duration::ZERO).unwrap();
    assert!(other.assignment().len() < 6, "the panicked member still counts for now");
    clock.advance(Duration::from_secs(11));
    other.poll(Duration::ZERO).unwrap();
    other.poll(Duration::ZERO).unwrap();
    assert_eq!(other.assignment().len(), 6, "evicted once its poll deadline and interval passed");
    std::mem::forget(doomed);
}

#[test]
fn deleting_one_topic_does_not_redeliver_the_others() {
    let (_d, b) = broker(None);
    b.create_topic("other", TopicConfig::with_partitions(1)).unwrap();
    produce(&b, 0, 60);
    let mut c = b.consumer(ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest)).unwrap();
    c.subscribe(&["orders", "other"]).unwrap();
    let mut seen = Vec::new();
    pump(&mut [&mut c], &mut seen);
    assert_eq!(seen.len(), 60);
    b.delete_topic("other").unwrap();
    // A subscribed topic deleted is reported once, then the member goes on.
    let r = c.poll(Duration::from_millis(5));
    assert!(matches!(&r, Err(streamlog::Error::UnknownTopic { topic }) if topic == "other"), "{r:?}");
    pump(&mut [&mut c], &mut seen);
    assert_eq!(seen.len(), 60, "nothing delivered twice after the rebalance");
    c.close().unwrap();
}

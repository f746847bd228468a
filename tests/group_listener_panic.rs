//! A rebalance listener that panics, or another member's waker that panics
//! when a revoked partition is released to it (caught by the application,
//! which goes on polling or drops the consumer), does not stop the
//! revocation: the partitions are released all the same, and a close still
//! leaves the group. Before, such a panic left the revoked partitions held
//! (the member had already moved to the new generation, so no poll revoked
//! them again) and read by the old member, and a close left the member in
//! the group until its `max_poll_interval` ran out.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, Consumer, ConsumerConfig, OffsetReset, ProducerRecord, RebalanceListener, TopicConfig,
    TopicPartition,
};

/// Panics at the first revocation after it is armed.
struct PanicsOnce(Arc<AtomicBool>);

impl RebalanceListener for PanicsOnce {
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {
        if self.0.swap(false, Ordering::SeqCst) {
            panic!("the listener failed");
        }
    }
}

struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("a broken waker");
    }
}

/// A broker with topic `t` of two partitions, five records in each.
fn broker() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let p = b.producer();
    for i in 0..10u32 {
        p.send(ProducerRecord::new("t", i.to_string()).partition(i % 2)).unwrap();
    }
    (dir, b)
}

/// A member of group `g` that commits nothing: whoever takes a partition
/// reads it from the start.
fn member(b: &Broker) -> Consumer {
    let config = ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false);
    b.consumer(config).unwrap()
}

/// The first member of group `g`, holding both partitions, with its
/// listener armed.
fn first_member(b: &Broker) -> Consumer {
    let armed = Arc::new(AtomicBool::new(false));
    let mut a = member(b);
    a.subscribe_with(&["t"], Box::new(PanicsOnce(Arc::clone(&armed)))).unwrap();
    a.poll(Duration::ZERO).unwrap();
    assert_eq!(a.assignment().len(), 2);
    armed.store(true, Ordering::SeqCst);
    a
}

#[test]
fn a_revocation_whose_listener_panics_still_hands_the_partitions_over() {
    let (_dir, b) = broker();
    let mut a = first_member(&b);
    let mut second = member(&b);
    second.subscribe(&["t"]).unwrap();
    // The first member's poll completes the rebalance (the second one
    // rejoined as it joined) and revokes both partitions (eager): the
    // listener panics.
    let outcome = catch_unwind(AssertUnwindSafe(|| a.poll(Duration::ZERO)));
    assert!(outcome.is_err(), "the listener's panic reaches the caller");
    let mut read_by_a = Vec::new();
    let mut read_by_second = Vec::new();
    for _ in 0..3 {
        read_by_a.extend(a.poll(Duration::ZERO).unwrap().into_iter().map(|r| r.partition));
        read_by_second.extend(second.poll(Duration::ZERO).unwrap().into_iter().map(|r| r.partition));
    }
    assert_eq!(a.assignment(), [TopicPartition::new("t", 0)]);
    assert_eq!(second.assignment(), [TopicPartition::new("t", 1)], "the revoked partition went to its new owner");
    assert!(read_by_a.iter().all(|&p| p == 0), "the old member read a revoked partition: {read_by_a:?}");
    assert_eq!(read_by_second, [1; 5]);
    let held: Vec<Vec<TopicPartition>> =
        b.describe_group("g").unwrap().members.into_iter().map(|m| m.partitions).collect();
    assert_eq!(held.concat().len(), 2, "one owner per partition: {held:?}");
}

#[test]
fn a_revocation_whose_release_wakes_a_panicking_waker_still_hands_the_partitions_over() {
    let (_dir, b) = broker();
    let mut a = member(&b);
    a.subscribe(&["t"]).unwrap();
    a.poll(Duration::ZERO).unwrap();
    let mut second = member(&b);
    second.subscribe(&["t"]).unwrap();
    let waker = Waker::from(Arc::new(PanickingWaker));
    let mut cx = Context::from_waker(&waker);
    {
        let mut recv = Box::pin(second.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending(), "the rebalance waits for the first member");
        // The first member's poll completes the rebalance, which wakes
        // the second: its waker panics.
        assert!(catch_unwind(AssertUnwindSafe(|| a.poll(Duration::ZERO))).is_err());
        assert!(recv.as_mut().poll(&mut cx).is_pending(), "its partition is still held");
        // Now the first member revokes both partitions (eager); releasing
        // the first wakes the second, whose waker panics again.
        assert!(catch_unwind(AssertUnwindSafe(|| a.poll(Duration::ZERO))).is_err());
    }
    for _ in 0..3 {
        a.poll(Duration::ZERO).unwrap();
        second.poll(Duration::ZERO).unwrap();
    }
    assert_eq!(a.assignment(), [TopicPartition::new("t", 0)]);
    assert_eq!(second.assignment(), [TopicPartition::new("t", 1)], "the revoked partition went to its new owner");
}

#[test]
fn a_close_whose_listener_panics_still_leaves_the_group() {
    let (_dir, b) = broker();
    let a = first_member(&b);
    let outcome = catch_unwind(AssertUnwindSafe(move || a.close()));
    assert!(outcome.is_err(), "the listener's panic reaches the caller");
    assert!(b.describe_group("g").unwrap().members.is_empty(), "the member left");
    let mut next = member(&b);
    next.subscribe(&["t"]).unwrap();
    assert_eq!(next.poll(Duration::from_secs(5)).unwrap().len(), 10, "its partitions are free at once");
    assert_eq!(next.assignment().len(), 2);
}

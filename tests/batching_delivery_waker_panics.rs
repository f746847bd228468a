//! A delivery future's waker that panics, woken by the batching producer's
//! background thread, does not end that thread. It did: the batches that
//! lingered after it were never sent (their futures never resolved) and a
//! `flush` waiting for a handed-off batch waited for ever.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::within;
use streamlog::{BatchingConfig, Broker, DeliveryFuture, Durability, ProducerRecord, TopicConfig};

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("a broken waker");
    }
}

/// Polls `delivery` once with a waker that panics when woken.
fn poll_with_panicking_waker(delivery: &mut DeliveryFuture) {
    let waker = Waker::from(Arc::new(Panics));
    assert!(Pin::new(delivery).poll(&mut Context::from_waker(&waker)).is_pending(), "not appended yet");
}

#[test]
fn lingering_batches_are_sent_after_a_delivery_waker_panicked() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let config = BatchingConfig::default().linger(Duration::from_millis(1));
    let producer = broker.batching_producer(config).unwrap();
    let offsets = within(Duration::from_secs(10), move || {
        let mut first = producer.send(ProducerRecord::new("t", "a")).unwrap();
        poll_with_panicking_waker(&mut first);
        // Nobody flushes: the background thread sends both batches.
        let first = first.wait().unwrap().offset;
        let second = producer.send(ProducerRecord::new("t", "b")).unwrap().wait().unwrap().offset;
        (first, second)
    });
    assert_eq!(offsets, (0, 1));
}

#[test]
fn a_flush_returns_after_a_handed_off_batch_woke_a_panicking_waker() {
    let broker = Broker::temporary().unwrap();
    // A partition that syncs every append: its batches go to the background thread.
    broker.create_topic("s", TopicConfig::with_partitions(1).durability(Durability::Sync)).unwrap();
    let config = BatchingConfig::default().linger(Duration::from_secs(600));
    let producer = broker.batching_producer(config).unwrap();
    let offsets = within(Duration::from_secs(10), move || {
        let mut first = producer.send(ProducerRecord::new("s", "a")).unwrap();
        poll_with_panicking_waker(&mut first);
        producer.flush();
        let second = producer.send(ProducerRecord::new("s", "b")).unwrap();
        producer.flush();
        (first.wait().unwrap().offset, second.wait().unwrap().offset)
    });
    assert_eq!(offsets, (0, 1));
}

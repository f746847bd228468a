//! A consumer's waker that panics inside the append of a batching
//! producer's batch (the append wakes the partition's waiters) does not
//! leave the batch's deliveries unresolved. The panic cut the delivery
//! short after the records were appended: their futures never resolved and
//! their room in the buffer was never given back. On the background thread
//! the panic is reported and the thread goes on; on a sender's thread it
//! goes on to the sender once the batch's outcome is published.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::within;
use streamlog::{BatchingConfig, Broker, ConsumerConfig, ProducerRecord, TopicConfig, TopicPartition};

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("a broken waker");
    }
}

/// A broker with topic `t` whose partition has a consumer task waiting
/// with a waker that panics, for `scenario`.
fn with_a_panicking_consumer_waker(scenario: impl FnOnce(&Broker)) {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let mut consumer = broker.consumer(ConsumerConfig::default()).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let waker = Waker::from(Arc::new(Panics));
    let mut recv = Box::pin(consumer.recv());
    assert!(recv.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    scenario(&broker);
    drop(recv);
}

#[test]
fn a_lingering_batch_is_delivered_though_its_append_woke_a_panicking_waker() {
    with_a_panicking_consumer_waker(|broker| {
        let config = BatchingConfig::default().linger(Duration::from_millis(1));
        let producer = broker.batching_producer(config).unwrap();
        let (first, second, in_flight) = within(Duration::from_secs(10), move || {
            // The background thread appends it: the waker panics there.
            let first = producer.send(ProducerRecord::new("t", "a")).unwrap().wait().unwrap().offset;
            // And the thread lives on.
            let second = producer.send(ProducerRecord::new("t", "b")).unwrap().wait().unwrap().offset;
            (first, second, producer.in_flight())
        });
        assert_eq!((first, second), (0, 1));
        assert_eq!(in_flight, 0, "the room of the delivered records is given back");
    });
}

#[test]
fn a_batch_appended_by_a_send_is_delivered_before_the_waker_panic_reaches_the_sender() {
    with_a_panicking_consumer_waker(|broker| {
        // Two one-byte records fill a batch: the send of the second appends it.
        let config = BatchingConfig::default().batch_size(2).linger(Duration::from_secs(600));
        let producer = broker.batching_producer(config).unwrap();
        let first = producer.send(ProducerRecord::new("t", "a")).unwrap();
        let filling = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            producer.send(ProducerRecord::new("t", "b")).map(drop)
        }));
        assert!(filling.is_err(), "the waker's panic goes on to the sender");
        assert_eq!(broker.topic("t").unwrap().partition(0).unwrap().high_watermark(), 2, "both appended");
        assert_eq!(producer.in_flight(), 0, "the room of the appended records is given back");
        let offset = within(Duration::from_secs(10), move || first.wait().unwrap().offset);
        assert_eq!(offset, 0);
    });
}

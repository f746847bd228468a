//! A send that finds the batching producer's buffer full makes every
//! clone's batches due at once, as Kafka's accumulator does while a sender
//! waits for buffer room, so that room frees as soon as appends make it.
//! The records another clone held in a lingering batch kept the buffer full
//! for the whole linger: a blocking or async send waited that long (for
//! ever with a linger too long to come due).

mod common;

use std::time::Duration;

use common::within;
use streamlog::{BatchingConfig, BatchingProducer, Broker, Error, ProducerRecord, TopicConfig};

/// A producer whose buffer (4 records) is full with clone `a`'s lingering
/// batch, and a second clone `b`.
fn full_with_another_clones_batch(broker: &Broker, linger: Duration) -> (BatchingProducer, BatchingProducer) {
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let a = broker.batching_producer(BatchingConfig::default().linger(linger).max_queued(4)).unwrap();
    let b = a.clone();
    for _ in 0..4 {
        drop(a.send(ProducerRecord::new("t", "x")).unwrap());
    }
    assert!(matches!(b.try_send(ProducerRecord::new("t", "y")), Err(Error::QueueFull { max: 4 })));
    (a, b)
}

#[test]
fn a_blocking_send_does_not_wait_out_another_clones_linger() {
    let broker = Broker::temporary().unwrap();
    let (a, b) = full_with_another_clones_batch(&broker, Duration::from_secs(3600));
    let offset = within(Duration::from_secs(10), move || {
        let sent = b.send(ProducerRecord::new("t", "y")).unwrap();
        b.flush();
        sent.wait().unwrap().offset
    });
    assert_eq!(offset, 4, "after the other clone's four records");
    drop(a);
}

#[test]
fn an_async_send_does_not_wait_for_a_linger_that_never_comes_due() {
    let broker = Broker::temporary().unwrap();
    let (a, b) = full_with_another_clones_batch(&broker, Duration::MAX);
    let offset = within(Duration::from_secs(10), move || {
        let sent = futures_executor::block_on(b.send_async(ProducerRecord::new("t", "y"))).unwrap();
        b.flush();
        sent.wait().unwrap().offset
    });
    assert_eq!(offset, 4, "after the other clone's four records");
    drop(a);
}

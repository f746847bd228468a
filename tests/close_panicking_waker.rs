//! Closing the broker wakes every waiter, whatever a waker does: one that
//! panicked stopped the close after it had marked the broker closed, so
//! nothing was sealed, no clean marker written (the next open recovers) and
//! the directory stayed locked until the last handle went, and a second
//! close returned `Ok` at once.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use streamlog::{Broker, BrokerOptions, ConsumerConfig, TopicConfig, TopicPartition};

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("a broken waker");
    }
}

#[test]
fn a_waker_that_panics_does_not_stop_the_close_half_way() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    broker.create_topic("sealed-all-the-same", TopicConfig::with_partitions(1)).unwrap();
    let mut consumer = broker.consumer(ConsumerConfig::default()).unwrap();
    consumer.assign(&[TopicPartition::new("sealed-all-the-same", 0)]).unwrap();
    let waker = Waker::from(Arc::new(Panics));
    let mut recv = Box::pin(consumer.recv());
    assert!(recv.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());

    let closer = broker.clone();
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || closer.close()));
    assert!(closed.is_err(), "the waker's panic goes on to the caller");
    let marker = std::fs::read(dir.path().join(".clean_shutdown")).expect("closed cleanly all the same");
    // With the partition whose consumer's waker panicked.
    assert!(marker.windows(19).any(|w| w == b"sealed-all-the-same"), "the partition is in the clean marker");
    // The directory is free while this handle and the consumer still live.
    drop(Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap());
    drop(recv);
    drop((consumer, broker));
}

//! A custom partitioner may send through the batching producer that asks
//! it (an audit record, say), through the very clone that is sending or
//! through another. The partitioner ran under the sending clone's buffer
//! lock, which is not reentrant: a send through the same clone waited for
//! that lock on its own thread, forever.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::within;
use futures_executor::block_on;
use streamlog::{BatchingConfig, BatchingProducer, Broker, Partitioner, ProducerConfig, ProducerRecord, TopicConfig};

/// Puts every record of topic `t` on partition 1, after sending two audit
/// records (one `send`, one `try_send`) through the producer it was given.
#[derive(Debug, Default)]
struct Auditing(OnceLock<Weak<BatchingProducer>>);

impl Partitioner for Auditing {
    fn partition(&self, topic: &str, _key: Option<&[u8]>, _value: Option<&[u8]>, _count: u32) -> u32 {
        if topic != "t" {
            return 0;
        }
        if let Some(p) = self.0.get().and_then(Weak::upgrade) {
            drop(p.send(ProducerRecord::new("audit", "chose 1")).unwrap());
            drop(p.try_send(ProducerRecord::new("audit", "chose 1")).unwrap());
        }
        1
    }
}

#[test]
fn a_partitioner_may_send_through_its_batching_producer() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    broker.create_topic("audit", TopicConfig::with_partitions(1)).unwrap();
    let auditing = Arc::new(Auditing::default());
    let config = BatchingConfig::default().producer(ProducerConfig::default().partitioner(auditing.clone()));
    let other = broker.batching_producer(config).unwrap();
    // The clone the partitioner sends through (a weak reference: no cycle
    // keeps the producer alive once the test drops it).
    let same = Arc::new(other.clone());
    auditing.0.set(Arc::downgrade(&same)).unwrap();
    let partitions = within(Duration::from_secs(10), move || {
        let mut deliveries = Vec::new();
        for _ in 0..3 {
            deliveries.push(same.send(ProducerRecord::new("t", "v")).unwrap());
            deliveries.push(same.try_send(ProducerRecord::new("t", "v")).unwrap());
            deliveries.push(block_on(same.send_async(ProducerRecord::new("t", "v"))).unwrap());
            deliveries.push(other.send(ProducerRecord::new("t", "v")).unwrap());
            deliveries.push(block_on(other.send_async(ProducerRecord::new("t", "v"))).unwrap());
        }
        other.flush();
        deliveries.into_iter().map(|d| d.wait().unwrap().partition).collect::<Vec<u32>>()
    });
    assert_eq!(partitions, vec![1; 15]);
    let t = broker.topic("t").unwrap();
    assert_eq!(t.partition(1).unwrap().high_watermark(), 15);
    assert_eq!(t.partition(0).unwrap().high_watermark(), 0);
    assert_eq!(broker.topic("audit").unwrap().partition(0).unwrap().high_watermark(), 30, "two per record");
}

/// Counts its calls.
#[derive(Debug, Default)]
struct Counting(AtomicUsize);

impl Partitioner for Counting {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, _value: Option<&[u8]>, _count: u32) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed);
        1
    }
}

/// A send that waits for room keeps the partition its partitioner chose
/// before: the partitioner runs once per record.
#[test]
fn a_send_waiting_for_room_runs_the_partitioner_once() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let counting = Arc::new(Counting::default());
    let config = BatchingConfig::default()
        .producer(ProducerConfig::default().partitioner(counting.clone()))
        .max_queued(1)
        .linger(Duration::from_secs(600));
    let first = broker.batching_producer(config).unwrap();
    let second = first.clone();
    let partitions = within(Duration::from_secs(10), move || {
        let delivered = first.send(ProducerRecord::new("t", "1")).unwrap();
        let mut waiting = pin!(second.send_async(ProducerRecord::new("t", "2")));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(waiting.as_mut().poll(&mut cx).is_pending(), "the first record fills the buffer");
        }
        first.flush();
        let Poll::Ready(waited) = waiting.as_mut().poll(&mut cx) else { panic!("room was freed") };
        second.flush();
        [delivered.wait().unwrap().partition, waited.unwrap().wait().unwrap().partition]
    });
    assert_eq!(partitions, [1, 1]);
    assert_eq!(counting.0.load(Ordering::Relaxed), 2, "once per record, however often the send was polled");
}

/// A send that waits for room with its partition chosen (by the
/// application's partitioner) fails as a send to a deleted topic does, if
/// the topic is deleted meanwhile, instead of buffering a record for a
/// partition that is gone.
#[test]
fn a_send_waiting_for_room_fails_when_its_topic_is_deleted() {
    let broker = Arc::new(Broker::temporary().unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let config = BatchingConfig::default()
        .producer(ProducerConfig::default().partitioner(Arc::new(Counting::default())))
        .max_queued(1)
        .linger(Duration::from_secs(600));
    let first = broker.batching_producer(config).unwrap();
    let second = first.clone();
    let b = Arc::clone(&broker);
    let waited = within(Duration::from_secs(10), move || {
        let delivered = first.send(ProducerRecord::new("t", "1")).unwrap();
        let mut waiting = pin!(second.send_async(ProducerRecord::new("t", "2")));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending(), "the first record fills the buffer");
        b.delete_topic("t").unwrap();
        first.flush();
        assert!(delivered.wait().is_err(), "its topic was deleted before its batch was appended");
        let Poll::Ready(waited) = waiting.as_mut().poll(&mut cx) else { panic!("room was freed") };
        waited.map(|_| ())
    });
    assert!(matches!(waited, Err(streamlog::Error::UnknownTopic { ref topic }) if topic == "t"), "{waited:?}");
}

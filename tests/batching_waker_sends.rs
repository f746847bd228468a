//! A waker may send through the batching producer that woke it (an
//! executor that polls the task at once, or an application's `Wake`). A
//! delivery woke its futures, and freed room woke the sends waiting for it,
//! while the clone's buffer was locked: a send from the waker through that
//! clone waited for the lock on its own thread, forever.

mod common;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::within;
use streamlog::{BatchingConfig, BatchingProducer, Broker, DeliveryFuture, ProducerRecord, TopicConfig};

/// Sends a record through `producer` when woken.
struct SendOnWake {
    producer: Arc<BatchingProducer>,
    sent: Mutex<Vec<streamlog::Result<DeliveryFuture>>>,
}

impl Wake for SendOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let sent = self.producer.try_send(ProducerRecord::new("t", "w").partition(0));
        self.sent.lock().unwrap().push(sent);
    }
}

/// What `waker` sent, once delivered: its offsets.
fn offsets_sent(waker: &SendOnWake) -> Vec<u64> {
    let sent = std::mem::take(&mut *waker.sent.lock().unwrap());
    sent.into_iter().map(|d| d.unwrap().wait().unwrap().offset).collect()
}

#[test]
fn a_delivery_waker_may_send_through_the_clone_that_delivered() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    // Two one-byte records fill a batch: the send of the second appends it.
    let config = BatchingConfig::default().batch_size(2).linger(Duration::from_secs(600));
    let producer = Arc::new(broker.batching_producer(config).unwrap());
    let offsets = within(Duration::from_secs(10), move || {
        let on_wake = Arc::new(SendOnWake { producer: Arc::clone(&producer), sent: Mutex::default() });
        let mut first = producer.send(ProducerRecord::new("t", "1").partition(0)).unwrap();
        let waker = Waker::from(Arc::clone(&on_wake));
        assert!(Pin::new(&mut first).poll(&mut Context::from_waker(&waker)).is_pending(), "not appended yet");
        drop(waker);
        let second = producer.send(ProducerRecord::new("t", "2").partition(0)).unwrap();
        producer.flush();
        let mut offsets = vec![first.wait().unwrap().offset, second.wait().unwrap().offset];
        offsets.extend(offsets_sent(&on_wake));
        offsets
    });
    assert_eq!(offsets, [0, 1, 2], "the waker sent once, after the batch it was woken by");
}

#[test]
fn a_send_waiting_for_room_may_send_through_the_clone_that_freed_it() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let config = BatchingConfig::default().max_queued(1).linger(Duration::from_secs(600));
    let producer = Arc::new(broker.batching_producer(config).unwrap());
    let offsets = within(Duration::from_secs(10), move || {
        let on_wake = Arc::new(SendOnWake { producer: Arc::clone(&producer), sent: Mutex::default() });
        let first = producer.send(ProducerRecord::new("t", "1").partition(0)).unwrap();
        // Another clone's send waits for the room the first record holds.
        let other = producer.as_ref().clone();
        let mut waiting = pin!(other.send_async(ProducerRecord::new("t", "2").partition(0)));
        let waker = Waker::from(Arc::clone(&on_wake));
        assert!(waiting.as_mut().poll(&mut Context::from_waker(&waker)).is_pending(), "the buffer is full");
        drop(waker);
        // Delivers the first record, which frees its room and wakes the waiting send.
        producer.flush();
        let mut offsets = vec![first.wait().unwrap().offset];
        // The waker sent while that flush ran: it is sent by the next.
        producer.flush();
        offsets.extend(offsets_sent(&on_wake));
        offsets
    });
    assert_eq!(offsets, [0, 1], "the waker sent once, into the room freed");
}

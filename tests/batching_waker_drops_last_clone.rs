//! A waker that holds the last clone of a batching producer, woken by the
//! producer's own background thread (a lingered batch delivered), drops
//! that clone there. The drop joined the background thread from itself:
//! the join failed (EDEADLK) and panicked the thread.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use streamlog::{BatchingConfig, BatchingProducer, Broker, ProducerRecord, TopicConfig};

struct HoldsTheProducer {
    producer: Mutex<Option<BatchingProducer>>,
    dropped: AtomicBool,
}

impl Wake for HoldsTheProducer {
    fn wake(self: Arc<Self>) {
        drop(self.producer.lock().unwrap().take());
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[test]
fn the_background_thread_may_drop_the_last_clone() {
    static BACKGROUND_PANICS: AtomicBool = AtomicBool::new(false);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("streamlog-batch") {
            BACKGROUND_PANICS.store(true, Ordering::SeqCst);
        }
        default_hook(info);
    }));
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let producer = broker.batching_producer(BatchingConfig::default().linger(Duration::from_millis(500))).unwrap();
    let mut delivery = producer.send(ProducerRecord::new("t", "v")).unwrap();
    let holder = Arc::new(HoldsTheProducer { producer: Mutex::new(Some(producer)), dropped: AtomicBool::new(false) });
    let waker = Waker::from(Arc::clone(&holder));
    assert!(Pin::new(&mut delivery).poll(&mut Context::from_waker(&waker)).is_pending(), "lingering");
    drop(waker);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holder.dropped.load(Ordering::SeqCst) {
        // A failed join panics inside the drop, before `dropped` is set.
        assert!(!BACKGROUND_PANICS.load(Ordering::SeqCst), "the background thread panicked");
        assert!(Instant::now() < deadline, "never woken");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The drop's join, had it happened, panicked right after the waker
    // returned.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!BACKGROUND_PANICS.load(Ordering::SeqCst), "the background thread panicked");
    assert_eq!(delivery.wait().unwrap().offset, 0);
    assert_eq!(broker.topic("t").unwrap().partition(0).unwrap().high_watermark(), 1);
}

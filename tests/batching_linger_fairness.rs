//! The background thread appends batches handed off for `Sync` topics and
//! sends batches whose linger is up; a steady stream of the first once kept
//! it from ever doing the second, so an idle clone's record waited until
//! the stream stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streamlog::{BatchingConfig, Broker, BrokerOptions, Durability, ProducerRecord, TopicConfig};

#[test]
fn sync_handoffs_do_not_hold_back_a_lingering_batch() {
    // Real syncs (a temporary broker skips them): each handed-off batch
    // keeps the background thread busy for a while.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    broker.create_topic("s", TopicConfig::with_partitions(1).durability(Durability::Sync)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let config = BatchingConfig::default().linger(Duration::from_millis(300)).batch_size(100).max_queued(200);
    let producer = broker.batching_producer(config).unwrap();
    let idle = producer.clone();
    let sent = Instant::now();
    let delivery = idle.send(ProducerRecord::new("t", "x").partition(0)).unwrap();
    let stop = AtomicBool::new(false);
    let took = std::thread::scope(|s| {
        let busy = producer.clone();
        let stop = &stop;
        // Full batches to the Sync topic, each handed to the background
        // thread, as fast as it takes them.
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(busy.send(ProducerRecord::new("s", vec![0u8; 200]).partition(0)).unwrap());
            }
        });
        let waiter = s.spawn(move || {
            delivery.wait().unwrap();
            sent.elapsed()
        });
        while !waiter.is_finished() && sent.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        waiter.join().unwrap()
    });
    // The linger plus the disk's time for a few syncs; it was the whole
    // 10 s (the stream's length) before.
    assert!(took < Duration::from_secs(5), "a 300 ms linger delivered after {took:?}");
}

//! A linger too long to add to an instant (`Duration::MAX`, "never linger
//! out") is accepted and means what it says: the background thread once
//! panicked on the overflow, after which nothing appended handed-off
//! batches and `flush` waited for ever.

use std::time::{Duration, Instant};

use streamlog::{BatchingConfig, Broker, Durability, ProducerRecord, TopicConfig};

#[test]
fn an_endless_linger_still_flushes_a_sync_topic() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("s", TopicConfig::with_partitions(1).durability(Durability::Sync)).unwrap();
    let producer = broker.batching_producer(BatchingConfig::default().linger(Duration::MAX)).unwrap();
    let delivery = producer.send(ProducerRecord::new("s", "x")).unwrap();
    // Let the background thread look at the open batch.
    std::thread::sleep(Duration::from_millis(100));
    let flushing = std::thread::spawn(move || {
        producer.flush();
        // Not dropped here: a hung background thread would hang the drop.
        producer
    });
    let start = Instant::now();
    while !flushing.is_finished() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(flushing.is_finished(), "flush hung");
    assert_eq!(delivery.wait().unwrap().offset, 0);
    drop(flushing.join().unwrap());
}

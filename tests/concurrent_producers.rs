//! Producers on several threads: nothing lost, and each thread's records
//! keep their order within each partition.

use std::collections::HashMap;
use std::sync::Arc;

use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};

#[test]
fn concurrent_producers_keep_per_partition_order_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    b.create_topic("t", TopicConfig::with_partitions(4).segment_bytes(64 << 10)).unwrap();
    let producer = b.producer();
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 5_000;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let p = producer.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let value = format!("{t}:{i}");
                    p.send(ProducerRecord::new("t", value).key(format!("key-{}", i % 97))).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let topic = b.topic("t").unwrap();
    let mut total = 0;
    for part in topic.partitions() {
        let mut last: HashMap<u64, u64> = HashMap::new();
        let mut next = 0;
        while next < part.high_watermark() {
            for batch in part.read(next, 1 << 20).unwrap() {
                for r in batch.records() {
                    let r = r.unwrap();
                    let v = std::str::from_utf8(r.value.as_ref().unwrap()).unwrap().to_owned();
                    let (t, i) = v.split_once(':').unwrap();
                    let (t, i): (u64, u64) = (t.parse().unwrap(), i.parse().unwrap());
                    if let Some(&prev) = last.get(&t) {
                        assert!(i > prev, "thread {t}: {i} after {prev}");
                    }
                    last.insert(t, i);
                    total += 1;
                }
                next = batch.next_offset();
            }
        }
    }
    assert_eq!(total, THREADS * PER_THREAD);
}

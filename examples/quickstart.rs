//! Quickstart: create a topic, produce keyed records into its partitions,
//! read them back zero-copy, close, reopen, and print what happened and how
//! fast.
//!
//! `cargo run --release --example quickstart [DIR]` (default: a temp dir).

use std::time::Instant;

use bytes::Bytes;
use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let broker = Broker::open(&dir, BrokerOptions::default())?;
    let topic = match broker.topic("events") {
        Ok(t) => t,
        Err(_) => broker.create_topic("events", TopicConfig::with_partitions(4).segment_bytes(64 << 20))?,
    };
    println!("broker at {}: topic {:?} with {} partitions", dir.display(), topic.name(), topic.partition_count());

    // One record per send, keyed: Kafka's murmur2 picks the partition.
    let producer = broker.producer();
    let n = 1_000_000u64;
    let value = Bytes::from(vec![b'x'; 100]);
    let keys: Vec<Bytes> = (0..1000).map(|i| Bytes::from(format!("user-{i}"))).collect();
    let start = Instant::now();
    for i in 0..n {
        producer.send(ProducerRecord::new("events", value.clone()).key(keys[(i % 1000) as usize].clone()))?;
    }
    let t = start.elapsed();
    println!("sent {n} keyed records of 100 B one at a time in {t:.2?}: {:.2} M/s", n as f64 / t.as_secs_f64() / 1e6);

    // Batched: one append per partition per call.
    let start = Instant::now();
    for chunk in 0..(n / 1000) {
        let batch = (0..1000)
            .map(|i| ProducerRecord::new("events", value.clone()).key(keys[((chunk + i) % 1000) as usize].clone()))
            .collect();
        producer.send_batch(batch)?;
    }
    let t = start.elapsed();
    println!("sent {n} more in batches of 1000 in {t:.2?}: {:.2} M/s", n as f64 / t.as_secs_f64() / 1e6);

    // Read every partition from the start.
    let start = Instant::now();
    let mut total = 0u64;
    for (i, part) in topic.partitions().iter().enumerate() {
        let (mut count, mut next) = (0u64, part.log_start_offset());
        while next < part.high_watermark() {
            for batch in part.read(next, 1 << 20)? {
                count += batch.records().filter(|r| r.value.is_some()).count() as u64;
                next = batch.next_offset();
            }
        }
        println!("  events-{i}: {count} records, {} segments", part.segment_count());
        total += count;
    }
    let t = start.elapsed();
    println!(
        "read {total} records zero-copy, checksums verified, in {t:.2?}: {:.1} M/s",
        total as f64 / t.as_secs_f64() / 1e6
    );

    broker.close()?;
    let start = Instant::now();
    let broker = Broker::open(&dir, BrokerOptions::default())?;
    let end: u64 = broker.topic("events")?.end_offsets().iter().sum();
    println!("closed cleanly, reopened in {:.2?}: {end} records in topic \"events\"", start.elapsed());
    Ok(())
}

//! Quickstart: create a topic, produce keyed records into its partitions,
//! consume them with a consumer group, restart the broker halfway and watch
//! the group resume from its committed offsets; print what happened and how
//! fast.
//!
//! `cargo run --release --example quickstart [DIR]` (default: a temp dir).

use std::time::{Duration, Instant};

use bytes::Bytes;
use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

const N: u64 = 1_000_000;

fn rate(n: u64, t: Duration) -> String {
    format!("{t:.2?}: {:.2} M records/s", n as f64 / t.as_secs_f64() / 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let broker = Broker::open(&dir, BrokerOptions::default())?;
    if broker.topic("events").is_err() {
        broker.create_topic("events", TopicConfig::with_partitions(4).segment_bytes(64 << 20))?;
    }
    let start_offsets: u64 = broker.topic("events")?.end_offsets().iter().sum();
    println!("broker at {}: topic \"events\", 4 partitions, {start_offsets} records already", dir.display());

    // Produce: one record per send, keyed (Kafka's murmur2 picks the
    // partition), then batches with one append per partition.
    let producer = broker.producer();
    let value = Bytes::from(vec![b'x'; 100]);
    let keys: Vec<Bytes> = (0..1000).map(|i| Bytes::from(format!("user-{i}"))).collect();
    let t = Instant::now();
    for i in 0..N {
        producer.send(ProducerRecord::new("events", value.clone()).key(keys[(i % 1000) as usize].clone()))?;
    }
    println!("produced {N} keyed 100 B records, one send each, in {}", rate(N, t.elapsed()));
    let t = Instant::now();
    for chunk in 0..N / 1000 {
        let batch = (0..1000)
            .map(|i| ProducerRecord::new("events", value.clone()).key(keys[((chunk + i) % 1000) as usize].clone()))
            .collect();
        producer.send_batch(batch)?;
    }
    println!("produced {N} more with send_batch (1000 per call) in {}", rate(N, t.elapsed()));

    // Consume half with a group, commit, and close the broker.
    let config = || {
        ConsumerConfig::with_group("analytics")
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000)
            .enable_auto_commit(false)
    };
    let total = start_offsets + 2 * N;
    let mut consumer = broker.consumer(config())?;
    consumer.subscribe(&["events"])?;
    let t = Instant::now();
    let mut seen = 0u64;
    while seen < total / 2 {
        seen += consumer.poll(Duration::from_secs(1))?.len() as u64;
    }
    consumer.commit()?;
    println!("group \"analytics\" consumed {seen} records zero-copy in {}", rate(seen, t.elapsed()));
    drop(consumer);
    broker.close()?;

    // Restart: the group resumes where it committed.
    let t = Instant::now();
    let broker = Broker::open(&dir, BrokerOptions::default())?;
    println!("closed and reopened the broker in {:.2?}", t.elapsed());
    let mut consumer = broker.consumer(config())?;
    consumer.subscribe(&["events"])?;
    let t = Instant::now();
    let mut rest = 0u64;
    loop {
        let n = consumer.poll(Duration::from_millis(100))?.len() as u64;
        if n == 0 {
            break;
        }
        rest += n;
    }
    consumer.commit()?;
    println!("after the restart the group resumed and consumed the other {rest} in {}", rate(rest, t.elapsed()));
    println!("consumed {} of {total} records, none twice", seen + rest);
    let d = broker.describe_group("analytics")?;
    for p in &d.partitions {
        println!("  {}: committed {:?}, lag {:?}", p.partition, p.committed, p.lag);
    }
    Ok(())
}

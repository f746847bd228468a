//! Consumer benchmarks.
//!
//! - `poll/100B`: records per second through `Consumer::poll` (one consumer,
//!   one partition, 100 B records), next to a raw `Partition::read` of the
//!   same log and a std `mpsc` channel (crossbeam's implementation) draining
//!   the same number of preloaded messages; and the borrowed pair,
//!   `Consumer::poll_batches` next to `Partition::read`, both walked with
//!   `Batch::record_views`.
//! - `latency`: from `send` on one thread to `poll` returning on another,
//!   next to the same hand-off through an `mpsc` channel. Criterion reports
//!   the mean; the p50/p99 are printed before the measurement, for a busy
//!   stream (gaps of 0-100 µs: the consumer spins) and for a parked
//!   consumer (gaps of 300-400 µs: the append wakes it).
//!
//! `cargo bench -p streamlog-bench --bench consume`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};

const PRELOAD: u64 = 2_000_000;

fn poll_throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let producer = broker.producer();
    let value = Bytes::from(vec![0xab; 100]);
    for chunk in 0..PRELOAD / 1000 {
        let batch = (0..1000)
            .map(|i| ProducerRecord::new("t", value.clone()).partition(0).timestamp((chunk * 1000 + i) as i64))
            .collect();
        producer.send_batch(batch).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let mut consumer = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).max_poll_records(10_000))
        .unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();

    let mut g = c.benchmark_group("poll");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    g.bench_function("100B/consumer_poll", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let recs = consumer.poll(Duration::ZERO).unwrap();
                if recs.is_empty() {
                    consumer.seek_to_beginning(&[]).unwrap();
                    continue;
                }
                for r in &recs {
                    black_box(r.value.as_ref().map(|v| v[0]));
                }
                left = left.saturating_sub(recs.len() as u64);
            }
            start.elapsed()
        })
    });
    g.bench_function("100B/consumer_poll_batches", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let polled = consumer.poll_batches(Duration::ZERO).unwrap();
                if polled.is_empty() {
                    consumer.seek_to_beginning(&[]).unwrap();
                    continue;
                }
                for p in &polled {
                    for r in p.batch.record_views() {
                        black_box(r.unwrap().value().map(|v| v[0]));
                        left = left.saturating_sub(1);
                    }
                }
            }
            start.elapsed()
        })
    });
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    g.bench_function("100B/partition_read_views", |b| {
        let mut next = 0;
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                if next >= PRELOAD {
                    next = 0;
                }
                for batch in log.read(next, 1 << 20).unwrap() {
                    for r in batch.record_views() {
                        black_box(r.unwrap().value().map(|v| v[0]));
                        left = left.saturating_sub(1);
                    }
                    next = batch.next_offset();
                }
            }
            start.elapsed()
        })
    });
    g.bench_function("100B/partition_read", |b| {
        let mut next = 0;
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                if next >= PRELOAD {
                    next = 0;
                }
                for batch in log.read(next, 1 << 20).unwrap() {
                    for r in batch.records() {
                        let r = r.unwrap();
                        black_box(r.value.as_ref().map(|v| v[0]));
                        left = left.saturating_sub(1);
                    }
                    next = batch.next_offset();
                }
            }
            start.elapsed()
        })
    });
    g.bench_function("100B/mpsc_channel", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = mpsc::channel();
            for _ in 0..iters {
                tx.send(value.clone()).unwrap();
            }
            let start = Instant::now();
            for _ in 0..iters {
                black_box(rx.recv().unwrap()[0]);
            }
            start.elapsed()
        })
    });
    g.finish();
}

/// Gap before send `i`: 0 to 100 µs (a busy stream: the consumer is still
/// spinning when the record arrives), plus `extra` (to measure a parked
/// consumer, woken by the append).
fn gap(i: u64, extra: Duration) -> Duration {
    Duration::from_nanos(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 100_000) + extra
}

fn busy_wait(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Sends `n` records on this thread (each after the previous one arrived,
/// plus a gap) and returns each one's latency as seen by the consumer.
fn streamlog_latencies(n: u64, extra: Duration) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let mut consumer = broker.consumer(ConsumerConfig::default()).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    consumer.poll(Duration::ZERO).unwrap();
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (r2, s2) = (received.clone(), stop.clone());
    let reader = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(n as usize);
        while !s2.load(Ordering::Relaxed) {
            for rec in consumer.poll(Duration::from_millis(100)).unwrap() {
                let sent = u64::from_le_bytes(rec.value.as_ref().unwrap()[..8].try_into().unwrap());
                lat.push(epoch.elapsed() - Duration::from_nanos(sent));
                r2.fetch_add(1, Ordering::Release);
            }
        }
        lat
    });
    let producer = broker.producer();
    for i in 0..n {
        busy_wait(gap(i, extra));
        let sent = epoch.elapsed().as_nanos() as u64;
        let mut v = vec![0u8; 100];
        v[..8].copy_from_slice(&sent.to_le_bytes());
        producer.send(ProducerRecord::new("t", v).partition(0).timestamp(0)).unwrap();
        while received.load(Ordering::Acquire) <= i {
            std::hint::spin_loop();
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap()
}

fn channel_latencies(n: u64, extra: Duration) -> Vec<Duration> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let r2 = received.clone();
    let reader = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(n as usize);
        for v in rx {
            let sent = u64::from_le_bytes(v[..8].try_into().unwrap());
            lat.push(epoch.elapsed() - Duration::from_nanos(sent));
            r2.fetch_add(1, Ordering::Release);
        }
        lat
    });
    for i in 0..n {
        busy_wait(gap(i, extra));
        let mut v = vec![0u8; 100];
        v[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
        tx.send(v).unwrap();
        while received.load(Ordering::Acquire) <= i {
            std::hint::spin_loop();
        }
    }
    drop(tx);
    reader.join().unwrap()
}

fn percentiles(name: &str, mut lat: Vec<Duration>) {
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!("latency/{name}: p50 {:?}  p99 {:?}  p99.9 {:?}  (n = {})", p(0.5), p(0.99), p(0.999), lat.len());
}

fn latency(c: &mut Criterion) {
    let busy = Duration::ZERO;
    let idle = Duration::from_micros(300);
    percentiles("streamlog_send_to_poll (busy stream)", streamlog_latencies(20_000, busy));
    percentiles("mpsc_channel (busy stream)", channel_latencies(20_000, busy));
    percentiles("streamlog_send_to_poll (parked consumer)", streamlog_latencies(5_000, idle));
    percentiles("mpsc_channel (parked receiver)", channel_latencies(5_000, idle));
    let mut g = c.benchmark_group("latency");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.bench_function("streamlog_send_to_poll", |b| {
        b.iter_custom(|iters| streamlog_latencies(iters, busy).into_iter().sum())
    });
    g.bench_function("mpsc_channel", |b| b.iter_custom(|iters| channel_latencies(iters, busy).into_iter().sum()));
    g.finish();
}

criterion_group!(benches, poll_throughput, latency);
criterion_main!(benches);

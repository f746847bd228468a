//! The batching producer against single sends: keyed 100 B records from 4
//! threads into one topic of 4 partitions, through `Producer::send` (the
//! baseline, in the same run) and through `BatchingProducer::send` (delivery
//! futures dropped, a `flush` at the end counted in the time).
//!
//! `cargo bench -p streamlog-bench --bench batching`

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlog::{BatchingConfig, Broker, BrokerOptions, ProducerRecord, TopicConfig};

const THREADS: u64 = 4;
/// Records per criterion iteration (a broker per sample, not per record).
const PER_ITER: u64 = 20_000;

fn keys() -> Vec<Bytes> {
    (0..1024).map(|i| Bytes::from(format!("customer-{i:06}"))).collect()
}

/// Touches memory so that the segment mappings do not feel the host's
/// first-touch cost (see DESIGN.md, "Measuring on this machine").
fn warm_memory() {
    let mut v = vec![0u8; 1 << 30];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(&v);
}

fn batching(c: &mut Criterion) {
    warm_memory();
    let mut g = c.benchmark_group("batching");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(PER_ITER));
    let value = Bytes::from(vec![0xab; 100]);
    let keys = keys();
    let open = || {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        broker.create_topic("t", TopicConfig::with_partitions(4)).unwrap();
        (dir, broker)
    };
    g.bench_function("keyed_100B/4_threads/Producer::send", |b| {
        b.iter_custom(|iters| {
            let (_dir, broker) = open();
            let producer = broker.producer();
            let per_thread = iters * PER_ITER / THREADS;
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (producer, value, keys) = (producer.clone(), value.clone(), &keys);
                    s.spawn(move || {
                        for i in 0..per_thread {
                            let key = keys[((i * THREADS + t) % 1024) as usize].clone();
                            producer.send(ProducerRecord::new("t", value.clone()).key(key)).unwrap();
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
    g.bench_function("keyed_100B/4_threads/BatchingProducer::send", |b| {
        b.iter_custom(|iters| {
            let (_dir, broker) = open();
            let producer = broker.batching_producer(BatchingConfig::default()).unwrap();
            let per_thread = iters * PER_ITER / THREADS;
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (producer, value, keys) = (producer.clone(), value.clone(), &keys);
                    s.spawn(move || {
                        for i in 0..per_thread {
                            let key = keys[((i * THREADS + t) % 1024) as usize].clone();
                            drop(producer.send(ProducerRecord::new("t", value.clone()).key(key)).unwrap());
                        }
                    });
                }
            });
            producer.flush();
            start.elapsed()
        });
    });
    g.finish();
}

criterion_group!(benches, batching);
criterion_main!(benches);

//! Broker lifecycle costs: open of a cleanly closed broker, close (idle and
//! after a write to every partition) and `create_topic`, at 1 and 1,000
//! partitions. None of them should cost per-partition fsyncs beyond what
//! dirty data and new files need.
//!
//! `cargo bench -p streamlog-bench --bench lifecycle`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use streamlog::{Broker, BrokerOptions, Record, TopicConfig};

const SIZES: [u32; 2] = [1, 1000];

fn opts() -> BrokerOptions {
    BrokerOptions::default().maintenance_interval(None)
}

/// A cleanly closed broker with one topic of `partitions` partitions, each
/// holding `records` records of 100 B.
fn make_broker(dir: &Path, partitions: u32, records: usize) {
    let b = Broker::open(dir, opts()).unwrap();
    let t = b.create_topic("t", TopicConfig::with_partitions(partitions)).unwrap();
    let batch: Vec<Record> = (0..records).map(|_| Record::new(vec![7u8; 100])).collect();
    if records > 0 {
        for p in t.partitions() {
            p.append(&batch).unwrap();
        }
    }
    b.close().unwrap();
}

fn bench_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("broker_open_clean");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let dir = tempfile::tempdir().unwrap();
        make_broker(dir.path(), n, 1000);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let broker = black_box(Broker::open(dir.path(), opts()).unwrap());
                    total += start.elapsed();
                    broker.close().unwrap();
                }
                total
            });
        });
    }
    g.finish();
}

fn bench_close(c: &mut Criterion) {
    let mut g = c.benchmark_group("broker_close");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let dir = tempfile::tempdir().unwrap();
        make_broker(dir.path(), n, 10);
        g.bench_with_input(BenchmarkId::new("idle", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let broker = Broker::open(dir.path(), opts()).unwrap();
                    let start = Instant::now();
                    broker.close().unwrap();
                    total += start.elapsed();
                }
                total
            });
        });
        g.bench_with_input(BenchmarkId::new("one_write_per_partition", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let broker = Broker::open(dir.path(), opts()).unwrap();
                    for p in broker.topic("t").unwrap().partitions() {
                        p.append(&[Record::new(vec![1u8; 100])]).unwrap();
                    }
                    let start = Instant::now();
                    broker.close().unwrap();
                    total += start.elapsed();
                }
                total
            });
        });
    }
    g.finish();
}

fn bench_create_topic(c: &mut Criterion) {
    let mut g = c.benchmark_group("create_topic");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path(), opts()).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    black_box(broker.create_topic("fresh", TopicConfig::with_partitions(n)).unwrap());
                    total += start.elapsed();
                    broker.delete_topic("fresh").unwrap();
                }
                total
            });
        });
        broker.close().unwrap();
    }
    g.finish();
}

/// A broker per test: open a fresh directory, create a one-partition topic,
/// close. The default options (which fsync) are the baseline;
/// `fsync(false)` and `Broker::temporary` (which also removes its
/// directory, on a background thread) are what a test would use.
fn bench_test_broker(c: &mut Criterion) {
    let mut g = c.benchmark_group("test_broker_open_topic_close");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let root = tempfile::tempdir().unwrap();
    let mut n = 0u64;
    for (name, fsync) in [("default", true), ("fsync_false", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let dir = root.path().join(n.to_string());
                    let start = Instant::now();
                    let broker = Broker::open(&dir, BrokerOptions::default().fsync(fsync)).unwrap();
                    black_box(broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap());
                    broker.close().unwrap();
                    total += start.elapsed();
                    // Not measured: on ext4 each rmdir costs milliseconds.
                    std::fs::remove_dir_all(&dir).unwrap();
                }
                total
            });
        });
    }
    g.bench_function("temporary", |b| {
        b.iter(|| {
            let broker = Broker::temporary().unwrap();
            black_box(broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap());
            broker.close().unwrap();
        });
    });
    g.finish();
    broker_per_test_distribution();
}

/// Criterion reports the mean time of each sample, and a few slow file
/// system calls (an ext4 journal commit, another process's writes) move a
/// sample's mean far from what a typical test sees; so the same loop, one
/// broker at a time, as percentiles.
fn broker_per_test_distribution() {
    let root = tempfile::tempdir().unwrap();
    let cases: [(&str, usize); 3] = [("default", 100), ("fsync_false", 1000), ("temporary", 1000)];
    for (name, n) in cases {
        let mut times: Vec<Duration> = (0..n)
            .map(|i| {
                let dir = root.path().join(format!("{name}-{i}"));
                let start = Instant::now();
                let broker = match name {
                    "temporary" => Broker::temporary().unwrap(),
                    _ => Broker::open(&dir, BrokerOptions::default().fsync(name == "default")).unwrap(),
                };
                black_box(broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap());
                broker.close().unwrap();
                let t = start.elapsed();
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).unwrap();
                }
                t
            })
            .collect();
        let mean = times.iter().sum::<Duration>() / n as u32;
        times.sort();
        let at = |q: f64| times[((n as f64 * q) as usize).min(n - 1)];
        println!(
            "test_broker_open_topic_close/{name} per broker ({n}): p50 {:?} p90 {:?} p99 {:?} mean {:?}",
            at(0.5),
            at(0.9),
            at(0.99),
            mean
        );
    }
}

criterion_group!(benches, bench_open, bench_close, bench_create_topic, bench_test_broker);
criterion_main!(benches);

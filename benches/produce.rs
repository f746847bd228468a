//! Producer benchmarks:
//! - `send/100B`: `Producer::send` of one 100 B record per call next to
//!   `Partition::append` of the same record to the same partition (the
//!   Kafka-style path against the partition path), memory warmed first.
//! - `threads/100B`: `Producer::send` from 1 and 2 threads, each thread to
//!   its own partition (and the same through `Partition::append`), in
//!   `/dev/shm` where it exists; before it, the cores the process uses for
//!   1 and 2 appending threads (`getrusage`).
//! - `produce/keyed_100B`: keyed 100 B records from 1, 2 and 4 threads into
//!   one topic of 4 partitions (baseline: the same records through a std
//!   `mpsc` channel to one receiver).
//! - `partitioner`: the partitioner's cost per record.
//!
//! `cargo bench -p streamlog-bench --bench produce`

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlog::{
    Broker, BrokerOptions, DefaultPartitioner, NoKeyStrategy, Partitioner, ProducerRecord, Record, TopicConfig, murmur2,
};

fn keys() -> Vec<Bytes> {
    (0..1024).map(|i| Bytes::from(format!("customer-{i:06}"))).collect()
}

fn produce(c: &mut Criterion) {
    let mut g = c.benchmark_group("produce");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let value = Bytes::from(vec![0xab; 100]);
    let keys = keys();
    for threads in [1u64, 2, 4] {
        g.bench_function(format!("keyed_100B/{threads}_threads/streamlog"), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
                broker.create_topic("t", TopicConfig::with_partitions(4)).unwrap();
                let producer = broker.producer();
                let per_thread = iters / threads + 1;
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let (producer, value, keys) = (producer.clone(), value.clone(), &keys);
                        s.spawn(move || {
                            for i in 0..per_thread {
                                let key = keys[((i * threads + t) % 1024) as usize].clone();
                                let rec = ProducerRecord::new("t", value.clone()).key(key).timestamp(i as i64);
                                black_box(producer.send(rec).unwrap());
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        g.bench_function(format!("keyed_100B/{threads}_threads/mpsc_channel"), |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = mpsc::channel::<ProducerRecord>();
                let per_thread = iters / threads + 1;
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let (tx, value, keys) = (tx.clone(), value.clone(), &keys);
                        s.spawn(move || {
                            for i in 0..per_thread {
                                let key = keys[((i * threads + t) % 1024) as usize].clone();
                                tx.send(ProducerRecord::new("t", value.clone()).key(key).timestamp(i as i64)).unwrap();
                            }
                        });
                    }
                    drop(tx);
                    for r in rx.iter() {
                        black_box(r);
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// A fresh broker with topic "t" of `partitions` partitions.
fn broker(dir: &std::path::Path, partitions: u32) -> Broker {
    let broker = Broker::open(dir, BrokerOptions::default()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(partitions)).unwrap();
    broker
}

/// Touches memory so that the segment mappings do not feel the host's
/// first-touch cost (see DESIGN.md, "Measuring on this machine"): without
/// it page faults dominate both paths and hide their difference.
fn warm_memory() {
    let mut v = vec![0u8; 1 << 30];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    black_box(&v);
}

/// One 100 B record per call: the Kafka-style path against the partition
/// path, into the same kind of partition.
fn send(c: &mut Criterion) {
    warm_memory();
    let mut g = c.benchmark_group("send");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let value = Bytes::from(vec![0xab; 100]);
    // One broker for both (its partitions' segments are mapped and faulted
    // in by the warm-up, not inside a sample), each path its own partition.
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path(), 2);
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    g.bench_function("100B/partition_append", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let rec = Record::new(value.clone()).with_timestamp(i as i64);
                black_box(log.append(std::slice::from_ref(&rec)).unwrap());
            }
            start.elapsed()
        })
    });
    let producer = broker.producer();
    g.bench_function("100B/producer_send", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let rec = ProducerRecord::new("t", value.clone()).partition(1).timestamp(i as i64);
                black_box(producer.send(rec).unwrap());
            }
            start.elapsed()
        })
    });
    g.finish();
}

/// `Producer::send` from 1 and 2 threads, thread `t` to partition `t` (and
/// `Partition::append` the same way): what the threads share besides the
/// disk.
fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("threads");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let value = Bytes::from(vec![0xab; 100]);
    // In memory where there is a tmpfs: each run appends several GB, and on
    // a disk the kernel's writeback throttling of that volume (not what the
    // threads share) decided the figures, with samples ±40% apart.
    // Its size is bounded (64 MiB segments, 256 MiB kept per partition,
    // retention every 100 ms): the pages of deleted segments are reused,
    // warm, instead of each sample touching gigabytes the host reclaimed
    // (samples 2-3× apart). Warmed first, as in `send`.
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let broker =
        Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(Some(Duration::from_millis(100))))
            .unwrap();
    broker
        .create_topic("t", TopicConfig::with_partitions(2).segment_bytes(64 << 20).retention_bytes(Some(256 << 20)))
        .unwrap();
    warm_memory();
    let producer = broker.producer();
    let topic = broker.topic("t").unwrap();
    for threads in [1, 2] {
        print_cpu_use(&topic, threads, &value);
    }
    for threads in [1u64, 2] {
        g.bench_function(format!("100B/{threads}_threads/producer_send"), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters / threads + 1;
                std::thread::scope(|s| {
                    let start = Instant::now();
                    let handles: Vec<_> = (0..threads)
                        .map(|t| {
                            let (producer, value) = (producer.clone(), value.clone());
                            s.spawn(move || {
                                for i in 0..per_thread {
                                    let rec =
                                        ProducerRecord::new("t", value.clone()).partition(t as u32).timestamp(i as i64);
                                    black_box(producer.send(rec).unwrap());
                                }
                            })
                        })
                        .collect();
                    handles.into_iter().for_each(|h| h.join().unwrap());
                    start.elapsed()
                })
            })
        });
        g.bench_function(format!("100B/{threads}_threads/partition_append"), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters / threads + 1;
                std::thread::scope(|s| {
                    let start = Instant::now();
                    let handles: Vec<_> = (0..threads)
                        .map(|t| {
                            let (log, value) = (topic.partition(t as u32).unwrap(), value.clone());
                            s.spawn(move || {
                                for i in 0..per_thread {
                                    let rec = Record::new(value.clone()).with_timestamp(i as i64);
                                    black_box(log.append(std::slice::from_ref(&rec)).unwrap());
                                }
                            })
                        })
                        .collect();
                    handles.into_iter().for_each(|h| h.join().unwrap());
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// CPU time of `who` (`RUSAGE_SELF` or `RUSAGE_THREAD`), in seconds.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes the struct it is given; zeroed is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a plain system call with a valid pointer.
    unsafe { libc::getrusage(who, &mut u) };
    let us = (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1_000_000 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
    us as f64 / 1e6
}

/// Appends 2 M records from `threads` threads (thread `t` to partition `t`)
/// and prints the cores the process used and the appending threads' share:
/// what is left of the machine for a second appender.
fn print_cpu_use(topic: &streamlog::Topic, threads: u64, value: &Bytes) {
    const RECORDS: u64 = 2_000_000;
    let process = cpu_seconds(libc::RUSAGE_SELF);
    let start = Instant::now();
    let appenders: f64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (log, value) = (topic.partition(t as u32).unwrap(), value.clone());
                s.spawn(move || {
                    let mine = cpu_seconds(libc::RUSAGE_THREAD);
                    for i in 0..RECORDS / threads {
                        let rec = Record::new(value.clone()).with_timestamp(i as i64);
                        black_box(log.append(std::slice::from_ref(&rec)).unwrap());
                    }
                    cpu_seconds(libc::RUSAGE_THREAD) - mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let wall = start.elapsed().as_secs_f64();
    let process = cpu_seconds(libc::RUSAGE_SELF) - process;
    println!(
        "threads/{threads} appending: {:.0} ns a record, the process using {:.2} cores, the appending threads {:.2} \
         (the rest: the prefault, retention and seal threads)",
        wall * 1e9 / RECORDS as f64,
        process / wall,
        appenders / wall
    );
}

fn partitioner(c: &mut Criterion) {
    let mut g = c.benchmark_group("partitioner");
    g.throughput(Throughput::Elements(1));
    let keys = keys();
    let p = DefaultPartitioner::default();
    let mut i = 0;
    g.bench_function("murmur2_key_15B", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(p.partition("t", Some(&keys[i]), None, 12))
        })
    });
    let value = [0u8; 100];
    g.bench_function("sticky_no_key", |b| b.iter(|| black_box(p.partition("t", None, Some(&value), 12))));
    let rr = DefaultPartitioner::new(NoKeyStrategy::RoundRobin);
    g.bench_function("round_robin_no_key", |b| b.iter(|| black_box(rr.partition("t", None, Some(&value), 12))));
    g.bench_function("raw_murmur2_15B", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(murmur2(&keys[i]))
        })
    });
    g.finish();
}

criterion_group!(benches, send, threads, produce, partitioner);
criterion_main!(benches);

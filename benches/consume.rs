//! Consumer benchmarks.
//!
//! - `poll/100B`: records per second through `Consumer::poll` (one consumer,
//!   one partition, 100 B records; `max_poll_records` 10,000, and the
//!   default 500), next to a raw `Partition::read` of the
//!   same log and a std `mpsc` channel (crossbeam's implementation) draining
//!   the same number of preloaded messages; and the borrowed pair,
//!   `Consumer::poll_batches` next to `Partition::read`, both walked with
//!   `Batch::record_views`.
//! - `latency`: from `send` on one thread to `poll` returning on another,
//!   next to the same hand-off through an `mpsc` channel, in two
//!   interleaved rounds. Criterion reports the mean; the p50/p99/p99.9/max
//!   are printed before the measurement for a spinning consumer (a spin
//!   longer than the poll: it never parks; baseline: `try_recv` in a loop),
//!   a busy stream with the default spin (gaps of 0-100 µs; baseline: a
//!   blocking `recv`) and a parked consumer (gaps of 300-400 µs, blocked in
//!   `poll(100 ms)`, woken by the append). Under each, the samples slower
//!   than 50 µs are split by what they met, from the threads' own counters
//!   (`getrusage(RUSAGE_THREAD)`): an involuntary context switch of the
//!   consumer or the producer (preempted), a voluntary one of the consumer
//!   (parked), a page fault inside `send`.
//!
//! `cargo bench -p streamlog-bench --bench consume`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlog::{
    Broker, BrokerOptions, Consumer, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

const PRELOAD: u64 = 2_000_000;

/// Takes `iters` records through `Consumer::poll`, touching each value,
/// starting over at the beginning after the last one.
fn drain_owned(consumer: &mut Consumer, iters: u64) -> Duration {
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
}

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
    g.bench_function("100B/consumer_poll", |b| b.iter_custom(|iters| drain_owned(&mut consumer, iters)));
    // Kafka's default `max.poll.records` (500), also this crate's: the
    // returned records (128 B each) stay in the core's cache.
    let mut default_consumer =
        broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    default_consumer.assign(std::slice::from_ref(&tp)).unwrap();
    g.bench_function("100B/consumer_poll_500", |b| b.iter_custom(|iters| drain_owned(&mut default_consumer, iters)));
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

/// The calling thread's counters: (involuntary switches, voluntary
/// switches, minor page faults). Read outside the measured interval, to
/// tell what a slow sample met.
fn thread_counters() -> [i64; 3] {
    // SAFETY: getrusage writes the struct it is given; zeroed is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a plain system call with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    [u.ru_nivcsw, u.ru_nvcsw, u.ru_minflt]
}

/// One hand-off: its latency, and what happened on each side since the
/// previous one (consumer: while it waited; producer: during the send).
struct Sample {
    latency: Duration,
    consumer: [i64; 3],
    producer: [i64; 3],
}

/// How the consumer waits between records.
#[derive(Clone, Copy)]
enum Mode {
    /// `poll(100 ms)` with the default 100 µs spin (busy stream: it spins
    /// through most gaps and sometimes parks).
    Default,
    /// `poll(100 ms)` with a spin longer than the timeout: never parks.
    Spinning,
    /// `poll(100 ms)`, default spin, gaps of 300-400 µs: parked, woken by
    /// the append.
    Parked,
}

impl Mode {
    fn extra(self) -> Duration {
        match self {
            Mode::Parked => Duration::from_micros(300),
            _ => Duration::ZERO,
        }
    }
}

/// Sends `n` records on this thread (each after the previous one arrived,
/// plus a gap) and returns each one's latency as seen by the consumer.
fn streamlog_latencies(n: u64, mode: Mode) -> Vec<Sample> {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let mut config = ConsumerConfig::default();
    if let Mode::Spinning = mode {
        config = config.spin(Duration::from_secs(3600));
    }
    let mut consumer = broker.consumer(config).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    consumer.poll(Duration::ZERO).unwrap();
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (r2, s2) = (received.clone(), stop.clone());
    let reader = std::thread::Builder::new()
        .name("lat-consumer".into())
        .spawn(move || {
            let mut lat = Vec::with_capacity(n as usize);
            let mut before = thread_counters();
            while !s2.load(Ordering::Relaxed) {
                for rec in consumer.poll(Duration::from_millis(100)).unwrap() {
                    let sent = u64::from_le_bytes(rec.value.as_ref().unwrap()[..8].try_into().unwrap());
                    let latency = epoch.elapsed() - Duration::from_nanos(sent);
                    let now = thread_counters();
                    let consumer = [0, 1, 2].map(|k| now[k] - before[k]);
                    before = now;
                    lat.push((latency, consumer));
                    r2.fetch_add(1, Ordering::Release);
                }
            }
            lat
        })
        .unwrap();
    let producer = broker.producer();
    let mut sends = Vec::with_capacity(n as usize);
    for i in 0..n {
        busy_wait(gap(i, mode.extra()));
        let mut v = vec![0u8; 100];
        let before = thread_counters();
        let sent = epoch.elapsed().as_nanos() as u64;
        v[..8].copy_from_slice(&sent.to_le_bytes());
        producer.send(ProducerRecord::new("t", v).partition(0).timestamp(0)).unwrap();
        let after = thread_counters();
        sends.push([0, 1, 2].map(|k| after[k] - before[k]));
        while received.load(Ordering::Acquire) <= i {
            std::hint::spin_loop();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let lat = reader.join().unwrap();
    lat.into_iter().zip(sends).map(|((latency, consumer), producer)| Sample { latency, consumer, producer }).collect()
}

/// The same hand-off through a std `mpsc` channel: a receiver blocked in
/// `recv` (parks at once), or one spinning on `try_recv`.
fn channel_latencies(n: u64, extra: Duration, spin: bool) -> Vec<Sample> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let r2 = received.clone();
    let reader = std::thread::Builder::new()
        .name("lat-receiver".into())
        .spawn(move || {
            let mut lat = Vec::with_capacity(n as usize);
            let mut before = thread_counters();
            loop {
                let v = if spin {
                    match rx.try_recv() {
                        Ok(v) => v,
                        Err(mpsc::TryRecvError::Empty) => {
                            std::hint::spin_loop();
                            continue;
                        }
                        Err(mpsc::TryRecvError::Disconnected) => break,
                    }
                } else {
                    match rx.recv() {
                        Ok(v) => v,
                        Err(_) => break,
                    }
                };
                let sent = u64::from_le_bytes(v[..8].try_into().unwrap());
                let latency = epoch.elapsed() - Duration::from_nanos(sent);
                let now = thread_counters();
                lat.push((latency, [0, 1, 2].map(|k| now[k] - before[k])));
                before = now;
                r2.fetch_add(1, Ordering::Release);
            }
            lat
        })
        .unwrap();
    let mut sends = Vec::with_capacity(n as usize);
    for i in 0..n {
        busy_wait(gap(i, extra));
        let mut v = vec![0u8; 100];
        let before = thread_counters();
        v[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
        tx.send(v).unwrap();
        let after = thread_counters();
        sends.push([0, 1, 2].map(|k| after[k] - before[k]));
        while received.load(Ordering::Acquire) <= i {
            std::hint::spin_loop();
        }
    }
    drop(tx);
    let lat = reader.join().unwrap();
    lat.into_iter().zip(sends).map(|((latency, consumer), producer)| Sample { latency, consumer, producer }).collect()
}

/// Prints p50/p99/p99.9/max, and what the samples slower than 50 µs met:
/// how many saw the consumer preempted (an involuntary switch while it
/// waited), parked (a voluntary one), or a page fault during the send.
fn percentiles(name: &str, mut samples: Vec<Sample>) {
    samples.sort_by_key(|s| s.latency);
    let lat: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "latency/{name}: p50 {:.2?}  p99 {:.2?}  p99.9 {:.2?}  max {:.2?}  (n = {})",
        p(0.5),
        p(0.99),
        p(0.999),
        lat[lat.len() - 1],
        lat.len()
    );
    let slow: Vec<&Sample> = samples.iter().filter(|s| s.latency > Duration::from_micros(50)).collect();
    let count = |f: &dyn Fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count();
    let slow_count = |f: &dyn Fn(&Sample) -> bool| slow.iter().filter(|s| f(s)).count();
    let preempted = |s: &Sample| s.consumer[0] > 0 || s.producer[0] > 0;
    println!(
        "    > 50 µs: {} ({} preempted [all samples: {}], {} consumer parked [all: {}], {} send faulted [all: {}], {} none of these)",
        slow.len(),
        slow_count(&preempted),
        count(&preempted),
        slow_count(&|s| s.consumer[1] > 0),
        count(&|s| s.consumer[1] > 0),
        slow_count(&|s| s.producer[2] > 0),
        count(&|s| s.producer[2] > 0),
        slow_count(&|s| !preempted(s) && s.consumer[1] == 0 && s.producer[2] == 0),
    );
}

fn latency(c: &mut Criterion) {
    let busy = Duration::ZERO;
    let idle = Duration::from_micros(300);
    // Interleaved rounds: this shared machine's load drifts within a run,
    // so each figure sits next to its baseline's.
    for round in 1..=2 {
        println!("round {round}");
        percentiles("streamlog_send_to_poll (spinning consumer)", streamlog_latencies(20_000, Mode::Spinning));
        percentiles("mpsc_channel (spinning try_recv)", channel_latencies(20_000, busy, true));
        percentiles("streamlog_send_to_poll (busy stream, default spin)", streamlog_latencies(20_000, Mode::Default));
        percentiles("mpsc_channel (busy stream, blocking recv)", channel_latencies(20_000, busy, false));
        percentiles("streamlog_send_to_poll (parked consumer)", streamlog_latencies(5_000, Mode::Parked));
        percentiles("mpsc_channel (parked receiver)", channel_latencies(5_000, idle, false));
    }
    let mut g = c.benchmark_group("latency");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.bench_function("streamlog_send_to_poll", |b| {
        b.iter_custom(|iters| streamlog_latencies(iters, Mode::Default).into_iter().map(|s| s.latency).sum())
    });
    g.bench_function("mpsc_channel", |b| {
        b.iter_custom(|iters| channel_latencies(iters, busy, false).into_iter().map(|s| s.latency).sum())
    });
    g.finish();
}

criterion_group!(benches, poll_throughput, latency);
criterion_main!(benches);

//! The consumer as an async source, each next to its baseline in the same
//! run.
//!
//! - `async_latency`: from `Producer::send` on a thread to a tokio task
//!   awaiting `Consumer::recv` (one worker thread), next to the same
//!   hand-off through a `tokio::sync::mpsc` unbounded channel (`send` on the
//!   thread, `recv().await` in the task). The p50/p99 are printed before the
//!   measurement, for a busy stream (gaps of 0-100 µs) and an idle one (gaps
//!   of 300-400 µs), in three rounds, each alternating the two record by
//!   record on one runtime (each first every other record); both sides
//!   park the same way, in the runtime.
//! - `async_consume/100B`: records per second draining a pre-filled
//!   one-partition topic through `Consumer::recv().await` and through
//!   `Consumer::stream()`, on a current-thread runtime, next to the blocking
//!   `Consumer::poll`.
//!
//! `cargo bench -p streamlog-bench --bench async`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_core::Stream;
use streamlog::{
    Broker, BrokerOptions, Consumer, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

const PRELOAD: u64 = 1_000_000;

fn runtime_one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap()
}

/// Gap before send `i`: 0 to 100 µs, plus `extra`.
fn gap(i: u64, extra: Duration) -> Duration {
    Duration::from_nanos(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 100_000) + extra
}

fn busy_wait(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn stamped(epoch: Instant) -> Vec<u8> {
    let mut v = vec![0u8; 100];
    v[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
    v
}

fn latency_of(epoch: Instant, v: &[u8]) -> Duration {
    epoch.elapsed() - Duration::from_nanos(u64::from_le_bytes(v[..8].try_into().unwrap()))
}

/// Sends `n` records from this thread, each after the previous one arrived
/// plus a gap, to a task awaiting `Consumer::recv`; returns the latencies.
fn streamlog_latencies(n: u64, extra: Duration) -> Vec<Duration> {
    latencies(n, extra, true, false).0
}

fn tokio_mpsc_latencies(n: u64, extra: Duration) -> Vec<Duration> {
    latencies(n, extra, false, true).1
}

/// Send -> receive latencies of streamlog (a task awaiting
/// `Consumer::recv`) and of a `tokio::sync::mpsc` channel (a task awaiting
/// `recv`), both tasks on one runtime with one worker thread, the sends
/// from this thread, each after the previous record arrived plus a gap:
/// `n` records through each side asked for. With both, the two alternate
/// record by record, each going first every other time, so that each
/// sample sits next to its baseline's in time (this shared machine's
/// wake-up latency drifts by more than the difference measured) and
/// neither always follows the other's work on the worker.
fn latencies(n: u64, extra: Duration, log: bool, channel: bool) -> (Vec<Duration>, Vec<Duration>) {
    let rt = runtime_one_worker();
    let epoch = Instant::now();
    let (from_log, from_channel) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let dir = tempfile::tempdir().unwrap();
    // No broker (nor its threads) when only the channel is measured.
    let streamlog = log.then(|| {
        let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
        let mut consumer = broker.consumer(ConsumerConfig::default()).unwrap();
        consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
        consumer.poll(Duration::ZERO).unwrap();
        let arrived = Arc::clone(&from_log);
        let task = rt.spawn(async move {
            let mut lat = Vec::with_capacity(n as usize);
            while (lat.len() as u64) < n {
                for rec in consumer.recv().await.unwrap() {
                    lat.push(latency_of(epoch, rec.value.as_ref().unwrap()));
                    arrived.fetch_add(1, Ordering::Release);
                }
            }
            lat
        });
        (broker.producer(), task, broker)
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let arrived = Arc::clone(&from_channel);
    let channel_task = rt.spawn(async move {
        let mut lat = Vec::with_capacity(n as usize);
        while let Some(v) = rx.recv().await {
            lat.push(latency_of(epoch, &v));
            arrived.fetch_add(1, Ordering::Release);
        }
        lat
    });
    let wait_for = |count: &AtomicU64, i: u64| {
        while count.load(Ordering::Acquire) <= i {
            std::hint::spin_loop();
        }
    };
    for i in 0..n {
        for log_turn in if i % 2 == 0 { [true, false] } else { [false, true] } {
            if log_turn && let Some((producer, _, _)) = &streamlog {
                busy_wait(gap(i, extra));
                producer.send(ProducerRecord::new("t", stamped(epoch)).partition(0).timestamp(0)).unwrap();
                wait_for(&from_log, i);
            }
            if !log_turn && channel {
                busy_wait(gap(i, extra));
                tx.send(stamped(epoch)).unwrap();
                wait_for(&from_channel, i);
            }
        }
    }
    drop(tx);
    let log_latencies = streamlog.map_or_else(Vec::new, |(_, task, _)| rt.block_on(task).unwrap());
    (log_latencies, rt.block_on(channel_task).unwrap())
}

fn percentiles(name: &str, mut lat: Vec<Duration>) {
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!("latency/{name}: p50 {:?}  p99 {:?}  p99.9 {:?}  (n = {})", p(0.5), p(0.99), p(0.999), lat.len());
}

fn async_latency(c: &mut Criterion) {
    let busy = Duration::ZERO;
    let idle = Duration::from_micros(300);
    // Rounds of alternating samples: this shared machine's wake-up latency
    // drifts within a run, so each sample sits next to its baseline's.
    for round in 1..=3 {
        println!("round {round}");
        for (stream, n, extra) in [("busy", 10_000, busy), ("idle", 3_000, idle)] {
            let (log, channel) = latencies(n, extra, true, true);
            percentiles(&format!("streamlog_send_to_recv_await ({stream} stream)"), log);
            percentiles(&format!("tokio_mpsc ({stream} stream, alternating with the above)"), channel);
        }
    }
    let mut g = c.benchmark_group("async_latency");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.bench_function("streamlog_send_to_recv_await", |b| {
        b.iter_custom(|iters| streamlog_latencies(iters, busy).into_iter().sum())
    });
    g.bench_function("tokio_mpsc", |b| b.iter_custom(|iters| tokio_mpsc_latencies(iters, busy).into_iter().sum()));
    g.finish();
}

/// Consumes `left` records through `next` (a batch at a time), starting
/// over at the beginning after the last preloaded record.
fn drain(consumer: &mut Consumer, records: &[streamlog::ConsumerRecord], left: &mut u64) {
    for r in records {
        black_box(r.value.as_ref().map(|v| v[0]));
    }
    *left = left.saturating_sub(records.len() as u64);
    if records.last().is_some_and(|r| r.offset + 1 == PRELOAD) {
        consumer.seek_to_beginning(&[]).unwrap();
    }
}

fn async_consume(c: &mut Criterion) {
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
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();

    let mut g = c.benchmark_group("async_consume");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    g.bench_function("100B/consumer_poll (blocking)", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let recs = consumer.poll(Duration::ZERO).unwrap();
                drain(&mut consumer, &recs, &mut left);
            }
            start.elapsed()
        })
    });
    g.bench_function("100B/consumer_recv_await", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut left = iters;
                while left > 0 {
                    let recs = consumer.recv().await.unwrap();
                    drain(&mut consumer, &recs, &mut left);
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("100B/consumer_stream", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut left = iters;
                while left > 0 {
                    let mut stream = consumer.stream();
                    let mut last = 0;
                    while left > 0 && last + 1 != PRELOAD {
                        let r = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx))
                            .await
                            .unwrap()
                            .unwrap();
                        black_box(r.value.as_ref().map(|v| v[0]));
                        last = r.offset;
                        left -= 1;
                    }
                    drop(stream);
                    if last + 1 == PRELOAD {
                        consumer.seek_to_beginning(&[]).unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, async_latency, async_consume);
criterion_main!(benches);

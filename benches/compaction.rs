//! Compaction throughput: MB/s of input through `Partition::compact` on a
//! log of 1 M records over 10 k keys, next to the same bytes merely read
//! and checksum-verified (the scan compaction cannot avoid).
//!
//! `cargo bench -p streamlog-bench --bench compaction`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlog::{CompactionOptions, Partition, PartitionOptions, Record};

const RECORDS: u64 = 1_000_000;
const KEYS: u64 = 10_000;

/// A fresh log of `RECORDS` keyed 100 B records in 8 MiB segments.
fn build(dir: &std::path::Path) -> Partition {
    let p = Partition::open(dir, PartitionOptions::default().segment_bytes(8 << 20)).unwrap();
    let value = Bytes::from(vec![0xab; 100]);
    let keys: Vec<Bytes> = (0..KEYS).map(|k| Bytes::from(format!("key-{k:06}"))).collect();
    for chunk in 0..RECORDS / 500 {
        let batch: Vec<Record> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                Record::new(value.clone()).with_key(keys[(n * 7919 % KEYS) as usize].clone()).with_timestamp(n as i64)
            })
            .collect();
        p.append(&batch).unwrap();
    }
    p.roll().unwrap();
    p
}

fn compaction(c: &mut Criterion) {
    let probe = tempfile::tempdir().unwrap();
    let input_bytes = build(probe.path()).size_in_bytes().unwrap();
    drop(probe);
    let opts = CompactionOptions {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag: Duration::ZERO,
        delete_retention: Duration::ZERO,
        ..CompactionOptions::default()
    };
    let mut g = c.benchmark_group("compaction");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(input_bytes));
    g.bench_function("1M_records_10k_keys/compact", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let p = build(dir.path());
                let start = Instant::now();
                let stats = p.compact(i64::MAX, &opts).unwrap();
                total += start.elapsed();
                assert_eq!(stats.bytes_read, input_bytes);
                assert!(stats.records_removed >= RECORDS - KEYS);
            }
            total
        })
    });
    g.bench_function("1M_records_10k_keys/read_and_verify_baseline", |b| {
        let dir = tempfile::tempdir().unwrap();
        let p = build(dir.path());
        b.iter(|| {
            let mut next = 0;
            let mut n = 0u64;
            while next < p.high_watermark() {
                for batch in p.read(next, 4 << 20).unwrap() {
                    n += batch.records().filter(|r| r.as_ref().unwrap().key.is_some()).count() as u64;
                    next = batch.next_offset();
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, compaction);
criterion_main!(benches);

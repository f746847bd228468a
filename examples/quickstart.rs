//! Quickstart: write a million records into a partition log, read them back
//! zero-copy, close, reopen, and print what happened and how fast.
//!
//! `cargo run --release --example quickstart [DIR]` (default: a temp dir).

use std::time::Instant;

use bytes::Bytes;
use streamlog::{Partition, PartitionOptions, Record};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map_or_else(|| tmp.path().join("events-0"), Into::into);
    let opts = PartitionOptions::default().segment_bytes(64 << 20);
    let log = Partition::open(&dir, opts.clone())?;
    println!("opened {} at offset {}", dir.display(), log.high_watermark());

    let n = 1_000_000u64;
    let value = Bytes::from(vec![b'x'; 100]);
    let start = Instant::now();
    for i in 0..n {
        log.append(&[Record::new(value.clone()).with_key(format!("user-{}", i % 1000))])?;
    }
    let t = start.elapsed();
    println!("appended {n} records of 100 B one per call in {t:.2?}: {:.1} M/s", n as f64 / t.as_secs_f64() / 1e6);

    let batch: Vec<Record> = (0..500).map(|_| Record::new(value.clone())).collect();
    let start = Instant::now();
    for _ in 0..(n / 500) {
        log.append(&batch)?;
    }
    let t = start.elapsed();
    println!("appended {n} records of 100 B in batches of 500 in {t:.2?}: {:.1} M/s", n as f64 / t.as_secs_f64() / 1e6);

    let start = Instant::now();
    let (mut records, mut bytes, mut next) = (0u64, 0u64, log.log_start_offset());
    while next < log.high_watermark() {
        for b in log.read(next, 1 << 20)? {
            for r in b.records() {
                bytes += r.value.map_or(0, |v| v.len() as u64);
                records += 1;
            }
            next = b.next_offset();
        }
    }
    let t = start.elapsed();
    println!(
        "read {records} records ({} MB of values, zero-copy, checksums verified) in {t:.2?}: {:.1} M/s",
        bytes / 1_000_000,
        records as f64 / t.as_secs_f64() / 1e6
    );
    println!(
        "{} segments, {} MB on disk; offset of the first record at or after now-1h: {:?}",
        log.segment_count(),
        log.size_in_bytes()? / 1_000_000,
        log.offset_for_timestamp(now_ms() - 3_600_000)?
    );

    log.close()?;
    let start = Instant::now();
    let log = Partition::open(&dir, opts)?;
    println!("closed cleanly and reopened in {:.2?} at offset {}", start.elapsed(), log.high_watermark());
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

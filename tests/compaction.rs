//! Compaction keeps the latest record per key with its offset, removes
//! tombstones after the delete retention, honours the dirty ratio and the
//! compaction lag, and survives a reopen.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use streamlog::{CompactionOptions, LogRecord, Partition, PartitionOptions, Record};

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(4096).index_interval_bytes(256)
}

fn eager(delete_retention: Duration) -> CompactionOptions {
    CompactionOptions {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag: Duration::ZERO,
        delete_retention,
        ..CompactionOptions::default()
    }
}

/// Every record from the log start, skipping compaction gaps.
fn all(p: &Partition) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while next < p.high_watermark() {
        let batches = p.read(next, 1 << 20).unwrap();
        for b in &batches {
            out.extend(b.try_records().unwrap());
            next = b.next_offset();
        }
    }
    out
}

/// Writes `n` records over `keys` keys (every 7th a tombstone, every 11th
/// without a key) at timestamps 0, 1, 2, ... Returns the model: what the
/// log holds at each offset.
fn fill(p: &Partition, n: u64, keys: u64) -> BTreeMap<u64, Record> {
    let mut model = BTreeMap::new();
    let mut x = 0x9e37_79b9u64;
    for i in 0..n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let key = format!("k{}", (x >> 33) % keys);
        let rec = if i % 11 == 10 {
            Record::new(format!("nokey-{i}"))
        } else if i % 7 == 6 {
            Record::tombstone(key)
        } else {
            Record::new(format!("v{i}")).with_key(key)
        }
        .with_timestamp(i as i64);
        assert_eq!(p.append(std::slice::from_ref(&rec)).unwrap().base_offset, i);
        model.insert(i, rec);
    }
    model
}

/// The model after compaction of offsets below `cleanable_end` at `now`.
fn compacted(model: &BTreeMap<u64, Record>, cleanable_end: u64, now: i64, delete_retention: i64) -> Vec<u64> {
    let mut latest: BTreeMap<Bytes, u64> = BTreeMap::new();
    for (&o, r) in model.range(..cleanable_end) {
        if let Some(k) = &r.key {
            latest.insert(k.clone(), o);
        }
    }
    model
        .iter()
        .filter(|&(&o, r)| {
            o >= cleanable_end
                || match &r.key {
                    None => true,
                    Some(k) => latest[k] == o && (r.value.is_some() || r.timestamp.unwrap() >= now - delete_retention),
                }
        })
        .map(|(&o, _)| o)
        .collect()
}

fn check(p: &Partition, model: &BTreeMap<u64, Record>, expected: &[u64]) {
    let got = all(p);
    let offsets: Vec<u64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, expected);
    for r in &got {
        let m = &model[&r.offset];
        assert_eq!((&r.key, &r.value, r.timestamp), (&m.key, &m.value, m.timestamp.unwrap()), "offset {}", r.offset);
    }
}

#[test]
fn compaction_matches_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), opts()).unwrap();
    let model = fill(&p, 3000, 40);
    let segments = p.segment_count();
    assert!(segments > 10);
    let active_base =
        common::log_files(dir.path()).last().unwrap().file_stem().unwrap().to_str().unwrap().parse().unwrap();
    // Tombstones still within their retention (now = 3000, retention 1 h).
    let stats = p.compact(3000, &eager(Duration::from_secs(3600))).unwrap();
    assert!(stats.records_removed > 2000, "{stats:?}");
    assert!(stats.bytes_written < stats.bytes_read / 4, "{stats:?}");
    check(&p, &model, &compacted(&model, active_base, 3000, 3_600_000));
    // Much later: the tombstones are gone too.
    let later = 10_000_000;
    p.compact(later, &eager(Duration::from_secs(3600))).unwrap();
    let expected = compacted(&model, active_base, later, 3_600_000);
    check(&p, &model, &expected);
    assert_eq!(p.log_start_offset(), 0, "compaction never moves the log start");
    assert_eq!(p.high_watermark(), 3000);
    // The result is what a reopen finds, indexes included.
    p.close().unwrap();
    let p = Partition::open(dir.path(), opts()).unwrap();
    check(&p, &model, &expected);
    p.verify().unwrap();
    let last = *expected.last().unwrap();
    assert_eq!(all(&p).iter().find(|r| r.offset >= last).unwrap().offset, last);
    // Reads that start inside a gap land on the next kept record.
    let gap_start = (0..3000).find(|o| !expected.contains(o)).unwrap();
    let first = p.read(gap_start, 1 << 20).unwrap()[0].records().next().unwrap().unwrap().offset;
    assert_eq!(first, *expected.iter().find(|&&o| o > gap_start).unwrap());
}

#[test]
fn dirty_ratio_and_compaction_lag_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), opts()).unwrap();
    fill(&p, 2000, 10);
    let lagged = CompactionOptions {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag: Duration::from_millis(1500),
        delete_retention: Duration::ZERO,
        ..CompactionOptions::default()
    };
    // now = 2000: only segments whose records are all older than 500 are
    // cleanable.
    let stats = p.compact(2000, &lagged).unwrap();
    assert!(stats.records_removed > 0);
    let untouched = all(&p).iter().filter(|r| r.offset >= 600).count();
    assert_eq!(untouched, 1400, "records inside the lag are all still there");
    // Nothing new is dirty: a pass with a ratio does nothing.
    let ratio = CompactionOptions { min_cleanable_dirty_ratio: 0.5, ..lagged.clone() };
    assert_eq!(p.compact(2000, &ratio).unwrap().bytes_read, 0);
}

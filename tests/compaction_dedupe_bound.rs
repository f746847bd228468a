//! A compaction pass finds each key's latest record in bounded memory
//! (`CompactionOptions::dedupe_buffer_bytes`): the dirty segments whose
//! keys do not fit wait for the next pass, and pass after pass the log ends
//! as one pass with room for every key leaves it: the latest record of each
//! key, and every keyless record.

use std::collections::BTreeMap;
use std::time::Duration;

use streamlog::{CompactionOptions, Partition, PartitionOptions, Record};

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(4096).index_interval_bytes(256)
}

/// Offset -> (key, value) of every record left.
fn contents(p: &Partition) -> BTreeMap<u64, (Option<String>, Option<String>)> {
    let text = |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
    let mut out = BTreeMap::new();
    let mut next = p.log_start_offset();
    while next < p.high_watermark() {
        let batches = p.read(next, 1 << 20).unwrap();
        assert!(!batches.is_empty(), "no batch at {next}");
        for b in batches {
            for r in b.try_records().unwrap() {
                out.insert(r.offset, (text(r.key), text(r.value)));
            }
            next = b.next_offset();
        }
    }
    out
}

/// 4,000 records over 400 keys (some tombstones, some keyless), in many
/// 4 KiB segments, each holding a few dozen keys.
fn written(dir: &std::path::Path) -> Partition {
    let p = Partition::open(dir, opts()).unwrap();
    for i in 0..4000u64 {
        let key = format!("key-{}", (i * 7919) % 400);
        let rec = match i % 13 {
            5 => Record::tombstone(key),
            9 => Record::new(format!("keyless {i}")),
            _ => Record::new(format!("v{i}")).with_key(key),
        };
        p.append(&[rec.with_timestamp(i as i64)]).unwrap();
    }
    p.roll().unwrap();
    p
}

fn options(dedupe_buffer_bytes: usize) -> CompactionOptions {
    CompactionOptions {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag: Duration::ZERO,
        // Tombstones stay: what is kept does not depend on the clock.
        delete_retention: Duration::from_secs(3600),
        dedupe_buffer_bytes,
    }
}

/// What compaction must leave: per key its last record, and keyless ones.
fn model(all: &BTreeMap<u64, (Option<String>, Option<String>)>) -> BTreeMap<u64, (Option<String>, Option<String>)> {
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (&o, (k, _)) in all {
        if let Some(k) = k {
            last.insert(k, o);
        }
    }
    all.iter().filter(|(o, (k, _))| k.as_deref().is_none_or(|k| last[k] == **o)).map(|(o, r)| (*o, r.clone())).collect()
}

#[test]
fn passes_with_a_small_buffer_end_where_one_large_pass_does() {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path());
    let expected = model(&contents(&p));
    let total = p.size_in_bytes().unwrap();

    // Room for about 300 keys: a pass cleans a part of the log.
    let small = options(300 * 50);
    let first = p.compact(10_000, &small).unwrap();
    assert!(first.bytes_read < total / 2, "a pass read {} of {total} bytes", first.bytes_read);
    let mut passes = 1;
    while contents(&p) != expected {
        p.compact(10_000, &small).unwrap();
        passes += 1;
        assert!(passes < 200, "compaction does not converge");
    }
    assert!(passes > 2, "{passes} passes");

    // The same log compacted in one pass with room for every key.
    let dir2 = tempfile::tempdir().unwrap();
    let q = written(dir2.path());
    q.compact(10_000, &options(CompactionOptions::default().dedupe_buffer_bytes)).unwrap();
    assert_eq!(contents(&q), expected);
}

#[test]
fn a_segment_with_more_keys_than_the_buffer_is_still_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path());
    let expected = model(&contents(&p));
    // Room for no key at all: each pass takes one dirty segment.
    let none = options(0);
    let segments = p.segment_count();
    let mut passes = 0;
    while contents(&p) != expected {
        p.compact(10_000, &none).unwrap();
        passes += 1;
        assert!(passes <= segments, "not converged after {passes} passes over {segments} segments");
    }
}

//! Compaction merges adjacent small segments into one named by the first,
//! crash-safely, while readers keep what they hold.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use common::{crash_copy, log_files};
use streamlog::{CompactionOptions, Partition, PartitionOptions, Record};

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(4096).index_interval_bytes(256)
}

fn compaction() -> CompactionOptions {
    CompactionOptions {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag: Duration::ZERO,
        delete_retention: Duration::ZERO,
        ..CompactionOptions::default()
    }
}

/// 3000 records over 10 keys: many segments, nearly all dead.
fn written(dir: &std::path::Path) -> Partition {
    let p = Partition::open(dir, opts()).unwrap();
    for i in 0..3000u64 {
        let rec = Record::new(format!("{i}")).with_key(format!("k{}", i % 10)).with_timestamp(i as i64);
        p.append(&[rec]).unwrap();
    }
    p
}

/// Offset -> value of every record, read the way a consumer does.
fn contents(p: &Partition) -> BTreeMap<u64, String> {
    let mut out = BTreeMap::new();
    let mut next = p.log_start_offset();
    while next < p.high_watermark() {
        let batches = p.read(next, 1 << 20).unwrap();
        assert!(!batches.is_empty(), "no batch at {next}");
        for b in batches {
            for r in b.try_records().unwrap() {
                out.insert(r.offset, String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
            next = b.next_offset();
        }
    }
    out
}

#[test]
fn small_segments_merge_and_readers_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path());
    let before = p.segment_count();
    // A reader holds records of segments about to be merged away.
    let held: Vec<_> = p.read(1500, 1 << 20).unwrap().iter().flat_map(|b| b.records()).map(Result::unwrap).collect();
    let held_values: Vec<Vec<u8>> = held.iter().map(|r| r.value.clone().unwrap().to_vec()).collect();
    let stats = p.compact(i64::MAX, &compaction()).unwrap();
    assert!(stats.segments_rewritten > 1, "{stats:?}");
    let after = p.segment_count();
    assert!(after <= 3, "{before} segments became {after}");
    for (r, v) in held.iter().zip(&held_values) {
        assert_eq!(&r.value.clone().unwrap()[..], &v[..], "held bytes stay valid");
    }
    let got = contents(&p);
    // The latest record of every key, and the active segment's records.
    for k in 0..10u64 {
        let last = 2990 + k;
        assert_eq!(got.get(&last).map(String::as_str), Some(last.to_string().as_str()));
    }
    p.verify().unwrap();
    // A second pass has nothing left to merge, and reopening finds the chain whole.
    p.compact(i64::MAX, &compaction()).unwrap();
    p.close().unwrap();
    let _ = fs::remove_file(dir.path().join(".clean_shutdown"));
    let p = Partition::open(dir.path(), opts()).unwrap();
    assert_eq!(contents(&p), got);
}

/// A crash after the merged output took the first segment's place but
/// before the other merged segments were deleted: open finishes the merge.
#[test]
fn an_interrupted_merge_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = written(dir.path());
    let before = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), before.path());
    p.compact(i64::MAX, &compaction()).unwrap();
    let merged = contents(&p);
    let merged_files = log_files(dir.path());
    // The state between the rename and the deletes: the old segments, but
    // the first replaced by the merged output.
    let first = merged_files[0].file_name().unwrap();
    fs::copy(&merged_files[0], before.path().join(first)).unwrap();
    for ext in ["index", "timeindex"] {
        let _ = fs::remove_file(before.path().join(first).with_extension(ext));
    }
    assert!(log_files(before.path()).len() > merged_files.len());
    drop(p);
    let p = Partition::open(before.path(), opts()).unwrap();
    let names =
        |v: Vec<std::path::PathBuf>| v.into_iter().map(|f| f.file_name().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(log_files(before.path())), names(merged_files));
    let got = contents(&p);
    // Records appended after the copy are not in it; everything else is.
    for (o, v) in &got {
        if let Some(m) = merged.get(o) {
            assert_eq!(m, v);
        }
    }
    for k in 0..10u64 {
        assert!(got.contains_key(&(2990 + k)));
    }
    p.verify().unwrap();
}

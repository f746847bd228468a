//! A segment before the last that a crash left without index files (the
//! crash came between a roll and the old segment's index files) is
//! recovered with a time index holding its largest timestamp: retention,
//! `offset_for_timestamp` and `max_timestamp` see its last record.

mod common;

use std::fs;
use std::time::Duration;

use common::{log_files, numbered, small_segments};
use streamlog::Partition;

/// A log of 1000 records (record `i` has timestamp 1,000,000 + i) whose
/// segment before the last has no index files and no clean marker vouches
/// for it, as a crash mid-roll leaves it. Returns the directory and that
/// segment's base and end offsets.
fn crashed_mid_roll() -> (tempfile::TempDir, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..1000 {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    let views = p.segments().unwrap();
    let prev = &views[views.len() - 2];
    let (base, end) = (prev.base_offset(), prev.end_offset());
    p.close().unwrap();
    let segs = log_files(dir.path());
    let prev = &segs[segs.len() - 2];
    fs::remove_file(prev.with_extension("index")).unwrap();
    fs::remove_file(prev.with_extension("timeindex")).unwrap();
    fs::remove_file(dir.path().join(".clean_shutdown")).unwrap();
    (dir, base, end)
}

fn timestamp_of(offset: u64) -> i64 {
    1_000_000 + offset as i64
}

#[test]
fn the_recovered_segment_knows_its_largest_timestamp() {
    let (dir, base, end) = crashed_mid_roll();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    let views = p.segments().unwrap();
    let v = views.iter().find(|v| v.base_offset() == base).unwrap();
    assert_eq!(v.max_timestamp(), Some(timestamp_of(end - 1)));
    // The same from the index files written by the recovery.
    p.close().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    let views = p.segments().unwrap();
    let v = views.iter().find(|v| v.base_offset() == base).unwrap();
    assert_eq!(v.max_timestamp(), Some(timestamp_of(end - 1)));
}

#[test]
fn retention_keeps_the_recovered_segment_while_its_last_record_is_at_the_cutoff() {
    let (dir, base, end) = crashed_mid_roll();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    // Cutoff = now - 10 ms = the last record's timestamp: that record is
    // not older than the retention, so its segment stays.
    p.apply_retention(timestamp_of(end - 1) + 10, Some(Duration::from_millis(10)), None).unwrap();
    assert_eq!(p.log_start_offset(), base);
}

#[test]
fn offset_for_timestamp_finds_the_recovered_segment_s_last_record() {
    let (dir, _, end) = crashed_mid_roll();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    assert_eq!(p.offset_for_timestamp(timestamp_of(end - 1)).unwrap(), Some(end - 1));
}

//! Retention by time (with a fake clock) and by size, delete-records, and a
//! reader that keeps reading a segment deleted under it.

mod common;

use std::time::Duration;

use common::{numbered, read_all};
use streamlog::{Error, Partition, PartitionOptions, Record};

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(8 << 10).index_interval_bytes(512)
}

/// 1000 records of ~140 bytes, timestamps 0, 1000, 2000, ... ms.
fn filled(dir: &std::path::Path) -> Partition {
    let p = Partition::open(dir, opts()).unwrap();
    for i in 0..1000u64 {
        p.append(&[numbered(i, 100).with_timestamp(i as i64 * 1000)]).unwrap();
    }
    p
}

#[test]
fn retention_by_time_deletes_old_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path());
    let segments = p.segment_count();
    assert!(segments > 10);
    // Keep 500 s: everything older than t = 500_000 ms (record 500) goes,
    // in whole segments.
    let now = 1000 * 1000;
    let deleted = p.apply_retention(now, Some(Duration::from_secs(500)), None).unwrap();
    assert!(deleted > 0);
    assert_eq!(p.segment_count(), segments - deleted);
    let start = p.log_start_offset();
    assert!(start > 400 && start <= 500, "log start {start}");
    assert!(matches!(p.read(start - 1, 100), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(read_all(&p, start).len() as u64, 1000 - start);
    assert_eq!(common::log_files(dir.path()).len(), p.segment_count(), "files deleted");
    // Everything expired: all sealed segments go, never the active one.
    p.apply_retention(i64::MAX, Some(Duration::from_secs(1)), None).unwrap();
    assert_eq!(p.segment_count(), 1);
    assert_eq!(p.append(&[numbered(1000, 10)]).unwrap().base_offset, 1000);
    // The log start survives a reopen.
    let start = p.log_start_offset();
    p.close().unwrap();
    let p = Partition::open(dir.path(), opts()).unwrap();
    assert_eq!(p.log_start_offset(), start);
}

#[test]
fn retention_by_size_keeps_the_log_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path());
    let limit = 40 << 10;
    p.apply_retention(0, None, Some(limit)).unwrap();
    // As Kafka: whole segments go while the log would still be at or above
    // the limit without them, so it ends within one segment of the limit.
    let size = p.size_in_bytes().unwrap();
    let oldest = std::fs::metadata(&common::log_files(dir.path())[0]).unwrap().len();
    assert!(size - oldest < limit, "one more segment could have gone: {size}");
    assert!(size <= limit + (8 << 10), "{size}");
    assert!(p.segment_count() < 20);
    assert_eq!(read_all(&p, p.log_start_offset()).last().unwrap().offset, 999);
}

#[test]
fn delete_records_moves_the_start_durably() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path());
    let before = p.segment_count();
    assert_eq!(p.delete_records(333).unwrap(), 333);
    assert!(p.segment_count() < before, "whole segments below 333 deleted");
    assert!(matches!(p.read(332, 10), Err(Error::OffsetOutOfRange { start: 333, .. })));
    assert_eq!(read_all(&p, 333)[0].offset, 333);
    assert_eq!(p.delete_records(10).unwrap(), 333, "never backwards");
    assert!(matches!(p.delete_records(5000), Err(Error::OffsetOutOfRange { .. })));
    drop(p);
    let p = Partition::open(dir.path(), opts()).unwrap();
    assert_eq!(p.log_start_offset(), 333);
    assert_eq!(p.offset_for_timestamp(0).unwrap(), Some(333));
}

#[test]
fn a_reader_keeps_reading_a_segment_deleted_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path());
    let held = p.read(0, 4096).unwrap();
    let values: Vec<_> = held.iter().flat_map(|b| b.records()).map(Result::unwrap).collect();
    assert!(!values.is_empty());
    p.apply_retention(i64::MAX, Some(Duration::from_secs(1)), None).unwrap();
    assert!(!dir.path().join("00000000000000000000.log").exists());
    for r in &values {
        assert_eq!(common::number_of(r), r.offset, "still readable after the unlink");
    }
    for b in &held {
        assert_eq!(b.records().map(Result::unwrap).count(), b.record_count() as usize);
    }
}

#[test]
fn a_crash_between_checkpoint_and_unlink_finishes_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let p = Partition::open(&live, opts()).unwrap();
    for i in 0..300u64 {
        p.append(&[Record::new(vec![1u8; 100]).with_timestamp(i as i64)]).unwrap();
    }
    let crash = dir.path().join("crash");
    common::crash_copy(&live, &crash);
    p.delete_records(200).unwrap();
    // The checkpoint made it, the unlinks did not.
    std::fs::copy(live.join(".checkpoints"), crash.join(".checkpoints")).unwrap();
    let q = Partition::open(&crash, opts()).unwrap();
    assert_eq!(q.log_start_offset(), 200);
    assert_eq!(q.segment_count(), p.segment_count());
    assert_eq!(read_all(&q, 200).len(), 100);
}

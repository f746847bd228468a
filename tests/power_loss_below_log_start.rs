//! A power loss that takes records up to the durable log start (their
//! deletion, `delete_records`, reached the disk; with `Durability::Os` the
//! records themselves did not) leaves the log empty at that log start, as
//! Kafka truncates fully: no offset below it is handed out again.

mod common;

use std::fs::OpenOptions;

use common::{crash_copy, log_files, numbered, small_segments};
use streamlog::{Durability, Error, Partition};

fn opts() -> streamlog::PartitionOptions {
    small_segments().durability(Durability::Os)
}

/// Writes `n` records, deletes the records below `delete_below`, and
/// returns what a power loss then leaves: a crash copy (no clean close)
/// whose last segment keeps only the first `keep(data)` bytes of its
/// `data` bytes of records.
fn power_loss_after_delete(n: u64, delete_below: u64, keep: impl Fn(u64) -> u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), opts()).unwrap();
    for i in 0..n {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    assert_eq!(p.delete_records(delete_below).unwrap(), delete_below);
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    // The active segment's file runs past its data (space allocated ahead).
    let logs = log_files(dir.path());
    let sealed: u64 = logs[..logs.len() - 1].iter().map(|f| f.metadata().unwrap().len()).sum();
    let data = p.size_in_bytes().unwrap() - sealed;
    drop(p);
    let last = log_files(crashed.path()).pop().unwrap();
    OpenOptions::new().write(true).open(&last).unwrap().set_len(keep(data)).unwrap();
    crashed
}

fn check_starts_afresh_at(dir: &std::path::Path, log_start: u64) {
    let p = Partition::open(dir, opts()).unwrap();
    assert_eq!((p.log_start_offset(), p.high_watermark()), (log_start, log_start));
    assert!(matches!(p.read(log_start - 1, 1 << 20), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(p.append(&[numbered(0, 100)]).unwrap().base_offset, log_start, "offsets are never reused");
    p.close().unwrap();
    // Durably so.
    let p = Partition::open(dir, opts()).unwrap();
    assert_eq!((p.log_start_offset(), p.high_watermark()), (log_start, log_start + 1));
    let batches = p.read(log_start, 1 << 20).unwrap();
    assert_eq!(batches[0].records().next().unwrap().unwrap().offset, log_start);
}

#[test]
fn a_single_segment_cut_below_the_log_start() {
    // 10 records deleted, then the segment loses half of them.
    let dir = power_loss_after_delete(10, 10, |data| data / 2);
    check_starts_afresh_at(dir.path(), 10);
}

#[test]
fn the_active_segment_of_several_cut_below_the_log_start() {
    // The active segment holds 900..1000; 995 is the log start, and the
    // segment keeps about half its records.
    let dir = power_loss_after_delete(1000, 995, |data| data / 2 + 7);
    assert_eq!(log_files(dir.path()).len(), 1, "the segments below the log start went");
    check_starts_afresh_at(dir.path(), 995);
}

#[test]
fn an_emptied_active_segment_below_the_log_start() {
    let dir = power_loss_after_delete(1000, 950, |_| 0);
    check_starts_afresh_at(dir.path(), 950);
}

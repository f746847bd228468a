//! A missing segment file is detected on open as a gap in the segment
//! chain (`Error::Corrupt` naming it), after a clean close or a crash;
//! `repair` records the loss explicitly and the log goes on.

mod common;

use std::fs;
use std::path::Path;

use common::{crash_copy, log_files, numbered, read_all, small_segments};
use streamlog::{Error, Partition};

fn base_of(seg: &Path) -> u64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// A cleanly closed log of 1000 records over several segments.
fn written() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..1000 {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    assert!(p.segment_count() >= 4);
    p.close().unwrap();
    dir
}

fn remove_segment(dir: &Path, seg: &Path) {
    fs::remove_file(seg).unwrap();
    for ext in ["index", "timeindex"] {
        let _ = fs::remove_file(dir.join(seg.with_extension(ext).file_name().unwrap()));
    }
}

fn expect_gap(dir: &Path, from: u64, to: u64) {
    match Partition::open(dir, small_segments()) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains(&format!("offsets {from}..{to} are missing")), "{reason}");
        }
        other => panic!("expected a gap {from}..{to}, got {other:?}"),
    }
}

#[test]
fn a_deleted_middle_segment_is_a_gap_after_a_clean_close() {
    let dir = written();
    let segs = log_files(dir.path());
    let (lost, next) = (base_of(&segs[1]), base_of(&segs[2]));
    remove_segment(dir.path(), &segs[1]);
    expect_gap(dir.path(), lost, next);
}

#[test]
fn a_deleted_middle_segment_is_a_gap_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..1000 {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    drop(p);
    let segs = log_files(crashed.path());
    let (lost, next) = (base_of(&segs[2]), base_of(&segs[3]));
    remove_segment(crashed.path(), &segs[2]);
    expect_gap(crashed.path(), lost, next);
}

#[test]
fn a_deleted_first_segment_is_a_gap_from_the_log_start() {
    let dir = written();
    let segs = log_files(dir.path());
    let next = base_of(&segs[1]);
    remove_segment(dir.path(), &segs[0]);
    expect_gap(dir.path(), 0, next);
}

#[test]
fn all_segments_deleted_is_corrupt() {
    let dir = written();
    for seg in log_files(dir.path()) {
        remove_segment(dir.path(), &seg);
    }
    assert!(matches!(Partition::open(dir.path(), small_segments()), Err(Error::Corrupt { .. })));
    let p = Partition::open(dir.path(), small_segments().repair(true)).unwrap();
    assert_eq!((p.log_start_offset(), p.high_watermark()), (1000, 1000), "offsets are never reused");
}

#[test]
fn repair_moves_the_log_start_past_a_missing_first_segment() {
    let dir = written();
    let segs = log_files(dir.path());
    let next = base_of(&segs[1]);
    remove_segment(dir.path(), &segs[0]);
    let p = Partition::open(dir.path(), small_segments().repair(true)).unwrap();
    assert_eq!(p.log_start_offset(), next);
    assert!(matches!(p.read(0, 1 << 20), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(read_all(&p, next).len() as u64, 1000 - next);
    p.close().unwrap();
    // Durably: a plain open now agrees.
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    assert_eq!(p.log_start_offset(), next);
}

#[test]
fn repair_records_a_middle_gap_and_reads_skip_it() {
    let dir = written();
    let segs = log_files(dir.path());
    let (lost, next) = (base_of(&segs[1]), base_of(&segs[2]));
    remove_segment(dir.path(), &segs[1]);
    let p = Partition::open(dir.path(), small_segments().repair(true)).unwrap();
    p.verify().unwrap();
    assert_eq!(p.high_watermark(), 1000);
    let batches = p.read(lost, 1 << 20).unwrap();
    let first = batches.iter().flat_map(|b| b.records()).next().unwrap().unwrap();
    assert_eq!(first.offset, next, "the lost offsets read as a gap");
    p.append(&[numbered(1000, 100)]).unwrap();
    p.close().unwrap();
    for _ in 0..2 {
        // A plain open (clean, then after a crash-like open without marker).
        let p = Partition::open(dir.path(), small_segments()).unwrap();
        assert_eq!(p.high_watermark(), 1001);
        drop(p);
        let _ = fs::remove_file(dir.path().join(".clean_shutdown"));
    }
}

#[test]
fn an_intact_log_opens_after_a_crash_with_its_chain_checked() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..1000 {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    // Index files of a sealed segment gone: the end is found by a scan.
    let segs = log_files(crashed.path());
    fs::remove_file(segs[1].with_extension("index")).unwrap();
    let p = Partition::open(crashed.path(), small_segments()).unwrap();
    assert_eq!(read_all(&p, 0).len(), 1000);
}

#[test]
fn a_missing_last_segment_after_a_clean_close_is_a_gap_not_a_shorter_log() {
    let dir = written();
    let segs = log_files(dir.path());
    let last = base_of(segs.last().unwrap());
    remove_segment(dir.path(), segs.last().unwrap());
    // Offsets last..1000 are gone; reusing them would point commits at other records.
    expect_gap(dir.path(), last, 1000);
    let p = Partition::open(dir.path(), small_segments().repair(true)).unwrap();
    assert_eq!(p.high_watermark(), 1000, "repair keeps the end the clean close recorded");
    assert_eq!(p.append(&[numbered(1000, 100)]).unwrap().base_offset, 1000);
    let after: Vec<u64> =
        p.read(last, 1 << 20).unwrap().iter().flat_map(|b| b.records()).map(|r| r.unwrap().offset).collect();
    assert_eq!(after, vec![1000], "the lost offsets read as a gap");
    p.close().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    assert_eq!(p.high_watermark(), 1001);
    p.close().unwrap();
}

#[test]
fn a_power_loss_while_rolling_cuts_the_old_tail_and_drops_the_empty_segment() {
    let dir = written();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    p.roll().unwrap();
    p.close().unwrap();
    let segs = log_files(dir.path());
    let (prev, empty) = (&segs[segs.len() - 2], segs.last().unwrap());
    assert_eq!(fs::metadata(empty).unwrap().len(), 0);
    // The crash: no clean marker, and the old segment's tail never reached the disk.
    let _ = fs::remove_file(dir.path().join(".clean_shutdown"));
    let mut bytes = fs::read(prev).unwrap();
    let len = bytes.len();
    bytes[len - 300..].fill(0);
    fs::write(prev, bytes).unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    let hw = p.high_watermark();
    assert!(hw < 1000 && hw > base_of(prev), "the torn tail is cut: {hw}");
    assert!(!empty.exists(), "the empty segment past the cut is gone");
    assert_eq!(p.append(&[numbered(hw, 100)]).unwrap().base_offset, hw);
    assert_eq!(read_all(&p, 0).len() as u64, hw + 1);
    p.close().unwrap();
}

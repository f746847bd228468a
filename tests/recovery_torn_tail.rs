//! Recovery after a crash: the active segment is scanned, a torn or corrupt
//! tail is cut off, and the log accepts appends again from there.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

use common::{crash_copy, log_files, numbered, read_all, small_segments};
use streamlog::{Partition, PartitionOptions};

/// A crashed copy of a partition holding `n` single-record batches.
fn crashed(n: u64, opts: PartitionOptions) -> (tempfile::TempDir, std::path::PathBuf, u64) {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let p = Partition::open(&live, opts).unwrap();
    for i in 0..n {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    let crash = dir.path().join("crash");
    crash_copy(&live, &crash);
    let data_len = p.size_in_bytes().unwrap();
    drop(p);
    (dir, crash, data_len)
}

fn batch_len() -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    p.append(&[numbered(0, 100)]).unwrap();
    p.size_in_bytes().unwrap()
}

#[test]
fn a_crash_loses_nothing_that_was_appended() {
    let (_d, crash, data_len) = crashed(300, PartitionOptions::default());
    assert!(!crash.join(".clean_shutdown").exists());
    let file_len = fs::metadata(&log_files(&crash)[0]).unwrap().len();
    assert!(file_len > data_len, "the active file is provisioned ahead of the data");
    let p = Partition::open(&crash, PartitionOptions::default()).unwrap();
    assert_eq!(p.high_watermark(), 300);
    assert!(read_all(&p, 0).iter().all(|r| common::number_of(r) == r.offset));
    // The preallocated zeroes were cut off and appends continue.
    assert_eq!(p.append(&[numbered(300, 100)]).unwrap().base_offset, 300);
    p.verify().unwrap();
}

#[test]
fn a_torn_last_batch_is_cut_off() {
    let (_d, crash, data_len) = crashed(50, PartitionOptions::default());
    let log = &log_files(&crash)[0];
    // The process died while copying the last batch: its end never arrived.
    let f = OpenOptions::new().write(true).open(log).unwrap();
    f.write_all_at(&[0u8; 30], data_len - 30).unwrap();
    drop(f);
    let p = Partition::open(&crash, PartitionOptions::default()).unwrap();
    assert_eq!(p.high_watermark(), 49);
    assert_eq!(fs::metadata(log).unwrap().len() % batch_len(), 0, "cut at a batch boundary");
    assert_eq!(read_all(&p, 0).len(), 49);
    assert_eq!(p.append(&[numbered(49, 100)]).unwrap().base_offset, 49);
}

#[test]
fn a_file_truncated_mid_batch_recovers() {
    let (_d, crash, data_len) = crashed(50, PartitionOptions::default());
    let log = &log_files(&crash)[0];
    for cut in [data_len - 1, data_len - batch_len() / 2, data_len - batch_len() - 7] {
        OpenOptions::new().write(true).open(log).unwrap().set_len(cut).unwrap();
        let p = Partition::open(&crash, PartitionOptions::default()).unwrap();
        let kept = cut / batch_len();
        assert_eq!(p.high_watermark(), kept, "cut at {cut}");
        assert_eq!(read_all(&p, 0).len() as u64, kept);
        // Close uncleanly again (drop writes a marker, so remove it).
        drop(p);
        fs::remove_file(crash.join(".clean_shutdown")).unwrap();
    }
}

fn flip_byte(log: &std::path::Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(log).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x04], at).unwrap();
}

#[test]
fn flipped_bits_in_the_last_batch_cut_it_off() {
    let (_d, crash, _) = crashed(50, PartitionOptions::default());
    flip_byte(&log_files(&crash)[0], 49 * batch_len() + 60);
    let p = Partition::open(&crash, PartitionOptions::default()).unwrap();
    assert_eq!(p.high_watermark(), 49);
    assert!(read_all(&p, 0).iter().all(|r| common::number_of(r) == r.offset));
}

#[test]
fn flipped_bits_before_valid_batches_are_an_error_unless_repairing() {
    let (_d, crash, _) = crashed(50, PartitionOptions::default());
    let log = log_files(&crash)[0].clone();
    let bad_batch = 40;
    flip_byte(&log, bad_batch * batch_len() + 60);
    // Valid, acknowledged batches follow: not a torn write, so no silent cut.
    let err = Partition::open(&crash, PartitionOptions::default()).unwrap_err();
    match err {
        streamlog::Error::Corrupt { path, position, .. } => {
            assert_eq!(path, log);
            assert_eq!(position, bad_batch * batch_len());
        }
        e => panic!("unexpected {e}"),
    }
    let p = Partition::open(&crash, PartitionOptions::default().repair(true)).unwrap();
    assert_eq!(p.high_watermark(), bad_batch);
    assert!(read_all(&p, 0).iter().all(|r| common::number_of(r) == r.offset));
}

#[test]
fn sealed_segments_are_not_rescanned_and_multi_segment_crash_recovers() {
    let (_d, crash, _) = crashed(2000, small_segments());
    let segments = log_files(&crash).len();
    assert!(segments > 3);
    let p = Partition::open(&crash, small_segments()).unwrap();
    assert_eq!(p.high_watermark(), 2000);
    assert_eq!(p.segment_count(), segments);
    assert_eq!(read_all(&p, 0).len(), 2000);
}

#[test]
fn an_empty_active_segment_after_a_crash_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let p = Partition::open(&live, PartitionOptions::default()).unwrap();
    p.append(&[numbered(0, 10)]).unwrap();
    p.roll().unwrap();
    let crash = dir.path().join("crash");
    crash_copy(&live, &crash);
    let p2 = Partition::open(&crash, PartitionOptions::default()).unwrap();
    assert_eq!(p2.high_watermark(), 1);
    assert_eq!(p2.append(&[numbered(1, 10)]).unwrap().base_offset, 1);
    assert_eq!(read_all(&p2, 0).len(), 2);
}

/// A crash after the next segment was created but before the active one was
/// sealed: the old segment still has its unwritten tail and no index files.
#[test]
fn a_crash_in_the_middle_of_a_roll_recovers_both_segments() {
    let (_d, crash, _) = crashed(100, PartitionOptions::default());
    let logs = log_files(&crash);
    assert_eq!(logs.len(), 1);
    fs::File::create(crash.join(format!("{:020}.log", 100))).unwrap();
    let p = Partition::open(&crash, PartitionOptions::default()).unwrap();
    assert_eq!(p.high_watermark(), 100);
    assert_eq!(p.segment_count(), 2);
    assert_eq!(read_all(&p, 0).len(), 100);
    p.verify().unwrap();
    assert_eq!(p.append(&[numbered(100, 100)]).unwrap().base_offset, 100);
}

/// A batch written by a newer format version is not a torn tail: recovery
/// reports it and cuts nothing.
#[test]
fn a_newer_batch_version_is_an_error_not_a_cut() {
    let (_d, crash, _) = crashed(20, PartitionOptions::default());
    let log = &log_files(&crash)[0];
    let f = OpenOptions::new().read(true).write(true).open(log).unwrap();
    let at = 15 * batch_len();
    let mut batch = vec![0u8; batch_len() as usize];
    f.read_exact_at(&mut batch, at).unwrap();
    batch[8] = 9; // magic
    let crc = crc32fast::hash(&batch[4..]);
    batch[..4].copy_from_slice(&crc.to_le_bytes());
    f.write_all_at(&batch, at).unwrap();
    drop(f);
    let before = fs::metadata(log).unwrap().len();
    let err = Partition::open(&crash, PartitionOptions::default()).unwrap_err();
    assert!(matches!(err, streamlog::Error::UnsupportedVersion { version: 9, .. }), "{err}");
    assert_eq!(fs::metadata(log).unwrap().len(), before, "nothing cut");
}

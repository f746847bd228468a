//! Corruption inside a sealed segment is an error naming the file and the
//! position, never skipped; the `repair` option cuts the log there.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use common::{log_files, numbered, read_all, small_segments};
use streamlog::{Error, Partition};

fn flip(path: &std::path::Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
}

/// Base offset of a segment file.
fn base_of(seg: &std::path::Path) -> u64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// A multi-segment log of 1000 same-size records, still open. Returns it,
/// its dir and its second segment's path.
fn written() -> (Partition, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..1000 {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    let seg = log_files(dir.path())[1].clone();
    (p, dir, seg)
}

/// A cleanly closed multi-segment log with a bit flipped in the middle of
/// its second segment. Returns the dir, that segment's path and base offset,
/// and the flipped position.
fn corrupted() -> (tempfile::TempDir, std::path::PathBuf, u64, u64) {
    let (p, dir, seg) = written();
    p.close().unwrap();
    let flip_at = std::fs::metadata(&seg).unwrap().len() / 2;
    flip(&seg, flip_at);
    let base = base_of(&seg);
    (dir, seg, base, flip_at)
}

#[test]
fn reading_a_corrupt_batch_names_file_and_position() {
    let (dir, seg, base, flip_at) = corrupted();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    assert_eq!(p.high_watermark(), 1000, "sealed segments are not scanned on open");
    // Everything before the bad batch reads fine.
    assert!(read_all_until_error(&p) >= base as usize);
    let mut next = base;
    let err = loop {
        match p.read(next, 1 << 10) {
            Ok(batches) => next = batches.last().unwrap().next_offset(),
            Err(e) => break e,
        }
    };
    match err {
        Error::Corrupt { path, position, .. } => {
            assert_eq!(path, seg);
            assert!(position <= flip_at && flip_at - position < 200, "position {position}, flipped {flip_at}");
        }
        e => panic!("unexpected {e}"),
    }
    assert!(matches!(p.verify(), Err(Error::Corrupt { .. })));
}

/// Reads from 0 until the first error; returns how many records it got.
fn read_all_until_error(p: &Partition) -> usize {
    let mut n = 0;
    let mut next = 0;
    while let Ok(batches) = p.read(next, 1 << 10) {
        if batches.is_empty() {
            break;
        }
        n += batches.iter().map(|b| b.records().map(Result::unwrap).count()).sum::<usize>();
        next = batches.last().unwrap().next_offset();
    }
    n
}

#[test]
fn repair_cuts_the_log_at_the_first_corrupt_batch() {
    let (dir, seg, base, _) = corrupted();
    let p = Partition::open(dir.path(), small_segments().repair(true)).unwrap();
    let hw = p.high_watermark();
    assert!(hw > base && hw < 1000, "cut inside the corrupt segment: {hw}");
    assert_eq!(log_files(dir.path()).last().unwrap(), &seg, "later segments deleted");
    let all = read_all(&p, 0);
    assert_eq!(all.len() as u64, hw);
    assert!(all.iter().all(|r| common::number_of(r) == r.offset));
    p.verify().unwrap();
    assert_eq!(p.append(&[numbered(hw, 100)]).unwrap().base_offset, hw);
}

/// A flipped bit in a batch's base offset (which no header walk may trust
/// without its checksum) is an error, not a reason to skip ahead.
#[test]
fn a_damaged_base_offset_is_not_skipped() {
    let (p, dir, seg) = written();
    p.close().unwrap();
    let base = base_of(&seg);
    // Batches are the same size; damage the top byte of batch 20's base offset.
    let batch_len = std::fs::metadata(&seg).unwrap().len() / (base_of(&log_files(dir.path())[2]) - base);
    flip(&seg, 20 * batch_len + 12 + 7);
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    let err = p.read(base + 20, 1 << 20).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { path, .. } if *path == seg), "{err}");
}

/// Repair cuts a file that `Bytes` from an earlier handle still map: those
/// bytes must stay readable (a cut made in place would be a SIGBUS).
#[test]
fn repair_never_pulls_pages_from_under_live_bytes() {
    let (p, dir, seg) = written();
    let base = base_of(&seg);
    let next_base = base_of(&log_files(dir.path())[2]);
    // Hold the last record of segment 1.
    let held = read_all(&p, next_base - 1).remove(0);
    assert_eq!(held.offset, next_base - 1);
    p.close().unwrap();
    flip(&seg, 200);
    let p = Partition::open(dir.path(), small_segments().repair(true)).unwrap();
    assert!(p.high_watermark() < next_base && p.high_watermark() >= base);
    assert_eq!(common::number_of(&held), next_base - 1, "still readable after the cut");
}

//! A segment file emptied or cut short after a clean close is found by the
//! next open (`Error::Corrupt` naming the missing offsets), never taken for
//! a shorter log or a compaction gap; a log left as the close left it still
//! opens without reading its sealed segments.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{log_files, numbered, small_segments};
use streamlog::{Error, Partition};

fn base_of(seg: &Path) -> u64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// A cleanly closed log of 1000 records (one a batch, all the same size)
/// over several segments.
fn written() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..1000 {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    assert!(p.segment_count() >= 5);
    p.close().unwrap();
    dir
}

fn cut(seg: &Path, len: u64) {
    OpenOptions::new().write(true).open(seg).unwrap().set_len(len).unwrap();
}

fn expect_missing(dir: &Path, from: u64, to: u64) {
    match Partition::open(dir, small_segments()) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains(&format!("offsets {from}..{to} are missing")), "{reason}");
        }
        Err(e) => panic!("expected offsets {from}..{to} missing, got {e}"),
        Ok(p) => panic!(
            "expected offsets {from}..{to} missing, but it opened: log {}..{}",
            p.log_start_offset(),
            p.high_watermark()
        ),
    }
}

#[test]
fn an_emptied_last_segment_is_missing_its_offsets() {
    let dir = written();
    let last = log_files(dir.path()).pop().unwrap();
    cut(&last, 0);
    expect_missing(dir.path(), base_of(&last), 1000);
    // The refused open changed nothing: the next attempt says the same.
    expect_missing(dir.path(), base_of(&last), 1000);
}

#[test]
fn an_emptied_middle_segment_is_a_gap() {
    let dir = written();
    let segs = log_files(dir.path());
    cut(&segs[3], 0);
    expect_missing(dir.path(), base_of(&segs[3]), base_of(&segs[4]));
}

#[test]
fn a_middle_segment_cut_at_a_batch_boundary_is_a_gap() {
    let dir = written();
    let segs = log_files(dir.path());
    let (base, next) = (base_of(&segs[2]), base_of(&segs[3]));
    let len = fs::metadata(&segs[2]).unwrap().len();
    let batch = len / (next - base);
    assert_eq!(batch * (next - base), len, "one record a batch, all the same size");
    cut(&segs[2], len - batch);
    expect_missing(dir.path(), next - 1, next);
}

/// The other side: with every file as the close left it, open trusts the
/// sealed segments without reading them (a batch damaged in place, the
/// file's length unchanged, is found by the read, not by the open).
#[test]
fn an_unchanged_log_opens_without_reading_its_sealed_segments() {
    let dir = written();
    let segs = log_files(dir.path());
    let (base, next) = (base_of(&segs[1]), base_of(&segs[2]));
    // A byte of the last batch's value.
    let at = fs::metadata(&segs[1]).unwrap().len() - 10;
    let f = OpenOptions::new().read(true).write(true).open(&segs[1]).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    assert_eq!(p.high_watermark(), 1000);
    assert!(p.read(base, 1 << 20).is_ok());
    assert!(matches!(p.read(next - 1, 1 << 20), Err(Error::Corrupt { .. })));
}

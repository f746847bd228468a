//! The indexes are a cache of the log: missing, torn or foreign index files
//! are rebuilt from the log, never fatal.

mod common;

use std::fs;

use common::{numbered, read_all, small_segments};
use streamlog::Partition;

fn closed_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..1500u64 {
        p.append(&[numbered(i, 80)]).unwrap();
    }
    p.close().unwrap();
    dir
}

fn index_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "index" || e == "timeindex"))
        .collect();
    v.sort();
    v
}

fn check(dir: &std::path::Path) {
    let p = Partition::open(dir, small_segments()).unwrap();
    assert_eq!(p.high_watermark(), 1500);
    for start in [0, 1, 333, 1024, 1499] {
        assert_eq!(read_all(&p, start)[0].offset, start);
    }
    assert_eq!(p.offset_for_timestamp(1_000_000 + 777).unwrap(), Some(777));
    assert_eq!(read_all(&p, 0).len(), 1500);
}

#[test]
fn every_segment_has_index_files_after_a_clean_close() {
    let dir = closed_log();
    let logs = common::log_files(dir.path()).len();
    assert_eq!(index_files(dir.path()).len(), 2 * logs);
    check(dir.path());
}

#[test]
fn deleted_indexes_are_rebuilt() {
    let dir = closed_log();
    for f in index_files(dir.path()) {
        fs::remove_file(f).unwrap();
    }
    check(dir.path());
}

#[test]
fn torn_or_garbage_indexes_are_rebuilt() {
    let dir = closed_log();
    for (i, f) in index_files(dir.path()).into_iter().enumerate() {
        let len = fs::metadata(&f).unwrap().len();
        match i % 3 {
            0 => fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(len / 2).unwrap(),
            1 => fs::write(&f, vec![0xee; len as usize]).unwrap(),
            _ => fs::write(&f, b"").unwrap(),
        }
    }
    check(dir.path());
}

#[test]
fn an_index_of_another_segment_is_rejected() {
    let dir = closed_log();
    let files = index_files(dir.path());
    // Swap the first two segments' offset indexes.
    let (a, b) = (fs::read(&files[0]).unwrap(), fs::read(&files[2]).unwrap());
    fs::write(&files[0], b).unwrap();
    fs::write(&files[2], a).unwrap();
    check(dir.path());
}

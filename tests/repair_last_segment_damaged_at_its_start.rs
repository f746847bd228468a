//! `repair` of a last segment damaged from its very first byte, after a
//! clean close: the lost offsets are recorded once, as a gap in that same
//! segment (listed once, its stale index files gone), and the log goes on
//! with compaction, retention, reads and reopens as usual.

mod common;

use std::fs;
use std::path::Path;

use common::{log_files, numbered, small_segments};
use streamlog::{CompactionOptions, Error, Partition};

fn base_of(seg: &Path) -> u64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// A cleanly closed log of `n` records whose last segment is then damaged
/// by `damage`; with `one_batch_last`, that segment holds only the last
/// record. Returns the directory and that segment's base offset.
fn damaged(n: u64, one_batch_last: bool, damage: impl Fn(&Path)) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..n {
        if one_batch_last && i == n - 1 {
            p.roll().unwrap();
        }
        p.append(&[numbered(i, 100)]).unwrap();
    }
    assert!(p.segment_count() >= 4);
    p.close().unwrap();
    let last = log_files(dir.path()).pop().unwrap();
    damage(&last);
    (dir, base_of(&last))
}

fn zero(seg: &Path) {
    fs::write(seg, vec![0u8; fs::metadata(seg).unwrap().len() as usize]).unwrap();
}

fn timestamp_of(offset: u64) -> i64 {
    1_000_000 + offset as i64
}

/// The offsets of every record from `from` on, read batch by batch until a
/// read returns nothing.
fn records_from(p: &Partition, from: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let batches = p.read(next, 64 << 10).unwrap();
        let Some(last) = batches.last() else { return out };
        out.extend(batches.iter().flat_map(|b| b.records()).map(|r| r.unwrap().offset));
        next = last.next_offset();
    }
}

/// Repairs the log of `end` records whose last segment, from `lost` on,
/// lost everything, and checks the log that results.
fn check_repair(dir: &Path, lost: u64, end: u64) {
    assert!(matches!(Partition::open(dir, small_segments()), Err(Error::Corrupt { .. })));
    let p = Partition::open(dir, small_segments().repair(true)).unwrap();
    let bases: Vec<u64> = p.segments().unwrap().iter().map(|s| s.base_offset()).collect();
    assert!(bases.windows(2).all(|w| w[0] < w[1]), "each segment listed once: {bases:?}");
    assert_eq!(bases[bases.len() - 2..], [lost, end]);
    assert_eq!(p.high_watermark(), end);
    // The gap holds no record, nor the lost records' timestamps (from
    // index files of the segment's old content).
    let views = p.segments().unwrap();
    let gap = &views[views.len() - 2];
    assert!(gap.max_timestamp().is_none_or(|t| t < timestamp_of(lost)), "{:?}", gap.max_timestamp());
    assert_eq!(p.offset_for_timestamp(timestamp_of(lost)).unwrap(), None);
    assert_eq!(p.max_timestamp_offset().unwrap(), Some((lost - 1, timestamp_of(lost - 1))));
    assert_eq!(records_from(&p, 0), (0..lost).collect::<Vec<_>>());
    assert!(p.read(lost, 1 << 20).unwrap().is_empty(), "the lost offsets read as a gap");
    p.verify().unwrap();
    // Compaction over the gap (nothing to remove: every key is unique),
    // retention into it, then an append.
    p.compact(i64::MAX, &CompactionOptions::default()).unwrap();
    assert_eq!(p.delete_records(lost + 1).unwrap(), lost + 1);
    assert_eq!(p.append(&[numbered(end, 100)]).unwrap().base_offset, end);
    assert_eq!(records_from(&p, lost + 1), [end]);
    p.close().unwrap();
    // A plain open agrees.
    let p = Partition::open(dir, small_segments()).unwrap();
    assert_eq!((p.log_start_offset(), p.high_watermark()), (lost + 1, end + 1));
    assert_eq!(records_from(&p, lost + 1), [end]);
    p.verify().unwrap();
}

#[test]
fn zeroed_from_its_first_byte() {
    let (dir, lost) = damaged(1000, false, zero);
    check_repair(dir.path(), lost, 1000);
}

#[test]
fn emptied() {
    let (dir, lost) =
        damaged(1000, false, |seg| fs::OpenOptions::new().write(true).open(seg).unwrap().set_len(0).unwrap());
    check_repair(dir.path(), lost, 1000);
}

/// The old index files of a one-batch segment pass for the gap's (a time
/// index of one entry, at the segment's first offset) unless removed.
#[test]
fn a_one_record_segment_zeroed() {
    let (dir, lost) = damaged(1000, true, zero);
    assert_eq!(lost, 999);
    check_repair(dir.path(), lost, 1000);
}

//! Segments roll on size, on age and on a full index; reads, time lookups and
//! a clean reopen work across them.

mod common;

use std::time::Duration;

use common::{log_files, numbered, read_all, small_segments};
use streamlog::{Partition, PartitionOptions, Record};

#[test]
fn rolls_on_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..1000 {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    assert!(p.segment_count() > 5, "{}", p.segment_count());
    let files = log_files(dir.path());
    assert_eq!(files.len(), p.segment_count());
    for f in &files[..files.len() - 1] {
        assert!(std::fs::metadata(f).unwrap().len() <= 16 << 10, "sealed segments are trimmed and within size");
    }
    // Segment names are the base offsets of their first record.
    let name = files[1].file_name().unwrap().to_str().unwrap().to_owned();
    let base: u64 = name.trim_end_matches(".log").parse().unwrap();
    assert_eq!(p.read(base, 1).unwrap()[0].base_offset(), base);
    assert_eq!(read_all(&p, 0).len(), 1000);
    assert_eq!(read_all(&p, 537)[0].offset, 537);
}

#[test]
fn rolls_on_record_age() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PartitionOptions::default().segment_age(Duration::from_secs(60));
    let p = Partition::open(dir.path(), opts).unwrap();
    p.append(&[Record::new("a").with_timestamp(0)]).unwrap();
    p.append(&[Record::new("b").with_timestamp(59_999)]).unwrap();
    assert_eq!(p.segment_count(), 1);
    p.append(&[Record::new("c").with_timestamp(60_000)]).unwrap();
    assert_eq!(p.segment_count(), 2);
}

#[test]
fn rolls_on_a_full_index() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PartitionOptions::default().index_interval_bytes(1).max_index_bytes(8 * 4);
    let p = Partition::open(dir.path(), opts).unwrap();
    for i in 0..20 {
        p.append(&[numbered(i, 10)]).unwrap();
    }
    assert!(p.segment_count() >= 4, "{}", p.segment_count());
    assert_eq!(read_all(&p, 0).len(), 20);
}

#[test]
fn offset_for_timestamp_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    // Timestamps rise by 10 per record, with a late straggler every 50.
    for i in 0..2000u64 {
        let ts = if i % 50 == 49 { 5 } else { 10 * i as i64 };
        p.append(&[numbered(i, 40).with_timestamp(ts)]).unwrap();
    }
    assert!(p.segment_count() > 3);
    assert_eq!(p.offset_for_timestamp(-1).unwrap(), Some(0));
    assert_eq!(p.offset_for_timestamp(10 * 777).unwrap(), Some(777));
    assert_eq!(p.offset_for_timestamp(10 * 777 - 3).unwrap(), Some(777));
    // 10 * 799 belongs to the straggler 799, so the answer is 800.
    assert_eq!(p.offset_for_timestamp(10 * 799).unwrap(), Some(800));
    assert_eq!(p.offset_for_timestamp(10 * 1998).unwrap(), Some(1998));
    assert_eq!(p.offset_for_timestamp(10 * 1998 + 1).unwrap(), None);
    // The same after a clean reopen, from the index files.
    p.close().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    assert_eq!(p.offset_for_timestamp(10 * 777 - 3).unwrap(), Some(777));
}

#[test]
fn clean_reopen_keeps_everything_and_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    for i in 0..500 {
        p.append(&[numbered(i, 100)]).unwrap();
    }
    let segments = p.segment_count();
    p.close().unwrap();
    assert!(dir.path().join(".clean_shutdown").exists());
    let p = Partition::open(dir.path(), small_segments()).unwrap();
    assert!(dir.path().join(".clean_shutdown").exists(), "open changes nothing, the marker stays");
    assert_eq!(p.segment_count(), segments);
    assert_eq!(p.high_watermark(), 500);
    assert_eq!(p.append(&[numbered(500, 100)]).unwrap().base_offset, 500);
    assert!(!dir.path().join(".clean_shutdown").exists(), "removed before the first write");
    let all = read_all(&p, 0);
    assert_eq!(all.len(), 501);
    assert!(all.iter().all(|r| common::number_of(r) == r.offset));
    p.verify().unwrap();
}

#[test]
fn explicit_roll_and_drop_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
        p.append(&[numbered(0, 10)]).unwrap();
        p.roll().unwrap();
        p.append(&[numbered(1, 10)]).unwrap();
        assert_eq!(p.segment_count(), 2);
    }
    assert!(dir.path().join(".clean_shutdown").exists(), "drop closes cleanly");
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    assert_eq!(read_all(&p, 0).len(), 2);
}

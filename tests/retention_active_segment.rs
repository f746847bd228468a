//! Retention takes the active segment too when its rules take it whole, as
//! Kafka does: a partition nobody writes to any more does not keep its last
//! records past `retention` (or over `retention_bytes`). The segment is
//! rolled first; offsets go on from where they were.

mod common;

use std::time::Duration;

use common::{numbered, read_all};
use streamlog::{Partition, PartitionOptions};

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(8 << 10).index_interval_bytes(512)
}

/// `n` records of ~140 bytes, timestamps 0, 1000, 2000, ... ms.
fn filled(dir: &std::path::Path, n: u64) -> Partition {
    let p = Partition::open(dir, opts()).unwrap();
    for i in 0..n {
        p.append(&[numbered(i, 100).with_timestamp(i as i64 * 1000)]).unwrap();
    }
    p
}

#[test]
fn an_expired_active_segment_is_rolled_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    // A few records: all in the active segment.
    let p = filled(dir.path(), 10);
    assert_eq!(p.segment_count(), 1);
    // The newest record (9 s) is older than an hour before now.
    let now = 2 * 3600 * 1000;
    let hour = Some(Duration::from_secs(3600));
    assert_eq!(p.apply_retention(now, hour, None).unwrap(), 1);
    assert_eq!((p.log_start_offset(), p.high_watermark()), (10, 10));
    assert!(read_all(&p, 10).is_empty());
    assert_eq!(common::log_files(dir.path()).len(), 1, "the old segment's files are gone");
    // Nothing more to do; appends go on at the next offset.
    assert_eq!(p.apply_retention(now, hour, None).unwrap(), 0);
    assert_eq!(p.append(&[numbered(10, 100).with_timestamp(now)]).unwrap().base_offset, 10);
    assert_eq!(p.apply_retention(now, hour, None).unwrap(), 0, "a young record stays");
    assert_eq!(read_all(&p, 10).len(), 1);
    // Kept across a reopen.
    p.close().unwrap();
    let p = Partition::open(dir.path(), opts()).unwrap();
    assert_eq!((p.log_start_offset(), p.high_watermark()), (10, 11));
}

#[test]
fn an_active_segment_with_a_young_record_stays() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path(), 1000);
    let sealed = p.segment_count() - 1;
    assert!(sealed > 5);
    // Records up to 999 s; keep 10 s at now = 1005 s: the sealed segments
    // go, the active one holds records of 995-999 s.
    let deleted = p.apply_retention(1_005_000, Some(Duration::from_secs(10)), None).unwrap();
    assert_eq!(deleted, sealed);
    assert_eq!(p.segment_count(), 1);
    assert_eq!(read_all(&p, p.log_start_offset()).last().unwrap().offset, 999);
}

#[test]
fn a_size_limit_below_the_active_segment_takes_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path(), 1000);
    let total = p.size_in_bytes().unwrap();
    // A limit larger than the whole log: nothing goes.
    assert_eq!(p.apply_retention(0, None, Some(total)).unwrap(), 0);
    // A limit of zero: everything goes, the active segment too.
    let segments = p.segment_count();
    assert_eq!(p.apply_retention(0, None, Some(0)).unwrap(), segments);
    assert_eq!((p.log_start_offset(), p.high_watermark()), (1000, 1000));
    assert_eq!(p.size_in_bytes().unwrap(), 0);
}

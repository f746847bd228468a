//! Appends and reads: dense offsets, reads from inside a batch, ranges,
//! size limits, bad input.

mod common;

use bytes::Bytes;
use common::{numbered, read_all};
use streamlog::{Error, Partition, PartitionOptions, Record};

#[test]
fn offsets_are_dense_and_reads_return_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    let mut expected = 0;
    for n in [1usize, 5, 1, 100, 3] {
        let recs: Vec<_> = (0..n).map(|i| numbered(expected + i as u64, 50)).collect();
        let info = p.append(&recs).unwrap();
        assert_eq!(info.base_offset, expected);
        assert_eq!(info.last_offset, expected + n as u64 - 1);
        expected += n as u64;
    }
    assert_eq!(p.high_watermark(), expected);
    assert_eq!(p.log_start_offset(), 0);
    let all = read_all(&p, 0);
    assert_eq!(all.len() as u64, expected);
    for r in &all {
        assert_eq!(common::number_of(r), r.offset);
        assert_eq!(r.key.as_deref(), Some(format!("key-{:08}", r.offset).as_bytes()));
        assert_eq!(r.timestamp, 1_000_000 + r.offset as i64);
    }
}

#[test]
fn reading_inside_a_batch_starts_at_the_requested_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    p.append(&(0..10).map(|i| numbered(i, 20)).collect::<Vec<_>>()).unwrap();
    let batches = p.read(7, 1 << 20).unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].base_offset(), 0);
    let offsets: Vec<u64> = batches[0].records().map(|r| r.unwrap().offset).collect();
    assert_eq!(offsets, vec![7, 8, 9]);
}

#[test]
fn out_of_range_offsets_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    p.append(&[numbered(0, 10), numbered(1, 10)]).unwrap();
    assert!(p.read(2, 100).unwrap().is_empty(), "reading at the high watermark is empty");
    let err = p.read(3, 100).unwrap_err();
    assert!(matches!(err, Error::OffsetOutOfRange { requested: 3, start: 0, end: 2 }), "{err}");
}

#[test]
fn max_bytes_limits_but_always_returns_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    for i in 0..10 {
        p.append(&[numbered(i, 1000)]).unwrap();
    }
    assert_eq!(p.read(0, 1).unwrap().len(), 1);
    let some = p.read(0, 3500).unwrap();
    assert!((2..=3).contains(&some.len()), "{}", some.len());
    assert_eq!(p.read(0, usize::MAX).unwrap().len(), 10);
}

#[test]
fn tombstones_headers_and_empty_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    let recs = vec![
        Record::tombstone("gone"),
        Record::new(Bytes::new()).with_header("trace", Some(Bytes::from_static(b"abc"))).with_header("flag", None),
        // Negative timestamps (but -1) are rejected since issue 11; 0 is the epoch.
        Record { key: None, value: None, timestamp: Some(0), headers: vec![] },
    ];
    p.append(&recs).unwrap();
    let got = read_all(&p, 0);
    assert_eq!(got[0].key.as_deref(), Some(&b"gone"[..]));
    assert_eq!(got[0].value, None);
    assert_eq!(got[1].value.as_deref(), Some(&b""[..]));
    assert_eq!(got[1].headers, recs[1].headers);
    assert_eq!((got[2].key.clone(), got[2].value.clone(), got[2].timestamp), (None, None, 0));
}

#[test]
fn records_without_timestamp_take_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(streamlog::ManualClock::new(42_000));
    let p = Partition::open(dir.path(), PartitionOptions::default().clock(clock.clone())).unwrap();
    p.append(&[Record::new("a")]).unwrap();
    assert_eq!(read_all(&p, 0)[0].timestamp, 42_000);
}

#[test]
fn bad_appends_are_rejected_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default().segment_bytes(4096)).unwrap();
    assert!(matches!(p.append(&[]), Err(Error::EmptyBatch)));
    let big = Record::new(vec![0u8; 5000]);
    assert!(matches!(p.append(&[big]), Err(Error::RecordTooLarge { .. })));
    assert_eq!(p.high_watermark(), 0);
    p.append(&[numbered(0, 10)]).unwrap();
    assert_eq!(read_all(&p, 0).len(), 1);
}

#[test]
fn invalid_options_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for opts in [
        PartitionOptions::default().segment_bytes(100),
        PartitionOptions::default().max_index_bytes(4),
        PartitionOptions::default().segment_age(std::time::Duration::ZERO),
        PartitionOptions::default().durability(streamlog::Durability::Interval(std::time::Duration::ZERO)),
    ] {
        assert!(matches!(Partition::open(dir.path(), opts), Err(Error::InvalidConfig(_))));
    }
    assert!(matches!(Partition::open("", PartitionOptions::default()), Err(Error::InvalidConfig(_))));
}

#[test]
fn concurrent_readers_see_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let p = std::sync::Arc::new(Partition::open(dir.path(), common::small_segments()).unwrap());
    let writer = {
        let p = p.clone();
        std::thread::spawn(move || {
            for i in 0..20_000 {
                p.append(&[numbered(i, 30)]).unwrap();
            }
        })
    };
    let mut next = 0;
    while next < 20_000 {
        for b in p.read(next, 64 << 10).unwrap() {
            for r in b.records() {
                let r = r.unwrap();
                assert_eq!(r.offset, next);
                assert_eq!(common::number_of(&r), next);
                next += 1;
            }
        }
    }
    writer.join().unwrap();
}

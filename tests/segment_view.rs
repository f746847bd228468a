//! Issue 11 item 7: `Partition::segments()`, a read-only view of each
//! segment (offsets, size, timestamps, sealed or active, files).

use streamlog::{Partition, PartitionOptions, Record};

#[test]
fn segments_describe_offsets_sizes_timestamps_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PartitionOptions::default().segment_bytes(4096).index_interval_bytes(256);
    let log = Partition::open(dir.path(), opts.clone()).unwrap();
    // A fresh partition: one empty active segment.
    let segs = log.segments().unwrap();
    assert_eq!(segs.len(), 1);
    let s = &segs[0];
    assert!((s.is_active(), s.is_sealed()) == (true, false));
    assert_eq!((s.base_offset(), s.end_offset(), s.size_in_bytes()), (0, 0, 0));
    assert_eq!((s.first_timestamp(), s.max_timestamp()), (None, None));

    // Timestamps out of order within a segment: the max is not the last.
    for i in 0..300i64 {
        let ts = 1_000 + i * 10 + if i % 7 == 0 { 5_000 } else { 0 };
        log.append(&[Record::new(vec![1u8; 100]).with_timestamp(ts), Record::new("x").with_timestamp(ts + 1)]).unwrap();
    }
    let check = |log: &Partition| {
        log.flush().unwrap();
        let segs = log.segments().unwrap();
        assert!(segs.len() > 3, "{} segments", segs.len());
        assert_eq!(segs[0].base_offset(), log.log_start_offset());
        assert_eq!(segs.last().unwrap().end_offset(), log.high_watermark());
        let mut total = 0;
        for (i, s) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            assert_eq!(s.is_active(), last);
            if !last {
                assert_eq!(s.end_offset(), segs[i + 1].base_offset(), "the chain");
            }
            // What a full read of the segment finds.
            let batches: Vec<_> = log
                .read(s.base_offset(), usize::MAX)
                .unwrap()
                .into_iter()
                .take_while(|b| b.base_offset() < s.end_offset())
                .collect();
            let ts: Vec<i64> = batches.iter().flat_map(|b| b.records()).map(|r| r.unwrap().timestamp).collect();
            assert_eq!(s.first_timestamp(), ts.first().copied(), "segment {}", s.base_offset());
            assert_eq!(s.max_timestamp(), ts.iter().copied().max(), "segment {}", s.base_offset());
            let bytes: u64 = batches.iter().map(|b| b.as_bytes().len() as u64).sum();
            assert_eq!(s.size_in_bytes(), bytes);
            total += s.size_in_bytes();
            let name = format!("{:020}", s.base_offset());
            assert_eq!(s.log_path(), dir.path().join(format!("{name}.log")));
            assert_eq!(s.index_path(), dir.path().join(format!("{name}.index")));
            assert_eq!(s.time_index_path(), dir.path().join(format!("{name}.timeindex")));
            assert!(s.log_path().exists());
            if !last {
                assert!(s.size_in_bytes() <= 4096);
                // Written once the roll's background sync is done (the
                // `flush` before the check waits for it).
                assert!(s.index_path().exists() && s.time_index_path().exists());
            }
        }
        assert_eq!(total, log.size_in_bytes().unwrap());
    };
    check(&log);
    log.close().unwrap();
    // After a clean reopen: sealed segments are described from their index
    // files and first header, without reading them whole.
    let log = Partition::open(dir.path(), opts).unwrap();
    check(&log);
    // Retention moves the first segment.
    let second = log.segments().unwrap()[1].base_offset();
    log.delete_records(second).unwrap();
    assert_eq!(log.segments().unwrap()[0].base_offset(), second);
    check(&log);
}

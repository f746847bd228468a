//! `Partition::append_refs` appends borrowed records without an allocation
//! per record (issue 16): a counting global allocator counts what the
//! appending thread allocates.

use streamlog::{Partition, PartitionOptions, RecordRef};

mod common;

use common::allocs;

#[global_allocator]
static GLOBAL: common::CountingAlloc = common::CountingAlloc;

/// Allocations on this thread per call of `append` over `calls` calls.
fn per_call(calls: u64, mut append: impl FnMut(u64)) -> f64 {
    let before = allocs();
    for i in 0..calls {
        append(i);
    }
    (allocs() - before) as f64 / calls as f64
}

#[test]
fn append_refs_allocates_nothing_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    // The caller's buffers: one block of bytes, records are slices of it.
    let buf: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let headers: [(&str, Option<&[u8]>); 2] = [("trace", Some(&buf[..16])), ("null", None)];
    let mut batch: Vec<RecordRef<'_>> = Vec::with_capacity(1000);
    // Small batches (through the mapping) and large ones (through pwrite).
    for (n, value_len) in [(1usize, 100usize), (64, 100), (1000, 100), (64, 1024)] {
        let mut append = |i: u64| {
            batch.clear();
            for r in 0..n {
                let at = (r * 97 + i as usize) % (buf.len() - value_len);
                let rec = RecordRef::new(&buf[at..at + value_len]).with_key(&buf[at..at + 8]);
                batch.push(if r % 10 == 0 {
                    rec.with_headers(&headers)
                } else {
                    rec.with_timestamp(1_700_000_000_000)
                });
            }
            p.append_refs(&batch).unwrap();
        };
        // Warm up: the thread's encoding buffer, the index's first growth.
        per_call(20, &mut append);
        let calls = 200;
        let avg = per_call(calls, &mut append);
        // Index entries and the encoding buffer may grow now and then;
        // nothing may be allocated per record (that would be >= n per call).
        assert!(avg < 1.0, "{n} records of {value_len} B: {avg} allocations per append_refs call");
    }
    // What was appended reads back as given.
    let first = &p.read(0, 1 << 20).unwrap()[0];
    let rec = first.records().next().unwrap().unwrap();
    assert_eq!(&rec.value.unwrap()[..], &buf[..100]);
    assert_eq!(&rec.key.unwrap()[..], &buf[..8]);
    assert_eq!(rec.headers.len(), 2);
    assert_eq!(rec.headers[0].key, "trace");
    assert_eq!(rec.headers[1].value, None);
    p.close().unwrap();
}

/// The baseline the test above is measured against: owned `Record`s built
/// from `&[u8]` cost an allocation per key and value.
#[test]
fn owned_records_from_slices_allocate_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    let buf = vec![7u8; 4096];
    let avg = per_call(100, |_| {
        let batch: Vec<streamlog::Record> = (0..64)
            .map(|r| streamlog::Record::new(buf[r..r + 100].to_vec()).with_key(buf[r..r + 8].to_vec()))
            .collect();
        p.append(&batch).unwrap();
    });
    assert!(avg >= 128.0, "{avg}");
}

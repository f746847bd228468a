//! Property test: random sequences of append, read, roll, clean reopen, crash
//! reopen and torn-write crash against an in-memory model (a `Vec`).

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use streamlog::{Partition, PartitionOptions, Record};

/// Key, value, timestamp (never negative: appends refuse those, and -1 means "now").
type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<RawRecord>),
    Read {
        at: f64,
        max_bytes: usize,
    },
    /// A read where the last read ended (as a consumer following the log).
    ReadOn {
        max_bytes: usize,
    },
    Roll,
    Reopen,
    Crash,
    /// Crash while a batch was half written: garbage after the data.
    TornCrash(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    let record = (proptest::option::of(bytes(20)), proptest::option::of(bytes(300)), 0i64..1_000_000);
    prop_oneof![
        10 => proptest::collection::vec(record, 1..6).prop_map(Op::Append),
        5 => (0.0..1.0f64, 1usize..5000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        3 => (1usize..5000).prop_map(|max_bytes| Op::ReadOn { max_bytes }),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => proptest::collection::vec(1u8..=255, 1..120).prop_map(Op::TornCrash),
    ]
}

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(4096).index_interval_bytes(128)
}

type Model = Vec<(Option<Bytes>, Option<Bytes>, i64)>;

/// Length of the data in the active (last) segment of a live partition.
fn active_data_len(p: &Partition, dir: &Path) -> u64 {
    let logs = common::log_files(dir);
    let sealed: u64 = logs[..logs.len() - 1].iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    p.size_in_bytes().unwrap() - sealed
}

/// Checks a read at `offset` against the model; returns where it ended.
fn check_read(p: &Partition, model: &Model, offset: u64, max_bytes: usize) -> u64 {
    let batches = p.read(offset, max_bytes).unwrap();
    if offset == model.len() as u64 {
        assert!(batches.is_empty());
        return offset;
    }
    assert!(!batches.is_empty());
    let mut next = offset;
    for b in &batches {
        for r in b.try_records().unwrap() {
            assert_eq!(r.offset, next);
            let (k, v, ts) = &model[next as usize];
            assert_eq!((&r.key, &r.value, r.timestamp), (k, v, *ts), "offset {next}");
            next += 1;
        }
    }
    next
}

fn run(ops: Vec<Op>) {
    let root = tempfile::tempdir().unwrap();
    let mut generation = 0;
    let mut dir: PathBuf = root.path().join("0");
    let mut p = Partition::open(&dir, opts()).unwrap();
    let mut model: Model = Vec::new();
    let mut read_end = 0;
    for op in ops {
        match op {
            Op::Append(recs) => {
                let recs: Vec<Record> = recs
                    .into_iter()
                    .map(|(k, v, ts)| Record {
                        key: k.map(Bytes::from),
                        value: v.map(Bytes::from),
                        timestamp: Some(ts),
                        headers: vec![],
                    })
                    .collect();
                let info = p.append(&recs).unwrap();
                assert_eq!(info.base_offset, model.len() as u64);
                model.extend(recs.into_iter().map(|r| (r.key, r.value, r.timestamp.unwrap())));
            }
            Op::Read { at, max_bytes } => {
                let offset = (at * (model.len() + 1) as f64) as u64;
                read_end = check_read(&p, &model, offset.min(model.len() as u64), max_bytes);
            }
            Op::ReadOn { max_bytes } => {
                read_end = check_read(&p, &model, read_end.min(model.len() as u64), max_bytes);
            }
            Op::Roll => p.roll().unwrap(),
            Op::Reopen => {
                p.close().unwrap();
                p = Partition::open(&dir, opts()).unwrap();
            }
            Op::Crash | Op::TornCrash(_) => {
                generation += 1;
                let copy = root.path().join(generation.to_string());
                common::crash_copy(&dir, &copy);
                if let Op::TornCrash(garbage) = &op {
                    let at = active_data_len(&p, &dir);
                    let log = common::log_files(&copy).pop().unwrap();
                    OpenOptions::new().write(true).open(log).unwrap().write_all_at(garbage, at).unwrap();
                }
                drop(p);
                dir = copy;
                p = Partition::open(&dir, opts()).unwrap();
            }
        }
        assert_eq!(p.high_watermark(), model.len() as u64);
    }
    check_read(&p, &model, 0, usize::MAX);
    p.verify().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn partition_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}

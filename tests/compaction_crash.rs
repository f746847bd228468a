//! A child process appends keyed records and compacts again and again; the
//! parent kills it (SIGKILL) at random moments. After every kill the log
//! must open, every record in it must be intact at its offset, and the
//! latest acknowledged record of every key must be there: a crash at any
//! step of a segment swap leaves the old or the new segment, never both,
//! never neither.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use streamlog::{CompactionOptions, Partition, PartitionOptions, Record};

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(4096).index_interval_bytes(256)
}

/// Value of the record at `offset` for `key`: both, so content can be checked.
fn value(offset: u64, key: u64) -> String {
    format!("{offset}:{key}")
}

fn child(dir: &str) {
    let p = Partition::open(dir, opts()).unwrap();
    let compaction = CompactionOptions {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag: Duration::ZERO,
        delete_retention: Duration::ZERO,
        ..CompactionOptions::default()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "START").unwrap();
    let mut x = p.high_watermark().wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    loop {
        for _ in 0..20 {
            let offset = p.high_watermark();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 30;
            let rec = Record::new(value(offset, key)).with_key(format!("k{key}")).with_timestamp(offset as i64);
            assert_eq!(p.append(&[rec]).unwrap().base_offset, offset);
            writeln!(out, "ACK {offset} {key}").unwrap();
        }
        out.flush().unwrap();
        p.compact(i64::MAX, &compaction).unwrap();
    }
}

#[test]
fn a_crash_during_compaction_leaves_a_readable_log_equal_to_the_model() {
    if let Ok(dir) = std::env::var("STREAMLOG_COMPACT_CHILD") {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Latest acknowledged offset of every key.
    let mut latest: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seed = 0x51_7cc1_b727_220au64;
    let mut saw_gaps = false;
    for trial in 0..30 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let test = "a_crash_during_compaction_leaves_a_readable_log_equal_to_the_model";
        let mut child = common::child_process(test, "STREAMLOG_COMPACT_CHILD", dir.path()).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let run_for = Duration::from_micros(3_000 + (seed >> 40) % 30_000);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(run_for);
            child.kill().unwrap();
            child.wait().unwrap()
        });
        for line in lines.map_while(Result::ok) {
            if let Some(at) = line.find("ACK ") {
                let mut parts = line[at + 4..].split_whitespace();
                if let (Some(Ok(o)), Some(Ok(k))) = (parts.next().map(str::parse), parts.next().map(str::parse)) {
                    latest.insert(k, o);
                }
            }
        }
        killer.join().unwrap();

        let p = Partition::open(dir.path(), opts()).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        let mut present = BTreeMap::new();
        let mut next = p.log_start_offset();
        while next < p.high_watermark() {
            for b in p.read(next, 1 << 20).unwrap() {
                for r in b.try_records().unwrap() {
                    let v = std::str::from_utf8(r.value.as_ref().unwrap()).unwrap().to_owned();
                    let (o, k) = v.split_once(':').unwrap();
                    assert_eq!(o.parse::<u64>().unwrap(), r.offset, "trial {trial}: record content");
                    assert_eq!(r.key.as_deref(), Some(format!("k{k}").as_bytes()));
                    present.insert(r.offset, k.parse::<u64>().unwrap());
                }
                next = b.next_offset();
            }
        }
        for (k, o) in &latest {
            assert_eq!(present.get(o), Some(k), "trial {trial}: latest record {o} of key {k} is missing");
        }
        p.verify().unwrap();
        saw_gaps |= (present.len() as u64) < p.high_watermark() - p.log_start_offset();
        drop(p);
        std::fs::remove_file(dir.path().join(".clean_shutdown")).unwrap();
    }
    assert!(latest.len() > 20, "the children wrote records");
    assert!(saw_gaps, "the children compacted");
}

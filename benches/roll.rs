//! The latency of the append that rolls a segment (issue 16), next to what
//! creating a file durably (create + directory sync) costs in the same run:
//! a roll should cost the appender no more than creating the next file.
//!
//! Each durability runs twice: appending flat out, and paced (a pause
//! after each append, so the disk keeps up with the syncs of the rolled
//! segments). Flat out on a disk slower than the appender, a roll waits
//! for the previous segment's sync to finish (at most one is in flight per
//! partition): that wait is the disk's back-pressure, not the roll's cost.
//!
//! `cargo bench -p streamlog-bench --bench roll` (plain output, no
//! criterion). `STREAMLOG_BENCH_SEGMENT_MIB` sets the segment size
//! (default 256), `STREAMLOG_BENCH_ROLLS` the number of rolls (default 6),
//! `STREAMLOG_BENCH_PACE_US` the pause of the paced runs (default 100).

use std::fs::File;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamlog::{Durability, Partition, PartitionOptions, Record};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let segment_mib = env_or("STREAMLOG_BENCH_SEGMENT_MIB", 256);
    let rolls = env_or("STREAMLOG_BENCH_ROLLS", 6);
    let value = Bytes::from(vec![0xab; 1024]);
    let batch: Vec<Record> =
        (0..64).map(|i| Record::new(value.clone()).with_timestamp(1_700_000_000_000 + i)).collect();
    let pace = Duration::from_micros(env_or("STREAMLOG_BENCH_PACE_US", 100) as u64);
    let runs = [
        ("os", Durability::Os, Duration::ZERO),
        ("interval_1s", Durability::Interval(Duration::from_secs(1)), Duration::ZERO),
        ("os_paced", Durability::Os, pace),
        ("interval_1s_paced", Durability::Interval(Duration::from_secs(1)), pace),
    ];
    for (name, durability, pause) in runs {
        let dir = tempfile::tempdir().unwrap();
        let opts = PartitionOptions::default().segment_bytes((segment_mib << 20) as u32).durability(durability);
        let p = Partition::open(dir.path(), opts).unwrap();
        let (mut rolling, mut other, mut create) = (Vec::new(), Vec::new(), Vec::new());
        while rolling.len() < rolls {
            let segments = p.segment_count();
            let start = Instant::now();
            p.append(&batch).unwrap();
            let t = start.elapsed();
            if p.segment_count() == segments {
                other.push(t);
                std::thread::sleep(pause);
                continue;
            }
            rolling.push(t);
            // The baseline, right after the roll (the same disk activity:
            // the old segment being written back): create a file in the
            // same directory and sync the directory.
            let start = Instant::now();
            File::create_new(dir.path().join(format!("baseline-{}", rolling.len()))).unwrap();
            File::open(dir.path()).unwrap().sync_all().unwrap();
            create.push(start.elapsed());
        }
        p.close().unwrap();
        let max_roll = *rolling.iter().max().unwrap();
        let (roll, create, call) = (median(&mut rolling), median(&mut create), median(&mut other));
        println!(
            "roll/{name}/segment_{segment_mib}MiB: rolling append p50 {roll:?} max {max_roll:?}; \
             create file + dir sync p50 {create:?}; other appends p50 {call:?}; \
             rolling / create = {:.2}",
            roll.as_secs_f64() / create.as_secs_f64()
        );
    }
}

//! At-least-once across consumer crashes: a child process consumes in a
//! group, printing every record it processed and committing as it goes; the
//! parent kills it (SIGKILL) at random moments and starts another. In the
//! end every record was processed at least once, and commits survived the
//! kills.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};

mod common;
use std::time::Duration;

use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

const RECORDS: u64 = 20_000;

fn config() -> ConsumerConfig {
    ConsumerConfig::with_group("workers")
        .auto_offset_reset(OffsetReset::Earliest)
        .max_poll_records(50)
        .enable_auto_commit(false)
}

/// The child: process records slowly, commit after every other poll.
fn child(dir: &str) {
    let b = Broker::open(dir, BrokerOptions::default()).unwrap();
    let mut c = b.consumer(config()).unwrap();
    c.subscribe(&["jobs"]).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "START").unwrap();
    for n in 0u64.. {
        let recs = c.poll(Duration::from_millis(50)).unwrap();
        if recs.is_empty() && n > 10 {
            writeln!(out, "DONE").unwrap();
            return;
        }
        for r in &recs {
            writeln!(out, "GOT {}", std::str::from_utf8(r.value.as_ref().unwrap()).unwrap()).unwrap();
        }
        out.flush().unwrap();
        if n % 2 == 1 {
            c.commit().unwrap();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

#[test]
fn records_are_processed_at_least_once_across_kills() {
    if let Ok(dir) = std::env::var("STREAMLOG_GROUP_CHILD") {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic("jobs", TopicConfig::with_partitions(3)).unwrap();
        let p = b.producer();
        for i in 0..RECORDS {
            p.send(ProducerRecord::new("jobs", i.to_string()).key(format!("k{i}"))).unwrap();
        }
        b.close().unwrap();
    }
    let mut processed = HashSet::new();
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut kills = 0;
    for trial in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let test = "records_are_processed_at_least_once_across_kills";
        let mut child = common::child_process(test, "STREAMLOG_GROUP_CHILD", dir.path()).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let run_for = Duration::from_millis(5 + seed % 40);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(run_for);
            let _ = child.kill();
            child.wait().unwrap()
        });
        let mut done = false;
        let mut started = false;
        for line in lines.map_while(Result::ok) {
            started |= line.contains("START");
            done |= line.contains("DONE");
            if let Some(at) = line.find("GOT ")
                && let Ok(v) = line[at + 4..].trim().parse::<u64>()
            {
                processed.insert(v);
            }
        }
        let status = killer.join().unwrap();
        if !status.success() {
            kills += 1;
        }
        assert!(started || !status.success(), "trial {trial}: the child failed");
        if done {
            break;
        }
    }
    assert!(kills >= 3, "the children were killed along the way ({kills})");
    // Whatever is left, a last consumer picks up from the committed offsets.
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let mut c = b.consumer(config()).unwrap();
    c.subscribe(&["jobs"]).unwrap();
    let mut last_batch = 0;
    for _ in 0..10_000 {
        let recs = c.poll(Duration::from_millis(20)).unwrap();
        if recs.is_empty() {
            break;
        }
        last_batch += recs.len();
        for r in recs {
            processed.insert(std::str::from_utf8(r.value.as_ref().unwrap()).unwrap().parse().unwrap());
        }
    }
    let missing: Vec<u64> = (0..RECORDS).filter(|v| !processed.contains(v)).take(10).collect();
    assert!(missing.is_empty(), "never processed: {missing:?}");
    assert!(last_batch < RECORDS as usize, "commits from the killed children were kept");
}

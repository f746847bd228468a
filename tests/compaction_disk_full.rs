//! Compaction that meets a full disk (here: a file size limit,
//! RLIMIT_FSIZE, in a child process) writing its new segment fails with an
//! error and leaves nothing behind: no partial temporary file, and no
//! mapping pinned beyond the broker's `max_mapped_segments` (a pass that
//! kept failing pinned every segment of its range until close, before).

mod common;

use std::time::Duration;

use streamlog::{Broker, BrokerOptions, CleanupPolicy, ProducerRecord, TopicConfig};

const LIMIT: u64 = 512 << 10;

fn open(dir: &std::path::Path) -> Broker {
    Broker::open(dir, BrokerOptions::default().max_mapped_segments(1).maintenance_interval(None)).unwrap()
}

fn temporary_files(dir: &std::path::Path) -> usize {
    let part = dir.join("topics/c/0");
    std::fs::read_dir(part)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        .count()
}

fn child(dir: &str) {
    let dir = std::path::Path::new(dir);
    let broker = open(dir);
    let config = TopicConfig::with_partitions(1)
        .cleanup_policy(CleanupPolicy::Compact)
        .min_cleanable_dirty_ratio(0.0)
        .delete_retention(Duration::ZERO)
        .segment_bytes(1 << 20);
    broker.create_topic("c", config).unwrap();
    let producer = broker.producer();
    let partition = broker.topic("c").unwrap().partition(0).unwrap();
    // Six segments of about 300 KB (under the limit), mostly live keys,
    // each rewriting a few keys of the first: adjacent ones merge into
    // one new segment larger than the limit.
    for round in 0..6u64 {
        for i in 0..2500u64 {
            let key = if i < 100 { format!("k{i}") } else { format!("k{round}-{i}") };
            producer.send(ProducerRecord::new("c", vec![b'v'; 100]).key(key).partition(0)).unwrap();
        }
        partition.roll().unwrap();
    }
    // SAFETY: plain system calls with valid arguments; the broker's threads
    // write nothing while this runs (no maintenance thread, nothing sent).
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit { rlim_cur: LIMIT, rlim_max: libc::RLIM_INFINITY };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let report = broker.run_maintenance().unwrap();
    assert!(!report.failures.is_empty(), "the compaction did not fail: {report:?}");
    assert!(report.failures.iter().all(|(_, e)| e.is_disk_full()), "{:?}", report.failures);
    let mapped: usize = broker.stats().unwrap().partitions.iter().map(|p| p.log.mapped_segments).sum();
    println!("MAPPED {mapped}");
    println!("TMP {}", temporary_files(dir));
    println!("END {}", partition.high_watermark());
}

#[test]
fn a_compaction_that_meets_a_full_disk_leaves_nothing_behind() {
    if let Ok(dir) = std::env::var("STREAMLOG_COMPACT_FULL_CHILD") {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = common::child_process(
        "a_compaction_that_meets_a_full_disk_leaves_nothing_behind",
        "STREAMLOG_COMPACT_FULL_CHILD",
        dir.path(),
    )
    .stderr(std::process::Stdio::piped())
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let value = |key: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.split(key).nth(1))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .trim()
            .parse()
            .unwrap()
    };
    // The active segment, and at most one sealed one in the cache.
    assert!(value("MAPPED ") <= 2, "{stdout}");
    assert_eq!(value("TMP "), 0, "{stdout}");
    // With room again, the next pass compacts and nothing was lost.
    let broker = open(dir.path());
    let partition = broker.topic("c").unwrap().partition(0).unwrap();
    assert_eq!(partition.high_watermark(), value("END "));
    let report = broker.run_maintenance().unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.records_compacted > 0);
}

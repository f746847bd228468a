//! Open files and mappings do not grow with the data: 1,000 partitions of
//! 20 segments each are created, written, reopened and read in full by a
//! process limited to 256 file descriptors (a child that lowers its own
//! `RLIMIT_NOFILE` first).

mod common;

use std::path::Path;

use streamlog::{Broker, BrokerOptions, Record, TopicConfig};

const PARTITIONS: u32 = 1000;
const SEGMENTS: u64 = 20;
/// Records of ~1 KiB in 4 KiB segments: 3 records per segment.
const PER_SEGMENT: u64 = 3;
const VALUE: usize = 1000;

fn lower_fd_limit(n: u64) {
    let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
    // SAFETY: setrlimit reads one `rlimit` from a valid pointer.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn value(p: u32, i: u64) -> Vec<u8> {
    let mut v = vec![(i % 251) as u8; VALUE];
    v[..4].copy_from_slice(&p.to_le_bytes());
    v[4..12].copy_from_slice(&i.to_le_bytes());
    v
}

fn opts() -> BrokerOptions {
    BrokerOptions::default().maintenance_interval(None)
}

fn child(dir: &Path) {
    lower_fd_limit(256);
    let config = TopicConfig::with_partitions(PARTITIONS).segment_bytes(4096).retention(None);
    {
        let broker = Broker::open(dir, opts()).unwrap();
        let topic = broker.create_topic("t", config).unwrap();
        for (p, part) in topic.partitions().iter().enumerate() {
            for i in 0..SEGMENTS * PER_SEGMENT {
                part.append(&[Record::new(value(p as u32, i))]).unwrap();
            }
            assert!(part.segment_count() as u64 >= SEGMENTS, "{} segments", part.segment_count());
        }
        // Read everything once while open, too.
        for part in topic.partitions() {
            assert_eq!(common::read_all(&part, 0).len() as u64, SEGMENTS * PER_SEGMENT);
        }
        assert!(open_fds() < 256, "{} descriptors open", open_fds());
        broker.close().unwrap();
    }
    let broker = Broker::open(dir, opts()).unwrap();
    let topic = broker.topic("t").unwrap();
    let mut kept = Vec::new();
    for (p, part) in topic.partitions().iter().enumerate() {
        let records = common::read_all(part, 0);
        assert_eq!(records.len() as u64, SEGMENTS * PER_SEGMENT, "partition {p}");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(&r.value.as_ref().unwrap()[..], &value(p as u32, i as u64)[..], "partition {p} offset {i}");
        }
        // Bytes handed out outlive the cache's eviction of their mapping.
        kept.push(records[0].value.clone().unwrap());
    }
    for (p, v) in kept.iter().enumerate() {
        assert_eq!(&v[..], &value(p as u32, 0)[..]);
    }
    assert!(open_fds() < 256, "{} descriptors open", open_fds());
    broker.close().unwrap();
    println!("CHILD-DONE");
}

#[test]
fn thousand_partitions_of_twenty_segments_under_256_descriptors() {
    if let Some(dir) = std::env::var_os("STREAMLOG_FD_CHILD") {
        child(Path::new(&dir));
        return;
    }
    let dir = common::scratch_dir();
    let out = common::child_process(
        "thousand_partitions_of_twenty_segments_under_256_descriptors",
        "STREAMLOG_FD_CHILD",
        dir.path(),
    )
    .stderr(std::process::Stdio::inherit())
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("CHILD-DONE"), "{stdout}");
}

//! `inspect::PartitionFiles::verify` reads a segment in pieces: checking a
//! 64 MiB segment does not hold it in memory (segments may be 4 GiB). It
//! read each file whole.

use streamlog::inspect::DataDir;
use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};

/// The process's peak resident memory in bytes since the last reset (Linux), if known.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

#[test]
fn a_large_segment_is_verified_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let value = vec![7u8; 1 << 20];
    for _ in 0..64 {
        broker.producer().send(ProducerRecord::new("t", value.clone())).unwrap();
    }
    broker.close().unwrap();
    drop(value);

    let files = DataDir::open(dir.path()).unwrap().partition("t", 0).unwrap();
    assert_eq!(files.segments().len(), 1);
    assert!(files.size_in_bytes() >= 64 << 20);
    // The writes raised the peak (mapped pages); start it again from here.
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("SKIPPED: cannot reset the peak resident memory");
        return;
    }
    let before = peak_rss();
    let mut checked = 0;
    let problems = files.verify(false, &mut |n| checked += n).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(checked, files.size_in_bytes());
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grew = after.saturating_sub(before);
        assert!(grew < 16 << 20, "peak memory grew by {} MB", grew >> 20);
    }
}

//! Memory does not multiply by partitions: after one ~1 MiB send to each of
//! 1,000 partitions, anonymous resident memory (RSS minus the page cache's
//! file pages, `RssAnon` in `/proc/self/status`) stays within 64 MiB. Run in
//! a child process so the measurement is this scenario's alone.

mod common;

use std::path::Path;

use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};

const PARTITIONS: u32 = 1000;

fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).expect("RssAnon in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn child(dir: &Path) {
    let broker = Broker::open(dir, BrokerOptions::default().maintenance_interval(None)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(PARTITIONS).retention(None)).unwrap();
    let producer = broker.producer();
    let value = bytes::Bytes::from(vec![0x5au8; 1 << 20]);
    for p in 0..PARTITIONS {
        producer.send(ProducerRecord::new("t", value.clone()).partition(p)).unwrap();
    }
    drop(value);
    let kib = rss_anon_kib();
    println!("RSS-ANON-KIB {kib}");
    assert!(kib <= 64 << 10, "RssAnon {kib} KiB after one 1 MiB send to each of {PARTITIONS} partitions");
    broker.close().unwrap();
    println!("CHILD-DONE");
}

#[test]
fn one_large_send_per_partition_does_not_keep_a_buffer_each() {
    if let Some(dir) = std::env::var_os("STREAMLOG_MEM_CHILD") {
        child(Path::new(&dir));
        return;
    }
    let dir = common::scratch_dir();
    let out = common::child_process(
        "one_large_send_per_partition_does_not_keep_a_buffer_each",
        "STREAMLOG_MEM_CHILD",
        dir.path(),
    )
    .stderr(std::process::Stdio::inherit())
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success() && stdout.contains("CHILD-DONE"), "{stdout}");
}

//! The offsets log stays proportional to its live data: compaction merges
//! the small segments that many commits leave and drops empty ones.

mod common;

use std::time::Duration;

use streamlog::{Broker, BrokerOptions, ConsumerConfig, OFFSETS_TOPIC, ProducerRecord, TopicConfig, TopicPartition};

fn offsets_dir(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("topics").join(OFFSETS_TOPIC).join("0")
}

#[test]
fn twenty_thousand_commits_leave_a_handful_of_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || BrokerOptions::default().offsets_segment_bytes(4096).maintenance_interval(None);
    let b = Broker::open(dir.path(), opts()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(4)).unwrap();
    let producer = b.producer();
    for p in 0..4 {
        for i in 0..100 {
            producer.send(ProducerRecord::new("t", i.to_string()).partition(p)).unwrap();
        }
    }
    let mut c = b.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    let tps: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("t", p)).collect();
    c.assign(&tps).unwrap();
    for i in 0..20_000u64 {
        let tp = &tps[(i % 4) as usize];
        c.commit_offsets(&[(tp.clone(), 1 + (i / 4) % 100)]).unwrap();
    }
    let before = common::log_files(&offsets_dir(dir.path())).len();
    assert!(before > 100, "the commits filled many segments: {before}");
    b.run_maintenance().unwrap();
    b.run_maintenance().unwrap();
    let after = common::log_files(&offsets_dir(dir.path())).len();
    eprintln!("offsets log: {before} segments before maintenance, {after} after");
    assert!(after <= 4, "{before} segments became {after}");
    let expected: Vec<Option<u64>> = tps.iter().map(|tp| c.committed(tp).unwrap()).collect();
    assert_eq!(expected, vec![Some(100); 4]);
    drop(c);
    b.close().unwrap();

    // The merged log replays to the same commits, cleanly and after a crash.
    for clean in [true, false] {
        if !clean {
            // The broker's one clean marker (for all partitions).
            std::fs::remove_file(dir.path().join(".clean_shutdown")).unwrap();
        }
        let b = Broker::open(dir.path(), opts()).unwrap();
        let c = b.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
        for tp in &tps {
            assert_eq!(c.committed(tp).unwrap(), Some(100));
        }
        assert!(b.topic(OFFSETS_TOPIC).unwrap().partition(0).unwrap().segment_count() <= 4);
        drop(c);
        b.close().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

//! A topic whose small metadata file is lost or damaged is an error naming
//! the file; its data is never deleted. `BrokerOptions::repair` reaches every
//! partition.

mod common;

use std::fs;
use std::path::Path;

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Error, OFFSETS_TOPIC, ProducerRecord, TopicConfig, TopicPartition,
};

/// A closed broker with topic `t` (2 partitions, small segments, 1000
/// records in partition 0) and a commit of group `g` at 500.
fn written() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2).segment_bytes(16 << 10)).unwrap();
    let p = b.producer();
    for i in 0..1000 {
        p.send(ProducerRecord::new("t", vec![b'x'; 100]).key(i.to_string()).partition(0)).unwrap();
    }
    let mut c = b.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    let tp = TopicPartition::new("t", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.commit_offsets(&[(tp, 500)]).unwrap();
    drop(c);
    b.close().unwrap();
    dir
}

fn expect_corrupt_meta(dir: &Path, meta: &Path) {
    let err = Broker::open(dir, BrokerOptions::default()).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { path, .. } if path == meta), "{err}");
}

#[test]
fn a_deleted_topic_meta_is_an_error_and_the_data_stays() {
    let dir = written();
    let meta = dir.path().join("topics/t/topic.meta");
    let saved = fs::read(&meta).unwrap();
    fs::remove_file(&meta).unwrap();
    expect_corrupt_meta(dir.path(), &meta);
    assert!(dir.path().join("topics/t/0").is_dir(), "the data is kept");
    // repair cannot guess a user topic's configuration either.
    assert!(matches!(Broker::open(dir.path(), BrokerOptions::default().repair(true)), Err(Error::Corrupt { .. })));
    // Restored, everything is there.
    fs::write(&meta, saved).unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert_eq!(b.topic("t").unwrap().partition(0).unwrap().high_watermark(), 1000);
}

#[test]
fn a_deleted_offsets_topic_meta_keeps_the_commits() {
    let dir = written();
    let meta = dir.path().join("topics").join(OFFSETS_TOPIC).join("topic.meta");
    fs::remove_file(&meta).unwrap();
    expect_corrupt_meta(dir.path(), &meta);
    // repair writes the internal topic's known configuration again.
    let b = Broker::open(dir.path(), BrokerOptions::default().repair(true)).unwrap();
    let c = b.consumer(ConsumerConfig::with_group("g")).unwrap();
    assert_eq!(c.committed(&TopicPartition::new("t", 0)).unwrap(), Some(500));
    drop(c);
    b.close().unwrap();
    assert!(meta.exists());
}

#[test]
fn a_flipped_bit_in_topic_meta_is_corrupt() {
    let dir = written();
    let meta = dir.path().join("topics/t/topic.meta");
    let good = fs::read(&meta).unwrap();
    // Any single flipped bit, including ones that make the text invalid UTF-8.
    for at in [0, good.len() / 3, good.len() / 2, good.len() - 3] {
        for bit in [0, 5, 7] {
            let mut bad = good.clone();
            bad[at] ^= 1 << bit;
            fs::write(&meta, &bad).unwrap();
            expect_corrupt_meta(dir.path(), &meta);
        }
    }
    fs::write(&meta, &good).unwrap();
    Broker::open(dir.path(), BrokerOptions::default()).unwrap();
}

#[test]
fn repair_through_broker_options_reaches_the_partitions() {
    let dir = written();
    let part = dir.path().join("topics/t/0");
    let segs = common::log_files(&part);
    assert!(segs.len() >= 4);
    fs::remove_file(&segs[1]).unwrap();
    let err = Broker::open(dir.path(), BrokerOptions::default()).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { reason, .. } if reason.contains("repair")), "{err}");
    let b = Broker::open(dir.path(), BrokerOptions::default().repair(true)).unwrap();
    let p = b.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.high_watermark(), 1000);
    p.verify().unwrap();
}

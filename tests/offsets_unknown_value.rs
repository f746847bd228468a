//! A record of the offsets log whose value this build cannot parse (a
//! value version from a newer build, a damaged metadata length) is not a
//! tombstone: replaying the log on open keeps the commit before it, so a
//! group resumes from there instead of falling back to
//! `auto_offset_reset`. Only a null value (a real tombstone) removes.

use std::time::Duration;

use streamlog::inspect::DataDir;
use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, OFFSETS_TOPIC, ProducerRecord, Record, TopicConfig, TopicPartition,
};

/// A key of the offsets log, as `OffsetStore` writes it: version 1, group
/// and topic (u16 length + UTF-8), partition (u32), little-endian.
fn offset_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut k = vec![1u8];
    k.extend_from_slice(&(group.len() as u16).to_le_bytes());
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(&(tp.topic.len() as u16).to_le_bytes());
    k.extend_from_slice(tp.topic.as_bytes());
    k.extend_from_slice(&tp.partition.to_le_bytes());
    k
}

#[test]
fn an_unparseable_offset_value_keeps_the_commit_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || BrokerOptions::default().maintenance_interval(None);
    let b = Broker::open(dir.path(), opts()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(3)).unwrap();
    let producer = b.producer();
    for p in 0..3 {
        for i in 0..10 {
            producer.send(ProducerRecord::new("t", i.to_string()).partition(p)).unwrap();
        }
    }
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
    let mut c = b.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    c.assign(&tps).unwrap();
    c.commit_offsets(&[(tps[0].clone(), 4), (tps[1].clone(), 5), (tps[2].clone(), 6)]).unwrap();
    c.close().unwrap();
    // After the commits: an unknown value version for partition 0, a
    // version-2 value whose metadata length disagrees with its text for
    // partition 1, and a real tombstone for partition 2.
    let mut unknown = vec![9u8];
    unknown.extend_from_slice(&7u64.to_le_bytes());
    unknown.extend_from_slice(&0i64.to_le_bytes());
    let mut bad_metadata = vec![2u8];
    bad_metadata.extend_from_slice(&8u64.to_le_bytes());
    bad_metadata.extend_from_slice(&0i64.to_le_bytes());
    bad_metadata.extend_from_slice(&5u16.to_le_bytes());
    bad_metadata.extend_from_slice(b"abc");
    let log = b.topic(OFFSETS_TOPIC).unwrap().partition(0).unwrap();
    log.append(&[
        Record::new(unknown).with_key(offset_key("g", &tps[0])),
        Record::new(bad_metadata).with_key(offset_key("g", &tps[1])),
        Record::tombstone(offset_key("g", &tps[2])),
    ])
    .unwrap();
    b.close().unwrap();

    let expected = [(tps[0].clone(), 4), (tps[1].clone(), 5)].into_iter().collect();
    assert_eq!(DataDir::open(dir.path()).unwrap().committed_offsets().unwrap().get("g"), Some(&expected));
    let b = Broker::open(dir.path(), opts()).unwrap();
    assert_eq!(b.group("g").committed().unwrap(), expected);
    let mut c = b.consumer(ConsumerConfig::with_group("g")).unwrap();
    c.assign(&tps[..1]).unwrap();
    assert_eq!(c.poll(Duration::from_secs(5)).unwrap()[0].offset, 4);
}

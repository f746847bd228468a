//! A damaged batch in the middle of a partition: a consumer reading from
//! before it gets every record up to it, then the error at it, on each
//! poll, its position at the damaged record. Before, every read that
//! reached the damage failed as a whole, so the records before it never
//! came: a consumer starting before it was stuck at its position.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Error, OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

#[test]
fn records_before_a_damaged_batch_are_read_then_the_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || BrokerOptions::default().maintenance_interval(None);
    let broker = Broker::open(dir.path(), opts()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1).segment_bytes(16 << 10)).unwrap();
    let producer = broker.producer();
    // One record per batch, 100 B values naming their offset.
    for i in 0..400u32 {
        producer.send(ProducerRecord::new("t", format!("{i:0100}")).partition(0)).unwrap();
    }
    drop(producer);
    broker.close().unwrap();

    // A bit flipped in the value of a record inside the first (sealed)
    // segment: that record's batch fails its checksum.
    let logs = common::log_files(&dir.path().join("topics").join("t").join("0"));
    assert!(logs.len() >= 2, "a sealed first segment: {logs:?}");
    let bytes = std::fs::read(&logs[0]).unwrap();
    let damaged: u64 = 40;
    let value = format!("{damaged:0100}");
    let at = bytes.windows(100).position(|w| w == value.as_bytes()).unwrap() as u64 + 50;
    let f = OpenOptions::new().read(true).write(true).open(&logs[0]).unwrap();
    f.write_all_at(&[bytes[at as usize] ^ 0x01], at).unwrap();
    drop(f);

    let broker = Broker::open(dir.path(), opts()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    let mut offsets = Vec::new();
    let mut errors = 0;
    for _ in 0..5 {
        match consumer.poll(Duration::ZERO) {
            Ok(records) => offsets.extend(records.iter().map(|r| r.offset)),
            Err(e) => {
                assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
                errors += 1;
            }
        }
    }
    assert_eq!(offsets, (0..damaged).collect::<Vec<_>>(), "every record before the damage");
    assert!(errors >= 3, "then the damage, on every poll: {errors}");
    assert_eq!(consumer.position(&tp).unwrap(), damaged);
}

//! A damaged batch in the middle of a partition: a consumer reading from
//! before it gets every record up to it, then the error at it, on each
//! poll, its position at the damaged record. Before, every read that
//! reached the damage failed as a whole, so the records before it never
//! came: a consumer starting before it was stuck at its position. A seek
//! past the damage goes on after it.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Error, OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

fn opts() -> BrokerOptions {
    BrokerOptions::default().maintenance_interval(None)
}

/// 400 one-record batches (100 B values naming their offset) in 16 KiB
/// segments, with a bit flipped in the value of offset `DAMAGED`, inside the
/// first (sealed) segment: that batch fails its checksum.
fn log_with_a_damaged_batch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1).segment_bytes(16 << 10)).unwrap();
    let producer = broker.producer();
    for i in 0..400u32 {
        producer.send(ProducerRecord::new("t", format!("{i:0100}")).partition(0)).unwrap();
    }
    drop(producer);
    broker.close().unwrap();

    let logs = common::log_files(&dir.path().join("topics").join("t").join("0"));
    assert!(logs.len() >= 2, "a sealed first segment: {logs:?}");
    let bytes = std::fs::read(&logs[0]).unwrap();
    let value = format!("{DAMAGED:0100}");
    let at = bytes.windows(100).position(|w| w == value.as_bytes()).unwrap() as u64 + 50;
    let f = OpenOptions::new().read(true).write(true).open(&logs[0]).unwrap();
    f.write_all_at(&[bytes[at as usize] ^ 0x01], at).unwrap();
    dir
}

const DAMAGED: u64 = 40;

#[test]
fn records_before_a_damaged_batch_are_read_then_the_damage_is_reported() {
    let dir = log_with_a_damaged_batch();
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
    assert_eq!(offsets, (0..DAMAGED).collect::<Vec<_>>(), "every record before the damage");
    assert!(errors >= 3, "then the damage, on every poll: {errors}");
    assert_eq!(consumer.position(&tp).unwrap(), DAMAGED);
}

/// The way on past the damage is a seek past it, as in Kafka. The read
/// after the seek starts at the index entry before the target, which may
/// precede the damaged batch: it steps over the batches before the target
/// by their headers, so the damage does not fail it. Before, it checked
/// every batch it walked over and failed at the damaged one, so a seek
/// just past the damage failed too.
#[test]
fn a_seek_past_a_damaged_batch_goes_on_after_it() {
    let dir = log_with_a_damaged_batch();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    consumer.seek(&tp, DAMAGED).unwrap();
    let e = consumer.poll(Duration::ZERO).unwrap_err();
    let Error::Corrupt { reason, .. } = &e else { panic!("{e:?}") };
    // The error says where the damaged batch ends.
    assert!(reason.contains(&format!("a seek to {} goes on", DAMAGED + 1)), "{reason}");
    // Several targets after it: the index entry the read starts from lies
    // before the damage for most of them (an entry every few KiB).
    for target in DAMAGED + 1..DAMAGED + 8 {
        consumer.seek(&tp, target).unwrap();
        let mut offsets = Vec::new();
        while let Ok(records) = consumer.poll(Duration::ZERO) {
            if records.is_empty() {
                break;
            }
            offsets.extend(records.iter().map(|r| r.offset));
        }
        assert_eq!(offsets, (target..400).collect::<Vec<_>>(), "after a seek to {target}");
    }
    // And the damage is still reported to a read that reaches it.
    consumer.seek(&tp, DAMAGED - 3).unwrap();
    let records = consumer.poll(Duration::ZERO).unwrap();
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![DAMAGED - 3, DAMAGED - 2, DAMAGED - 1]);
    assert!(matches!(consumer.poll(Duration::ZERO), Err(Error::Corrupt { .. })));
}

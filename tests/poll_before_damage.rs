//! A damaged batch in the middle of a partition: a consumer reading from
//! before it gets every record up to it, then the error at it, on each
//! poll, its position at the damaged record. Before, every read that
//! reached the damage failed as a whole, so the records before it never
//! came: a consumer starting before it was stuck at its position. A seek
//! past the damage goes on after it.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Error, OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

fn opts() -> BrokerOptions {
    BrokerOptions::default().maintenance_interval(None)
}

/// 400 one-record batches (100 B values naming their offset) in 16 KiB
/// segments, an index entry every 4 KiB; returns the directory and the
/// first (sealed) segment's log file, where offset `DAMAGED` lies.
fn log_of_400() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    let config = TopicConfig::with_partitions(1).segment_bytes(16 << 10).index_interval_bytes(4096);
    broker.create_topic("t", config).unwrap();
    let producer = broker.producer();
    for i in 0..400u32 {
        producer.send(ProducerRecord::new("t", format!("{i:0100}")).partition(0)).unwrap();
    }
    drop(producer);
    broker.close().unwrap();
    let logs = common::log_files(&dir.path().join("topics").join("t").join("0"));
    assert!(logs.len() >= 2, "a sealed first segment: {logs:?}");
    (dir, logs[0].clone())
}

/// Position and length of the batch with base offset `offset` in `log`.
fn batch_of(log: &Path, offset: u64) -> (u64, u32) {
    let batches = common::stored_batches(&std::fs::read(log).unwrap());
    let b = batches.iter().find(|b| b.base_offset == offset).unwrap();
    (b.pos as u64, b.len as u32)
}

fn write_at(log: &Path, at: u64, bytes: &[u8]) {
    OpenOptions::new().write(true).open(log).unwrap().write_all_at(bytes, at).unwrap();
}

/// Flips a bit in the value of offset `offset` in `log`: its batch fails
/// its checksum, its header intact.
fn damage_value(log: &Path, offset: u64) {
    let bytes = std::fs::read(log).unwrap();
    let value = format!("{offset:0100}");
    let at = bytes.windows(100).position(|w| w == value.as_bytes()).unwrap() + 50;
    write_at(log, at as u64, &[bytes[at] ^ 0x01]);
}

/// [`log_of_400`] with the value of offset `DAMAGED` damaged.
fn log_with_a_damaged_batch() -> tempfile::TempDir {
    let (dir, log) = log_of_400();
    damage_value(&log, DAMAGED);
    dir
}

fn consumer(broker: &Broker, max_poll_records: usize) -> streamlog::Consumer {
    let config = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).max_poll_records(max_poll_records);
    let mut consumer = broker.consumer(config).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    consumer
}

const DAMAGED: u64 = 40;

#[test]
fn records_before_a_damaged_batch_are_read_then_the_damage_is_reported() {
    let dir = log_with_a_damaged_batch();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut consumer = consumer(&broker, 500);
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
    let mut consumer = consumer(&broker, 500);
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

/// A damaged length in the header of a batch a read steps over: here twice
/// the batch's, so that it lands on the batch after next, a good one. The
/// read must fail, not return records from there on: the record between
/// would be lost without a word.
#[test]
fn a_damaged_length_fails_the_read_rather_than_skipping_records() {
    let (dir, log) = log_of_400();
    let (pos, len) = batch_of(&log, DAMAGED);
    write_at(&log, pos + 4, &(2 * len).to_le_bytes());
    let broker = Broker::open(dir.path(), opts()).unwrap();
    let mut consumer = consumer(&broker, 500);
    let tp = TopicPartition::new("t", 0);
    consumer.seek(&tp, DAMAGED + 1).unwrap();
    match consumer.poll(Duration::ZERO) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("{:?}", other.map(|r| r.first().map(|r| r.offset))),
    }
    // A header that leads astray stops any read walking over it: the way
    // on is a seek past the next index entry (one every 4 KiB, about 27 of
    // these batches), from where no read walks over the damage.
    consumer.seek(&tp, DAMAGED + 3).unwrap();
    assert!(matches!(consumer.poll(Duration::ZERO), Err(Error::Corrupt { .. })));
    consumer.seek(&tp, DAMAGED + 45).unwrap();
    assert_eq!(consumer.poll(Duration::ZERO).unwrap()[0].offset, DAMAGED + 45);
}

/// A damaged base offset in the first batch a read starts at (where the
/// last read ended): lowered, it would make the batch look wholly before
/// the offset asked for, and the read would step over it.
#[test]
fn a_damaged_base_offset_fails_the_read_that_starts_at_it() {
    let (dir, log) = log_of_400();
    let (pos, _) = batch_of(&log, DAMAGED);
    write_at(&log, pos + 12, &(DAMAGED - 8).to_le_bytes());
    let broker = Broker::open(dir.path(), opts()).unwrap();
    let mut consumer = consumer(&broker, 1);
    consumer.seek(&TopicPartition::new("t", 0), DAMAGED - 2).unwrap();
    let polled: Vec<u64> = (0..2).flat_map(|_| consumer.poll(Duration::ZERO).unwrap()).map(|r| r.offset).collect();
    assert_eq!(polled, vec![DAMAGED - 2, DAMAGED - 1]);
    match consumer.poll(Duration::ZERO) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("{:?}", other.map(|r| r.first().map(|r| r.offset))),
    }
}

/// Two damaged batches, a few records apart: after a seek past the first,
/// the records up to the second come, then the second's error, with where
/// to seek past it. Before, a read that stepped over the first and ended at
/// the second walked again checking every batch and failed at the first,
/// the one sought past: the consumer was stuck.
#[test]
fn after_a_seek_past_one_damaged_batch_the_next_damage_is_reported() {
    let (dir, log) = log_of_400();
    damage_value(&log, DAMAGED);
    damage_value(&log, DAMAGED + 3);
    let broker = Broker::open(dir.path(), opts()).unwrap();
    for max_poll_records in [500, 2] {
        let mut consumer = consumer(&broker, max_poll_records);
        consumer.seek(&TopicPartition::new("t", 0), DAMAGED + 1).unwrap();
        let mut offsets = Vec::new();
        let reason = loop {
            match consumer.poll(Duration::ZERO) {
                Ok(records) => offsets.extend(records.iter().map(|r| r.offset)),
                Err(Error::Corrupt { reason, .. }) => break reason,
                Err(e) => panic!("{e:?}"),
            }
        };
        assert_eq!(offsets, vec![DAMAGED + 1, DAMAGED + 2], "polls of {max_poll_records}");
        assert!(reason.contains(&format!("a seek to {} goes on", DAMAGED + 4)), "{reason}");
    }
}

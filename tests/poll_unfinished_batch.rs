//! A poll that fills up inside a batch (`max_poll_records` smaller than the
//! batch) leaves the rest of that batch for the next poll, which goes on
//! from it without reading and checking it again. Before, every poll read
//! (and CRC-checked) the batch holding its position anew.

use std::time::Duration;

use bytes::Bytes;
use streamlog::{Broker, Consumer, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};

/// A topic of one partition holding 10 batches of 100 records, valued by
/// their offsets.
fn ten_batches() -> Broker {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let producer = broker.producer();
    for b in 0..10u64 {
        let batch = (b * 100..(b + 1) * 100).map(|i| ProducerRecord::new("t", i.to_string()).partition(0)).collect();
        producer.send_batch(batch).unwrap();
    }
    broker
}

fn consumer(broker: &Broker, max: usize) -> Consumer {
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).max_poll_records(max))
        .unwrap();
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    c
}

fn offsets(c: &mut Consumer) -> Vec<u64> {
    let records = c.poll(Duration::ZERO).unwrap();
    for r in &records {
        assert_eq!(r.value, Some(Bytes::from(r.offset.to_string())));
    }
    records.iter().map(|r| r.offset).collect()
}

#[test]
fn each_batch_is_read_once_by_polls_smaller_than_it() {
    let broker = ten_batches();
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    let mut c = consumer(&broker, 30);
    let reads_before = log.stats().reads;
    let mut seen = Vec::new();
    loop {
        let got = offsets(&mut c);
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 30);
        seen.extend(got);
    }
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    // 34 polls returned records; each of the 10 batches was read once.
    assert_eq!(log.stats().reads - reads_before, 10);
}

#[test]
fn a_seek_inside_or_outside_the_kept_batch_is_obeyed() {
    let broker = ten_batches();
    let tp = TopicPartition::new("t", 0);
    let mut c = consumer(&broker, 30);
    assert_eq!(offsets(&mut c), (0..30).collect::<Vec<_>>());
    c.seek(&tp, 10).unwrap();
    assert_eq!(offsets(&mut c), (10..40).collect::<Vec<_>>());
    c.seek(&tp, 570).unwrap();
    assert_eq!(offsets(&mut c), (570..600).collect::<Vec<_>>());
    c.seek(&tp, 20).unwrap();
    assert_eq!(offsets(&mut c), (20..50).collect::<Vec<_>>());
}

#[test]
fn a_seek_back_into_the_kept_batch_before_where_its_poll_began_returns_every_record() {
    let broker = ten_batches();
    let tp = TopicPartition::new("t", 0);
    let mut c = consumer(&broker, 30);
    c.seek(&tp, 120).unwrap();
    assert_eq!(offsets(&mut c), (120..150).collect::<Vec<_>>());
    assert_eq!(offsets(&mut c), (150..180).collect::<Vec<_>>());
    c.seek(&tp, 100).unwrap();
    assert_eq!(offsets(&mut c), (100..130).collect::<Vec<_>>());
    assert_eq!(offsets(&mut c), (130..160).collect::<Vec<_>>());
    c.seek_to_beginning(&[]).unwrap();
    assert_eq!(offsets(&mut c), (0..30).collect::<Vec<_>>());
}

#[test]
fn records_deleted_after_a_poll_stopped_inside_their_batch_are_not_returned() {
    let broker = ten_batches();
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    let mut c = consumer(&broker, 30);
    assert_eq!(offsets(&mut c), (0..30).collect::<Vec<_>>());
    log.delete_records(250).unwrap();
    // Out of range now: reset to the earliest kept record, as Kafka does
    // (the poll that finds it out of range returns nothing of it).
    let got = (0..2).map(|_| offsets(&mut c)).find(|got| !got.is_empty());
    assert_eq!(got, Some((250..280).collect::<Vec<_>>()));
}

#[test]
fn poll_batches_after_a_partial_poll_starts_at_the_position() {
    let broker = ten_batches();
    let mut c = consumer(&broker, 30);
    assert_eq!(offsets(&mut c), (0..30).collect::<Vec<_>>());
    let batches = c.poll_batches(Duration::ZERO).unwrap();
    let first: Vec<u64> = batches[0].batch.records().map(|r| r.unwrap().offset).collect();
    assert_eq!(first, (30..100).collect::<Vec<_>>());
    // Whole batches: the position is past them all.
    assert_eq!(offsets(&mut c).first().copied(), batches.last().map(|b| b.batch.next_offset()));
}

#[test]
fn a_paused_partition_resumes_where_it_stopped() {
    let broker = ten_batches();
    let tp = TopicPartition::new("t", 0);
    let mut c = consumer(&broker, 30);
    assert_eq!(offsets(&mut c), (0..30).collect::<Vec<_>>());
    c.pause(std::slice::from_ref(&tp)).unwrap();
    assert!(offsets(&mut c).is_empty());
    c.resume(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(offsets(&mut c), (30..60).collect::<Vec<_>>());
}

#[test]
fn polls_smaller_than_a_batch_over_several_partitions_return_each_record_once_in_order() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("m", TopicConfig::with_partitions(3)).unwrap();
    let producer = broker.producer();
    for p in 0..3u32 {
        for b in 0..4u64 {
            let batch =
                (b * 100..(b + 1) * 100).map(|i| ProducerRecord::new("m", format!("{p}/{i}")).partition(p)).collect();
            producer.send_batch(batch).unwrap();
        }
    }
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).max_poll_records(70))
        .unwrap();
    c.assign(&(0..3).map(|p| TopicPartition::new("m", p)).collect::<Vec<_>>()).unwrap();
    let mut seen: [Vec<u64>; 3] = Default::default();
    loop {
        let records = c.poll(Duration::ZERO).unwrap();
        if records.is_empty() {
            break;
        }
        assert!(records.len() <= 70);
        for r in records {
            assert_eq!(r.value, Some(Bytes::from(format!("{}/{}", r.partition, r.offset))));
            seen[r.partition as usize].push(r.offset);
        }
    }
    for offsets in seen {
        assert_eq!(offsets, (0..400).collect::<Vec<_>>());
    }
}

//! A poll allocates what it returns and nothing per assigned partition: the
//! consumer walks its assignment in place and reuses its batch and wait
//! registration vectors. A counting global allocator counts what the
//! polling thread allocates.

use std::time::Duration;
use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};

mod common;

use common::allocs;

#[global_allocator]
static GLOBAL: common::CountingAlloc = common::CountingAlloc;

#[test]
fn a_poll_allocates_nothing_per_assigned_partition() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("wide", TopicConfig::with_partitions(64)).unwrap();
    let producer = broker.producer();
    let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    let all: Vec<TopicPartition> = (0..64).map(|p| TopicPartition::new("wide", p)).collect();
    consumer.assign(&all).unwrap();
    // Positions resolved, the batch vector grown.
    producer.send(ProducerRecord::new("wide", "warm").partition(7)).unwrap();
    assert_eq!(consumer.poll(Duration::ZERO).unwrap().len(), 1);

    for round in 0..100u32 {
        producer.send(ProducerRecord::new("wide", "v").partition(round % 64)).unwrap();
        let before = allocs();
        let records = consumer.poll(Duration::ZERO).unwrap();
        let took = allocs() - before;
        assert_eq!(records.len(), 1);
        // The returned vector and the owner of the zero-copy view of the
        // segment; the assignment's 64 partitions cost nothing.
        assert!(took <= 2, "round {round}: {took} allocations for one record from 64 partitions");
        let before = allocs();
        assert!(consumer.poll(Duration::ZERO).unwrap().is_empty());
        assert_eq!(allocs() - before, 0, "round {round}: an empty poll allocated");
    }

    // A poll that waits (spins, then parks on the 64 partitions' wait
    // lists until its timeout) allocates nothing either, once the lists
    // and the consumer's registration vector have their room.
    let wait = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).spin(Duration::from_micros(50));
    let mut waiting = broker.consumer(wait).unwrap();
    waiting.assign(&all).unwrap();
    while !waiting.poll(Duration::ZERO).unwrap().is_empty() {}
    assert!(waiting.poll(Duration::from_millis(2)).unwrap().is_empty());
    for round in 0..5 {
        let before = allocs();
        assert!(waiting.poll(Duration::from_millis(2)).unwrap().is_empty());
        assert_eq!(allocs() - before, 0, "round {round}: a waiting poll allocated");
    }
}

//! A poll starts at a different unpaused partition each time: paused
//! partitions in between do not hand the next one after them the first
//! turn more often (with two of four paused, one partition once got a
//! quarter of the turns and the other three quarters).

use std::time::Duration;

use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};

#[test]
fn paused_partitions_do_not_skew_whose_turn_it_is() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("f", TopicConfig::with_partitions(4)).unwrap();
    let producer = broker.producer();
    for i in 0..1000u32 {
        for p in [0, 3] {
            producer.send(ProducerRecord::new("f", i.to_string()).partition(p)).unwrap();
        }
    }
    let mut consumer = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).max_poll_records(10))
        .unwrap();
    let all: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("f", p)).collect();
    consumer.assign(&all).unwrap();
    consumer.pause(&all[1..3]).unwrap();
    let mut per_partition = [0usize; 4];
    for _ in 0..40 {
        for r in consumer.poll(Duration::ZERO).unwrap() {
            per_partition[r.partition as usize] += 1;
        }
    }
    assert_eq!(per_partition, [200, 0, 0, 200]);
}

//! Each clone of a batching producer reserves room for records in chunks;
//! a send that finds the bound reached takes back what idle clones
//! reserved and have not used. With 100 clones holding one record each,
//! the 98th send once failed with `QueueFull` at 98 records of 100,000.

use std::time::Duration;

use streamlog::{BatchingConfig, Broker, ProducerRecord, TopicConfig};

#[test]
fn many_clones_do_not_fill_the_buffer_with_unused_room() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let producer = broker.batching_producer(BatchingConfig::default().linger(Duration::from_secs(60))).unwrap();
    let clones: Vec<_> = (0..200).map(|_| producer.clone()).collect();
    let deliveries: Vec<_> = clones
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.try_send(ProducerRecord::new("t", "x"))
                .unwrap_or_else(|e| panic!("clone {i}: {e} with {} records in flight", producer.in_flight()))
        })
        .collect();
    assert_eq!(producer.in_flight(), 200);
    producer.flush();
    let mut offsets: Vec<u64> = deliveries.into_iter().map(|d| d.wait().unwrap().offset).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..200).collect::<Vec<u64>>());
}

//! Records that each fit a segment may together make a batch larger than
//! one append takes (the topic's segment size): the batching producer then
//! appends the batch in parts, and each record lands, or fails, on its
//! own. All of them used to fail together with `RecordTooLarge`.

use std::time::Duration;

use streamlog::{BatchingConfig, Broker, Error, ProducerRecord, TopicConfig};

#[test]
fn a_batch_larger_than_a_segment_is_appended_in_parts() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("small", TopicConfig::with_partitions(1).segment_bytes(64 << 10)).unwrap();
    let producer = broker.batching_producer(BatchingConfig::default().linger(Duration::from_secs(60))).unwrap();
    let mut deliveries: Vec<_> = (0..1000u32)
        .map(|i| producer.send(ProducerRecord::new("small", i.to_be_bytes().repeat(25))).unwrap())
        .collect();
    // One record too large for any segment, amid the others.
    deliveries.insert(500, producer.send(ProducerRecord::new("small", vec![0u8; 70 << 10])).unwrap());
    producer.flush();
    let outcomes: Vec<_> = deliveries.into_iter().map(|d| d.wait()).collect();
    match &outcomes[500] {
        Err(Error::BatchFailed(e)) => assert!(matches!(**e, Error::RecordTooLarge { .. }), "{e:?}"),
        other => panic!("the oversized record: {other:?}"),
    }
    let offsets: Vec<u64> =
        outcomes.iter().enumerate().filter(|(i, _)| *i != 500).map(|(_, r)| r.as_ref().unwrap().offset).collect();
    assert_eq!(offsets, (0..1000).collect::<Vec<u64>>(), "in send order, each once");

    // What each offset holds is the record sent for it.
    let log = broker.topic("small").unwrap().partition(0).unwrap();
    let mut next = 0u32;
    let mut at = 0;
    while at < log.high_watermark() {
        for batch in log.read(at, 1 << 20).unwrap() {
            for r in batch.records() {
                assert_eq!(r.unwrap().value.unwrap(), next.to_be_bytes().repeat(25));
                next += 1;
            }
            at = batch.next_offset();
        }
    }
    assert_eq!(next, 1000);
}

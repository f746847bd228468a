//! `Consumer::poll_batches`: whole batches from the position on, the
//! position moved past them, and the same records as `poll`.

use std::time::Duration;

use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};

fn values(polled: &[streamlog::ConsumerBatch]) -> Vec<Vec<u8>> {
    polled
        .iter()
        .flat_map(|p| p.batch.record_views().map(|r| r.unwrap().value().unwrap().to_vec()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn poll_batches_returns_what_poll_returns_by_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let producer = broker.producer();
    // Four batches of five records: values 0..20.
    for b in 0..4u8 {
        let batch = (0..5u8).map(|i| ProducerRecord::new("t", vec![b * 5 + i]).partition(0)).collect();
        producer.send_batch(batch).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let config = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).max_poll_records(7);
    let mut consumer = broker.consumer(config).unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();

    // From inside the first batch: its records before the position are skipped.
    consumer.seek(&tp, 3).unwrap();
    let polled = consumer.poll_batches(Duration::ZERO).unwrap();
    // 2 records of the first batch, then 5 of the second reach the limit of 7.
    assert_eq!(polled.len(), 2);
    assert!(polled.iter().all(|p| &*p.topic == "t" && p.partition == 0));
    assert_eq!(values(&polled), (3..10u8).map(|v| vec![v]).collect::<Vec<_>>());
    assert_eq!(consumer.position(&tp).unwrap(), 10);

    let polled = consumer.poll_batches(Duration::ZERO).unwrap();
    assert_eq!(values(&polled), (10..20u8).map(|v| vec![v]).collect::<Vec<_>>());
    assert_eq!(consumer.position(&tp).unwrap(), 20);
    assert!(consumer.poll_batches(Duration::ZERO).unwrap().is_empty());

    // `poll` sees the same records, record by record.
    consumer.seek(&tp, 3).unwrap();
    let mut seen = Vec::new();
    loop {
        let records = consumer.poll(Duration::ZERO).unwrap();
        if records.is_empty() {
            break;
        }
        seen.extend(records.iter().map(|r| r.value.as_ref().unwrap().to_vec()));
    }
    assert_eq!(seen, (3..20u8).map(|v| vec![v]).collect::<Vec<_>>());

    // A waiting `poll_batches` is woken by the append.
    let waiter = std::thread::spawn(move || {
        let polled = consumer.poll_batches(Duration::from_secs(10)).unwrap();
        values(&polled)
    });
    std::thread::sleep(Duration::from_millis(50));
    producer.send(ProducerRecord::new("t", vec![42u8]).partition(0)).unwrap();
    assert_eq!(waiter.join().unwrap(), vec![vec![42u8]]);
}

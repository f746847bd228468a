//! The small parts of the client API: builder names on both record types,
//! `position`/`lag` through `&self`, `subscription()`, the fetch size.

use std::time::Duration;

use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, Record, TopicConfig, TopicPartition};

#[test]
fn both_record_types_take_both_builder_names() {
    let a = Record::new("v").key("k").timestamp(5).header("h", None);
    let b = Record::new("v").with_key("k").with_timestamp(5).with_header("h", None);
    assert_eq!(a, b);
    let a = ProducerRecord::new("t", "v").key("k").partition(1).timestamp(5).header("h", None);
    let b = ProducerRecord::new("t", "v").with_key("k").with_partition(1).with_timestamp(5).with_header("h", None);
    assert_eq!(a, b);
}

#[test]
fn position_and_lag_need_no_mut_and_subscription_is_visible() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("a", TopicConfig::with_partitions(1)).unwrap();
    broker.create_topic("b", TopicConfig::with_partitions(1)).unwrap();
    let producer = broker.producer();
    for i in 0..10 {
        producer.send(ProducerRecord::new("a", format!("v{i}"))).unwrap();
    }
    let config = ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest).fetch_max_bytes(1);
    assert_eq!(config.fetch_max_bytes, 1);
    let mut consumer = broker.consumer(config).unwrap();
    assert!(consumer.subscription().is_empty());
    consumer.subscribe(&["b", "a"]).unwrap();
    assert_eq!(consumer.subscription(), vec!["a".to_owned(), "b".to_owned()]);
    let mut got = Vec::new();
    while got.is_empty() {
        got = consumer.poll(Duration::from_millis(100)).unwrap();
    }
    // One batch per fetch with a 1-byte limit: one record here.
    assert_eq!(got.len(), 1);
    let tp = TopicPartition::new("a", 0);
    let view: &streamlog::Consumer = &consumer;
    assert_eq!(view.position(&tp).unwrap(), 1);
    assert_eq!(view.lag(&tp).unwrap(), 9);
    consumer.unsubscribe().unwrap();
    assert!(consumer.subscription().is_empty());
    consumer.subscribe_pattern(|t| t.starts_with('a')).unwrap();
    assert_eq!(consumer.subscription(), vec!["a".to_owned()]);
}

#[test]
fn position_before_the_first_poll_is_where_it_would_start() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    for _ in 0..3 {
        broker.producer().send(ProducerRecord::new("t", "v")).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let mut latest = broker.consumer(ConsumerConfig::default()).unwrap();
    latest.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!((latest.position(&tp).unwrap(), latest.lag(&tp).unwrap()), (3, 0));
    let mut earliest = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    earliest.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!((earliest.position(&tp).unwrap(), earliest.lag(&tp).unwrap()), (0, 3));
}

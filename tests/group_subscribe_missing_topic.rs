//! Subscribing to a topic that does not exist yet succeeds, as in Kafka;
//! its partitions are assigned once it is created.

use std::time::Duration;

use streamlog::{Broker, BrokerOptions, ConsumerConfig, Error, OffsetReset, ProducerRecord, TopicConfig};

#[test]
fn a_topic_created_after_the_subscription_is_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let cfg = || ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest);
    let mut one = b.consumer(cfg()).unwrap();
    one.subscribe(&["orders"]).unwrap();
    let mut two = b.consumer(cfg()).unwrap();
    two.subscribe(&["orders"]).unwrap();
    for c in [&mut one, &mut two] {
        assert!(c.poll(Duration::ZERO).unwrap().is_empty(), "a missing topic is not an error");
    }
    b.create_topic("orders", TopicConfig::with_partitions(4)).unwrap();
    let p = b.producer();
    for i in 0..4 {
        p.send(ProducerRecord::new("orders", format!("r{i}")).partition(i)).unwrap();
    }
    let mut got = 0;
    for _ in 0..4 {
        for c in [&mut one, &mut two] {
            got += c.poll(Duration::ZERO).unwrap().len();
        }
    }
    assert_eq!(got, 4);
    assert_eq!((one.assignment().len(), two.assignment().len()), (2, 2));
    // Deleting it later is still reported (once).
    b.delete_topic("orders").unwrap();
    assert!(matches!(one.poll(Duration::ZERO), Err(Error::UnknownTopic { .. })));
    assert!(one.poll(Duration::ZERO).is_ok());
}

#[test]
fn an_invalid_topic_name_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let mut c = b.consumer(ConsumerConfig::with_group("g")).unwrap();
    assert!(matches!(c.subscribe(&["no spaces"]), Err(Error::InvalidTopicName { .. })));
}

//! A record with a timestamp the partition refuses fails on its own in a
//! batching producer, as with `Producer::send`: it failed every record
//! batched with it (the batch's one append failed with
//! `InvalidTimestamp`). A timestamp no partition accepts (negative but -1,
//! past `MAX_TIMESTAMP`) fails the send itself; one outside the topic's
//! timestamp window fails only its own delivery.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::within;
use streamlog::{
    BatchingConfig, Broker, BrokerOptions, Error, MAX_TIMESTAMP, ManualClock, ProducerRecord, TopicConfig,
};

const NOW: i64 = 1_800_000_000_000;

#[test]
fn a_timestamp_no_partition_accepts_fails_the_send() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let config = BatchingConfig::default().linger(Duration::from_secs(600));
    let producer = broker.batching_producer(config).unwrap();
    let before = producer.send(ProducerRecord::new("t", "a")).unwrap();
    for bad in [-2, i64::MIN, MAX_TIMESTAMP + 1, i64::MAX] {
        let sent = producer.send(ProducerRecord::new("t", "bad").timestamp(bad));
        assert!(matches!(sent, Err(Error::InvalidTimestamp { timestamp, .. }) if timestamp == bad), "send {bad}");
        let tried = producer.try_send(ProducerRecord::new("t", "bad").timestamp(bad));
        assert!(matches!(tried, Err(Error::InvalidTimestamp { timestamp, .. }) if timestamp == bad), "try_send {bad}");
    }
    // -1 is Kafka's "no timestamp": the log stamps it.
    let unstamped = producer.send(ProducerRecord::new("t", "b").timestamp(-1)).unwrap();
    let last = producer.send(ProducerRecord::new("t", "c").timestamp(MAX_TIMESTAMP)).unwrap();
    let offsets = within(Duration::from_secs(10), move || {
        producer.flush();
        [before, unstamped, last].map(|d| d.wait().map(|m| m.offset).map_err(|e| e.to_string()))
    });
    assert_eq!(offsets, [Ok(0), Ok(1), Ok(2)]);
}

#[test]
fn a_timestamp_outside_the_topics_window_fails_only_its_own_delivery() {
    let clock = Arc::new(ManualClock::new(NOW));
    let opts = BrokerOptions::default().fsync(false).clock(clock).maintenance_interval(None);
    let broker = Broker::temporary_with(opts).unwrap();
    let window = TopicConfig::with_partitions(1).timestamp_before_max(Some(Duration::from_secs(3600)));
    broker.create_topic("t", window).unwrap();
    let config = BatchingConfig::default().linger(Duration::from_secs(600));
    let producer = broker.batching_producer(config).unwrap();
    let day_ago = NOW - 24 * 3600 * 1000;
    let sent: Vec<_> = [NOW, NOW + 1, day_ago, NOW + 2, day_ago, NOW + 3]
        .into_iter()
        .map(|ts| producer.send(ProducerRecord::new("t", "v").timestamp(ts)).unwrap())
        .collect();
    let outcomes = within(Duration::from_secs(10), move || {
        producer.flush();
        sent.into_iter()
            .map(|d| match d.wait() {
                Ok(m) => Ok(m.offset),
                Err(Error::BatchFailed(e)) if matches!(*e, Error::InvalidTimestamp { .. }) => Err("InvalidTimestamp"),
                Err(e) => panic!("unexpected {e}"),
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(outcomes, [Ok(0), Ok(1), Err("InvalidTimestamp"), Ok(2), Err("InvalidTimestamp"), Ok(3)]);
}

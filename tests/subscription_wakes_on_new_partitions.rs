//! A consumer waiting in `poll` or `recv().await` is woken when a topic it
//! subscribes to is created or gains partitions, and returns the records
//! sent there, rather than sleeping until its timeout or its next group
//! deadline (half `max_poll_interval`: 150 s by default).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use streamlog::{Broker, BrokerOptions, Consumer, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

/// How long a woken consumer may take; the polls below wait 30 s.
const WOKEN_WITHIN: Duration = Duration::from_secs(5);

fn group_consumer(b: &Broker) -> Consumer {
    b.consumer(ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest)).unwrap()
}

/// Polls `consumer` on another thread; returns the records' values and how
/// long the poll took, once `act` has run.
fn poll_across(mut consumer: Consumer, act: impl FnOnce()) -> (Vec<Vec<u8>>, Duration) {
    let (tx, rx) = mpsc::channel();
    let poller = thread::spawn(move || {
        let start = Instant::now();
        let records = consumer.poll(Duration::from_secs(30)).unwrap();
        tx.send(()).unwrap();
        (records.into_iter().map(|r| r.value.unwrap().to_vec()).collect::<Vec<_>>(), start.elapsed())
    });
    // Let the poll start waiting.
    thread::sleep(Duration::from_millis(200));
    act();
    let _ = rx.recv_timeout(WOKEN_WITHIN);
    let (values, took) = poller.join().unwrap();
    (values, took)
}

#[test]
fn a_waiting_subscriber_is_woken_by_the_topic_it_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let mut c = group_consumer(&b);
    c.subscribe(&["later"]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    let (values, took) = poll_across(c, || {
        b.create_topic("later", TopicConfig::with_partitions(1)).unwrap();
        b.producer().send(ProducerRecord::new("later", "first")).unwrap();
    });
    assert_eq!(values, [b"first".to_vec()]);
    assert!(took < WOKEN_WITHIN, "woken after {took:?}");
}

#[test]
fn a_waiting_pattern_subscriber_is_woken_by_a_matching_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let mut c = group_consumer(&b);
    c.subscribe_pattern(|t| t.starts_with("logs.")).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    let (values, took) = poll_across(c, || {
        b.create_topic("logs.web", TopicConfig::with_partitions(1)).unwrap();
        b.producer().send(ProducerRecord::new("logs.web", "line")).unwrap();
    });
    assert_eq!(values, [b"line".to_vec()]);
    assert!(took < WOKEN_WITHIN, "woken after {took:?}");
}

#[test]
fn a_waiting_subscriber_is_woken_by_a_new_partition() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let mut c = group_consumer(&b);
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    let (values, took) = poll_across(c, || {
        b.add_partitions("t", 2).unwrap();
        b.producer().send(ProducerRecord::new("t", "in p1").partition(1)).unwrap();
    });
    assert_eq!(values, [b"in p1".to_vec()]);
    assert!(took < WOKEN_WITHIN, "woken after {took:?}");
}

#[test]
fn a_waiting_async_subscriber_is_woken_by_the_topic_it_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let mut c = group_consumer(&b);
    c.subscribe(&["later"]).unwrap();
    let (tx, rx) = mpsc::channel();
    let poller = thread::spawn(move || {
        let start = Instant::now();
        let records = futures_executor::block_on(c.recv()).unwrap();
        tx.send(()).unwrap();
        (records.len(), start.elapsed())
    });
    thread::sleep(Duration::from_millis(200));
    b.create_topic("later", TopicConfig::with_partitions(1)).unwrap();
    b.producer().send(ProducerRecord::new("later", "first")).unwrap();
    if rx.recv_timeout(WOKEN_WITHIN).is_err() {
        // Not woken: close the broker so that the wait ends and the test
        // fails instead of hanging.
        b.close().unwrap();
        panic!("recv().await not woken within {WOKEN_WITHIN:?}");
    }
    let (n, took) = poller.join().unwrap();
    assert_eq!(n, 1);
    assert!(took < WOKEN_WITHIN, "woken after {took:?}");
}

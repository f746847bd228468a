//! Nothing blocks past its cause: a `poll(Duration::MAX)` returns within
//! milliseconds when the broker closes, when the topic it reads is deleted,
//! or when another thread calls `wakeup`.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamlog::{
    Broker, BrokerOptions, Consumer, ConsumerConfig, Error, OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

/// How long a woken poll may take to return (generous for a loaded machine;
/// without the wake-up it never returns).
const PROMPT: Duration = Duration::from_millis(100);

fn broker() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    b.create_topic("other", TopicConfig::with_partitions(1)).unwrap();
    (dir, b)
}

fn assigned(b: &Broker, topics: &[(&str, u32)]) -> Consumer {
    let mut c = b.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Latest)).unwrap();
    let tps: Vec<TopicPartition> = topics.iter().map(|(t, p)| TopicPartition::new(*t, *p)).collect();
    c.assign(&tps).unwrap();
    c
}

/// Polls forever on another thread; returns the thread, which yields the
/// consumer, the poll's result and how long the poll took after `armed`.
fn poll_forever(mut c: Consumer) -> JoinHandle<(Consumer, Result<usize, Error>, Instant)> {
    std::thread::spawn(move || {
        let r = c.poll(Duration::MAX).map(|v| v.len());
        (c, r, Instant::now())
    })
}

/// Lets the poller park (past its spin), then runs `cause` and returns
/// when the poll ended, with how long it took after the cause.
fn wake_with(c: Consumer, cause: impl FnOnce()) -> (Consumer, Result<usize, Error>, Duration) {
    let t = poll_forever(c);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "the poll returned before its cause");
    let at = Instant::now();
    cause();
    let deadline = at + Duration::from_secs(10);
    while !t.is_finished() {
        assert!(Instant::now() < deadline, "poll(Duration::MAX) did not return");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (c, r, done) = t.join().unwrap();
    let took = done.duration_since(at);
    eprintln!("poll returned {took:?} after its cause");
    (c, r, took)
}

#[test]
fn closing_the_broker_ends_a_blocked_poll_with_closed() {
    let (_dir, b) = broker();
    let c = assigned(&b, &[("t", 0), ("t", 1)]);
    let (_c, r, took) = wake_with(c, move || b.close().unwrap());
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
}

#[test]
fn closing_the_broker_ends_a_poll_with_nothing_assigned() {
    let (_dir, b) = broker();
    let c = b.consumer(ConsumerConfig::default()).unwrap();
    let (_c, r, took) = wake_with(c, move || drop(b));
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
}

#[test]
fn closing_the_broker_ends_a_group_member_poll() {
    let (_dir, b) = broker();
    let mut c = b.consumer(ConsumerConfig::with_group("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    let (_c, r, took) = wake_with(c, move || b.close().unwrap());
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
}

#[test]
fn deleting_an_assigned_topic_ends_a_blocked_poll_and_the_rest_still_reads() {
    let (_dir, b) = broker();
    let b = Arc::new(b);
    let c = assigned(&b, &[("t", 0), ("other", 0)]);
    let b2 = Arc::clone(&b);
    let (mut c, r, took) = wake_with(c, move || b2.delete_topic("t").unwrap());
    assert!(matches!(&r, Err(Error::UnknownTopic { topic }) if topic == "t"), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
    // Usable after: the deleted topic is gone from the assignment, the other
    // partition still delivers.
    assert_eq!(c.assignment(), vec![TopicPartition::new("other", 0)]);
    b.producer().send(ProducerRecord::new("other", "v").partition(0)).unwrap();
    assert_eq!(c.poll(Duration::from_secs(5)).unwrap().len(), 1);
}

#[test]
fn deleting_a_subscribed_topic_ends_a_blocked_poll() {
    let (_dir, b) = broker();
    let b = Arc::new(b);
    let mut c = b.consumer(ConsumerConfig::with_group("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
    let b2 = Arc::clone(&b);
    let (mut c, r, took) = wake_with(c, move || b2.delete_topic("t").unwrap());
    assert!(matches!(&r, Err(Error::UnknownTopic { topic }) if topic == "t"), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
    // Reported once; the consumer goes on (the topic may come back).
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
}

#[test]
fn deleting_a_topic_wakes_a_poll_whose_partitions_are_all_paused() {
    // Paused partitions are not waited on: only the broker-wide wake-up
    // reaches this poll.
    let (_dir, b) = broker();
    let b = Arc::new(b);
    let mut c = assigned(&b, &[("t", 0), ("t", 1)]);
    c.pause(&c.assignment()).unwrap();
    let b2 = Arc::clone(&b);
    let (c, r, took) = wake_with(c, move || b2.delete_topic("t").unwrap());
    assert!(matches!(&r, Err(Error::UnknownTopic { topic }) if topic == "t"), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
    assert!(c.assignment().is_empty());
}

#[test]
fn a_subscribed_topic_deleted_before_any_assignment_is_reported() {
    let (_dir, b) = broker();
    let mut c = b.consumer(ConsumerConfig::with_group("g")).unwrap();
    c.subscribe(&["t", "other"]).unwrap();
    b.delete_topic("t").unwrap();
    let start = Instant::now();
    let r = c.poll(Duration::from_secs(10));
    assert!(matches!(&r, Err(Error::UnknownTopic { topic }) if topic == "t"), "{r:?}");
    assert!(start.elapsed() < PROMPT);
    assert!(c.poll(Duration::from_millis(10)).is_ok());
}

#[test]
fn wakeup_ends_a_blocked_poll_and_the_consumer_goes_on() {
    let (_dir, b) = broker();
    let c = assigned(&b, &[("t", 0)]);
    let handle = c.wakeup_handle();
    let (mut c, r, took) = wake_with(c, move || handle.wakeup());
    assert!(matches!(r, Err(Error::Wakeup)), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
    // Once only: the next poll waits for records as usual.
    b.producer().send(ProducerRecord::new("t", "v").partition(0)).unwrap();
    assert_eq!(c.poll(Duration::from_secs(5)).unwrap().len(), 1);
}

#[test]
fn wakeup_reaches_a_group_member_waiting_for_its_assignment() {
    let (_dir, b) = broker();
    let mut c = b.consumer(ConsumerConfig::with_group("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    let handle = c.wakeup_handle();
    let (_c, r, took) = wake_with(c, move || handle.wakeup());
    assert!(matches!(r, Err(Error::Wakeup)), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
}

#[test]
fn the_wakeup_handle_goes_to_any_thread() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<streamlog::WakeupHandle>();
}

#[test]
fn a_wakeup_before_poll_fails_the_next_poll_once() {
    let (_dir, b) = broker();
    let mut c = assigned(&b, &[("t", 0)]);
    c.wakeup();
    c.wakeup();
    assert!(matches!(c.poll(Duration::from_secs(5)), Err(Error::Wakeup)));
    let start = Instant::now();
    assert!(c.poll(Duration::from_millis(20)).unwrap().is_empty());
    assert!(start.elapsed() >= Duration::from_millis(20), "the second poll waited its timeout");
}

#[test]
fn wakeup_follows_a_consumer_moved_to_another_thread() {
    let (_dir, b) = broker();
    let mut c = assigned(&b, &[("t", 0)]);
    let handle = c.wakeup_handle();
    // Polled here first, then on another thread: the handle still reaches it.
    assert!(c.poll(Duration::from_millis(1)).unwrap().is_empty());
    let (_c, r, took) = wake_with(c, move || handle.wakeup());
    assert!(matches!(r, Err(Error::Wakeup)), "{r:?}");
    assert!(took < PROMPT, "took {took:?}");
}

//! Fetch over the wire: `max_wait_ms` bounds a long poll, `min_bytes` holds
//! the answer until enough data is there (0: none), an append wakes the
//! poll, and a partition error answers at once.

mod common;

use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streamlog::{ProducerRecord, TopicConfig};

use common::*;

fn fetch_request(offset: i64, min_bytes: i32, max_wait_ms: i32) -> FetchRequest {
    let mut p = fetch_request::FetchPartition::default();
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = fetch_request::FetchTopic::default();
    t.topic = TopicName(StrBytes::from_static_str("w"));
    t.partitions = vec![p];
    let mut r = FetchRequest::default();
    r.replica_id = BrokerId(-1);
    r.max_bytes = 50 << 20;
    r.min_bytes = min_bytes;
    r.max_wait_ms = max_wait_ms;
    r.topics = vec![t];
    r
}

fn record_bytes(r: &FetchResponse) -> usize {
    r.responses[0].partitions[0].records.as_ref().map_or(0, |b| b.len())
}

#[test]
fn an_empty_partition_answers_after_max_wait_with_no_records() {
    let env = start();
    env.broker.create_topic("w", TopicConfig::with_partitions(1)).unwrap();
    let mut c = Client::connect(env.addr());
    let t = Instant::now();
    let r: FetchResponse = c.request(ApiKey::Fetch, 11, &fetch_request(0, 1, 300));
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(record_bytes(&r), 0);
}

#[test]
fn an_append_wakes_a_long_poll_before_max_wait() {
    let env = start();
    env.broker.create_topic("w", TopicConfig::with_partitions(1)).unwrap();
    let producer = env.broker.producer();
    let appender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        producer.send(ProducerRecord::new("w", &b"hello"[..]).partition(0)).unwrap();
    });
    let mut c = Client::connect(env.addr());
    let t = Instant::now();
    let r: FetchResponse = c.request(ApiKey::Fetch, 11, &fetch_request(0, 1, 8000));
    let waited = t.elapsed();
    appender.join().unwrap();
    assert!(record_bytes(&r) > 0);
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(4), "{waited:?}");
}

#[test]
fn min_bytes_holds_the_answer_until_enough_data_or_max_wait() {
    let env = start();
    env.broker.create_topic("w", TopicConfig::with_partitions(1)).unwrap();
    let producer = env.broker.producer();
    producer.send(ProducerRecord::new("w", vec![b'a'; 100]).partition(0)).unwrap();
    let mut c = Client::connect(env.addr());
    // min_bytes=1 with data there: at once.
    let t = Instant::now();
    let r: FetchResponse = c.request(ApiKey::Fetch, 11, &fetch_request(0, 1, 5000));
    assert!(record_bytes(&r) > 0);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // min_bytes far above what is there: held until max_wait, then answered
    // with what there is.
    let t = Instant::now();
    let r: FetchResponse = c.request(ApiKey::Fetch, 11, &fetch_request(0, 1 << 20, 400));
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(390) && waited < Duration::from_secs(3), "{waited:?}");
    let small = record_bytes(&r);
    assert!(small > 0);
    // min_bytes reached by appends during the wait: answered before max_wait.
    let appender = std::thread::spawn(move || {
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(20));
            producer.send(ProducerRecord::new("w", vec![b'b'; 100]).partition(0)).unwrap();
        }
    });
    let t = Instant::now();
    let r: FetchResponse = c.request(ApiKey::Fetch, 11, &fetch_request(0, 1000, 8000));
    let waited = t.elapsed();
    appender.join().unwrap();
    assert!(record_bytes(&r) >= 1000, "{}", record_bytes(&r));
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

#[test]
fn min_bytes_zero_or_a_partition_error_answers_at_once() {
    let env = start();
    env.broker.create_topic("w", TopicConfig::with_partitions(1)).unwrap();
    let mut c = Client::connect(env.addr());
    let t = Instant::now();
    let r: FetchResponse = c.request(ApiKey::Fetch, 11, &fetch_request(0, 0, 5000));
    assert!(t.elapsed() < Duration::from_secs(2), "min_bytes 0 waited {:?}", t.elapsed());
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    // An offset past the end beside an empty partition: the error comes at
    // once, not after max_wait.
    let mut req = fetch_request(0, 1, 5000);
    let mut bad = req.topics[0].partitions[0].clone();
    bad.fetch_offset = 99;
    req.topics[0].partitions.push(bad);
    let t = Instant::now();
    let r: FetchResponse = c.request(ApiKey::Fetch, 11, &req);
    assert!(t.elapsed() < Duration::from_secs(2), "an error waited {:?}", t.elapsed());
    assert_eq!(r.responses[0].partitions[1].error_code, 1, "OFFSET_OUT_OF_RANGE");
}

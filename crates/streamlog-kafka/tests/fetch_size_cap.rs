//! A Fetch response is bounded by the server's `max_fetch_bytes` whatever
//! the client asks: a `max_bytes` of 0 or below, or `i32::MAX`, and
//! one partition listed many times with the largest `partition_max_bytes`
//! once made a response of the whole partition times the listings.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streamlog::{Broker, BrokerOptions, Record, TopicConfig};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

#[test]
fn a_fetch_response_holds_at_most_max_fetch_bytes_and_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    // 4 MiB in batches of 64 × 1 KiB.
    let value = Bytes::from(vec![7u8; 1024]);
    for _ in 0..64 {
        log.append(&vec![Record::new(value.clone()); 64]).unwrap();
    }
    let cap = 1 << 20;
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig { max_fetch_bytes: cap, ..ServerConfig::default() });
    let mut p = fetch_request::FetchPartition::default();
    p.partition_max_bytes = i32::MAX;
    let mut t = fetch_request::FetchTopic::default();
    t.topic = TopicName(StrBytes::from_static_str("t"));
    t.partitions = vec![p; 10];
    for (version, max_bytes) in [(4, 0), (4, i32::MAX), (12, -1)] {
        let mut req = FetchRequest::default();
        req.max_wait_ms = 0;
        req.min_bytes = 1;
        req.max_bytes = max_bytes;
        req.topics = vec![t.clone()];
        let resp: FetchResponse = common::call(&mut d, ApiKey::Fetch, version, &req);
        let total: usize = resp.responses[0].partitions.iter().map(|p| p.records.as_ref().map_or(0, |r| r.len())).sum();
        assert!(total > 0, "v{version}: records");
        assert!(total <= cap + 70_000, "v{version} max_bytes {max_bytes}: {total} bytes");
    }
}

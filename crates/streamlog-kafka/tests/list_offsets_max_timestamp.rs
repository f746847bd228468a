//! ListOffsets with timestamp -3 (MAX_TIMESTAMP, KIP-734, advertised from
//! v7) answers the first record with the largest timestamp and that
//! timestamp, across segments; an empty partition answers offset -1. It
//! answered the last record, with timestamp -1.

mod common;

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streamlog::{Broker, BrokerOptions, Record, TopicConfig};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

fn max_timestamp(d: &mut Dispatcher, partition: i32) -> (i64, i64) {
    let mut p = list_offsets_request::ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = -3;
    let mut t = list_offsets_request::ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_static_str("t"));
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.topics = vec![t];
    let resp: ListOffsetsResponse = common::call(d, ApiKey::ListOffsets, 7, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (p.offset, p.timestamp)
}

#[test]
fn max_timestamp_answers_the_first_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    // Small segments: the largest timestamp is in the first of several.
    broker.create_topic("t", TopicConfig::with_partitions(2).segment_bytes(4096)).unwrap();
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    let value = vec![0u8; 1000];
    for ts in [10, 90, 30, 90, 20, 40, 50, 60, 70] {
        log.append(&[Record::new(value.clone()).with_timestamp(ts)]).unwrap();
    }
    assert!(log.segment_count() > 2);
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig::default());
    assert_eq!(max_timestamp(&mut d, 0), (1, 90));
    assert_eq!(max_timestamp(&mut d, 1), (-1, -1), "empty");
}

//! What a produced batch must be, checked as Kafka checks it
//! (CORRUPT_MESSAGE, nothing appended): at least one record, a record
//! count that matches the offset range, offset deltas counting up from 0, records that fill their
//! lengths exactly and the batch exactly; a request of several batches is
//! checked whole before any is appended. And what it keeps: repeated
//! header names (Kafka allows them), in order, in the log and in a Fetch.

mod common;

use std::sync::Arc;

use streamlog::{Broker, BrokerOptions, Header, TopicConfig};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

use common::*;

const CORRUPT_MESSAGE: i16 = 2;

#[test]
fn malformed_batches_are_refused_and_repeated_header_names_kept() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig::default());
    let two = [raw_record(0, None, Some(b"a"), &[]), raw_record(1, None, Some(b"b"), &[])].concat();

    // No records (here with bytes after the header all the same).
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&[1, 2, 3], 0, 0, -1)), CORRUPT_MESSAGE);
    // A count that does not match the last offset delta.
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&two, 0, 2, 5)), CORRUPT_MESSAGE);
    // More records claimed than there are.
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&two, 0, 3, 2)), CORRUPT_MESSAGE);
    // Bytes after the last record.
    let trailing = [&two[..], &[0u8; 3]].concat();
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&trailing, 0, 2, 1)), CORRUPT_MESSAGE);
    // Offset deltas that do not count up.
    let skipping = [raw_record(0, None, Some(b"a"), &[]), raw_record(2, None, Some(b"b"), &[])].concat();
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&skipping, 0, 2, 1)), CORRUPT_MESSAGE);
    // A record length longer than its fields.
    let mut long = raw_record(0, None, Some(b"a"), &[]);
    long[0] += 2; // zigzag: one more byte
    long.push(0);
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&long, 0, 1, 0)), CORRUPT_MESSAGE);
    // A good batch, then one that does not decode, in one request: neither
    // is appended (a client retrying would write the first twice).
    let request = [raw_batch(&two, 0, 2, 1), raw_batch(&trailing, 0, 2, 1)].concat();
    assert_eq!(produce_raw(&mut d, "t", request.into()), CORRUPT_MESSAGE);
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(log.high_watermark(), 0, "nothing appended");

    let headers: &[(&str, &[u8])] = &[("h", b"1"), ("h", b"2"), ("other", b"3")];
    let rec = raw_record(0, Some(b"k"), Some(b"v"), headers);
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&rec, 0, 1, 0)), 0);
    let got = log.read(0, 1 << 20).unwrap()[0].records().next().unwrap().unwrap();
    let want: Vec<Header> = headers
        .iter()
        .map(|(k, v)| Header { key: k.to_string(), value: Some(bytes::Bytes::copy_from_slice(v)) })
        .collect();
    assert_eq!(got.headers, want);
    assert_eq!(got.key.as_deref(), Some(&b"k"[..]));

    let mut p = kafka_protocol::messages::fetch_request::FetchPartition::default();
    p.partition_max_bytes = 1 << 20;
    let mut t = kafka_protocol::messages::fetch_request::FetchTopic::default();
    t.topic = kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_static_str("t"));
    t.partitions = vec![p];
    let mut req = kafka_protocol::messages::FetchRequest::default();
    req.max_bytes = 1 << 20;
    req.topics = vec![t];
    let resp: kafka_protocol::messages::FetchResponse = call(&mut d, kafka_protocol::messages::ApiKey::Fetch, 4, &req);
    let fetched = resp.responses[0].partitions[0].records.clone().unwrap();
    // Both `h` headers and `other`, in order, as produced.
    let mut wire = Vec::new();
    for (name, value) in headers {
        wire.extend_from_slice(&[name.len() as u8 * 2]);
        wire.extend_from_slice(name.as_bytes());
        wire.extend_from_slice(&[value.len() as u8 * 2]);
        wire.extend_from_slice(value);
    }
    assert!(fetched.windows(wire.len()).any(|w| w == wire), "headers as produced in {fetched:x?}");
    let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut fetched.clone()).unwrap();
    assert_eq!(decoded.records[0].value.as_deref(), Some(&b"v"[..]));
}

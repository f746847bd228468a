//! A Kafka client reading a compacted partition from start to end gets
//! every record compaction kept. Compaction keeps a cleaned segment's offset
//! range in its last batch after removing the records at its end; a Fetch
//! at an offset in that removed tail read just that batch, which holds no
//! record from there on, and answered nothing below the end: the client
//! fetched the same offset for ever.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use streamlog::{Broker, BrokerOptions, CleanupPolicy, CompactionOptions, Record, TopicConfig};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

/// The records (offset, value) a Fetch at `offset` returns from `offset` on.
fn fetch(d: &mut Dispatcher, offset: i64) -> Vec<(i64, Vec<u8>)> {
    let mut p = fetch_request::FetchPartition::default();
    p.fetch_offset = offset;
    // One batch a fetch (a response holds at least one): the client steps
    // through the log batch by batch.
    p.partition_max_bytes = 1;
    let mut t = fetch_request::FetchTopic::default();
    t.topic = TopicName(StrBytes::from_static_str("c"));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.max_bytes = 1;
    req.topics = vec![t];
    let resp: FetchResponse = common::call(d, ApiKey::Fetch, 11, &req);
    let part = &resp.responses[0].partitions[0];
    assert_eq!(part.error_code, 0);
    let mut bytes = part.records.clone().unwrap_or_default();
    RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| r.offset >= offset)
        .map(|r| (r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()))
        .collect()
}

#[test]
fn a_client_reads_a_compacted_partition_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap());
    let config = TopicConfig::with_partitions(1).segment_bytes(4096).cleanup_policy(CleanupPolicy::Compact);
    broker.create_topic("c", config).unwrap();
    let log = broker.topic("c").unwrap().partition(0).unwrap();
    // Ten keys over and over, every seventh record a tombstone.
    for i in 0..2990u64 {
        let key = format!("k{}", i % 10);
        let rec = if i % 7 == 6 { Record::tombstone(key) } else { Record::new(format!("v{i}")).with_key(key) };
        log.append(&[rec.with_timestamp(i as i64)]).unwrap();
    }
    let eager = CompactionOptions {
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag: Duration::ZERO,
        delete_retention: Duration::ZERO,
        ..CompactionOptions::default()
    };
    assert!(log.compact(10_000, &eager).unwrap().records_removed > 1000);
    let mut kept = Vec::new();
    let mut next = 0;
    while next < log.high_watermark() {
        for b in log.read(next, 1 << 20).unwrap() {
            let records = b.try_records().unwrap().into_iter();
            kept.extend(records.map(|r| (r.offset as i64, r.value.map(|v| v.to_vec()).unwrap_or_default())));
            next = b.next_offset();
        }
    }

    // Here the cleaned segment ends with a tombstone compaction removed:
    // its last batch keeps the offset of the tombstone after its record.
    let (tail, [batch]) = (2925, &log.read(2925, 1).unwrap()[..]) else { panic!("one batch") };
    assert!(batch.records().next().is_none() && batch.last_offset() == tail, "no record from {tail} on");
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig::default());
    let (mut got, mut offset) = (Vec::new(), 0i64);
    while offset < log.high_watermark() as i64 {
        let records = fetch(&mut d, offset);
        assert!(!records.is_empty(), "a fetch at {offset}, below the end, answered nothing");
        offset = records.last().unwrap().0 + 1;
        got.extend(records);
    }
    assert_eq!(got, kept);
}

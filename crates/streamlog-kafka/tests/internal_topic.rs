//! The internal `__consumer_offsets` topic cannot be written or cut by a
//! client: a produced record there (a forged commit or a tombstone) or a
//! DeleteRecords would change or erase every group's committed offsets at the
//! next restart. Kafka answers INVALID_TOPIC_EXCEPTION (17) to both.

mod common;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use streamlog::{Broker, BrokerOptions, ConsumerConfig, OFFSETS_TOPIC, TopicConfig, TopicPartition};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

const INVALID_TOPIC_EXCEPTION: i16 = 17;

fn one_record() -> Bytes {
    let rec = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_000,
        key: Some(Bytes::from_static(b"forged")),
        value: None,
        headers: Default::default(),
    };
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut out, std::iter::once(&rec), &options).unwrap();
    out.freeze()
}

#[test]
fn produce_and_delete_records_on_the_offsets_topic_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    // A commit, which creates the offsets topic.
    let tp = TopicPartition::new("t", 0);
    let mut consumer = broker.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    consumer.commit_offsets(&[(tp.clone(), 0)]).unwrap();
    let offsets_end = broker.topic(OFFSETS_TOPIC).unwrap().partition(0).unwrap().high_watermark();
    assert!(offsets_end > 0);
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig::default());
    let name = TopicName(StrBytes::from_static_str(OFFSETS_TOPIC));

    let mut p = produce_request::PartitionProduceData::default();
    p.records = Some(one_record());
    let mut t = produce_request::TopicProduceData::default();
    t.name = name.clone();
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.topic_data = vec![t];
    let resp: ProduceResponse = common::call(&mut d, ApiKey::Produce, 7, &req);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, INVALID_TOPIC_EXCEPTION);

    let mut p = delete_records_request::DeleteRecordsPartition::default();
    p.offset = -1; // Everything.
    let mut t = delete_records_request::DeleteRecordsTopic::default();
    t.name = name;
    t.partitions = vec![p];
    let mut req = DeleteRecordsRequest::default();
    req.topics = vec![t];
    let resp: DeleteRecordsResponse = common::call(&mut d, ApiKey::DeleteRecords, 1, &req);
    assert_eq!(resp.topics[0].partitions[0].error_code, INVALID_TOPIC_EXCEPTION);

    let log = broker.topic(OFFSETS_TOPIC).unwrap().partition(0).unwrap();
    assert_eq!((log.log_start_offset(), log.high_watermark()), (0, offsets_end), "the offsets log untouched");
    drop((d, consumer));
    drop(Arc::try_unwrap(broker).unwrap_or_else(|_| panic!("one broker handle left")));
    let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert_eq!(broker.group("g").committed().unwrap().get(&tp), Some(&0), "the commit survives a restart");
}

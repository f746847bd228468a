//! The internal `__consumer_offsets` topic cannot be written or cut by a
//! client: a produced record there (a forged commit or a tombstone) or a
//! DeleteRecords would change or erase every group's committed offsets at the
//! next restart. Kafka answers INVALID_TOPIC_EXCEPTION (17) to both.

mod common;

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streamlog::{Broker, BrokerOptions, ConsumerConfig, OFFSETS_TOPIC, TopicConfig, TopicPartition};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

const INVALID_TOPIC_EXCEPTION: i16 = 17;

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

    let forged = common::raw_batch(&common::raw_record(0, Some(b"forged"), None, &[]), 0, 1, 0);
    assert_eq!(common::produce_raw(&mut d, OFFSETS_TOPIC, forged), INVALID_TOPIC_EXCEPTION);

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

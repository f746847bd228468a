//! OffsetCommit metadata is stored with the offset in the broker's offsets
//! topic: an OffsetFetch after a restart of broker and server returns it.

mod common;

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetAndMetadata, TopicConfig, TopicPartition};
use streamlog_kafka::{KafkaServer, ServerConfig};

use common::Client;

fn commit(client: &mut Client, group: &str, topic: &str, partition: i32, offset: i64, metadata: Option<&str>) -> i16 {
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = partition;
    p.committed_offset = offset;
    p.committed_metadata = metadata.map(|m| StrBytes::from_string(m.to_owned()));
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_owned()));
    t.partitions = vec![p];
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_owned()));
    req.generation_id_or_member_epoch = -1;
    req.topics = vec![t];
    let resp: OffsetCommitResponse = client.request(ApiKey::OffsetCommit, 8, &req);
    resp.topics[0].partitions[0].error_code
}

fn fetch(client: &mut Client, group: &str, topic: &str, partition: i32) -> (i64, Option<String>) {
    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_owned()));
    t.partition_indexes = vec![partition];
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_owned()));
    req.topics = Some(vec![t]);
    let resp: OffsetFetchResponse = client.request(ApiKey::OffsetFetch, 7, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (p.committed_offset, p.metadata.as_ref().map(|m| m.to_string()))
}

#[test]
fn offset_commit_metadata_survives_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
        broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
        broker.producer().send(streamlog::ProducerRecord::new("t", "x").partition(0)).unwrap();
        broker.producer().send(streamlog::ProducerRecord::new("t", "y").partition(1)).unwrap();
        let server = KafkaServer::start(Arc::clone(&broker), "127.0.0.1:0", ServerConfig::default()).unwrap();
        let mut client = Client::connect(server.local_addr());
        assert_eq!(commit(&mut client, "g", "t", 0, 1, Some("checkpoint=17")), 0);
        assert_eq!(commit(&mut client, "g", "t", 1, 1, None), 0);
        // Too large, as Kafka's offset.metadata.max.bytes: refused, nothing committed.
        let big = "m".repeat(streamlog::MAX_OFFSET_METADATA_LEN + 1);
        assert_eq!(commit(&mut client, "g2", "t", 0, 1, Some(&big)), 12);
        assert_eq!(fetch(&mut client, "g", "t", 0), (1, Some("checkpoint=17".into())));
        server.shutdown();
        Arc::try_unwrap(broker).map_err(|_| "broker still shared").unwrap().close().unwrap();
    }
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    let server = KafkaServer::start(Arc::clone(&broker), "127.0.0.1:0", ServerConfig::default()).unwrap();
    let mut client = Client::connect(server.local_addr());
    assert_eq!(fetch(&mut client, "g", "t", 0), (1, Some("checkpoint=17".into())));
    assert_eq!(fetch(&mut client, "g", "t", 1), (1, Some(String::new())));
    assert_eq!(fetch(&mut client, "g2", "t", 0).0, -1);
    // In-process consumers of the group see it too, and commit with metadata.
    let mut c = broker.consumer(ConsumerConfig::with_group("g")).unwrap();
    let tp = TopicPartition::new("t", 0);
    assert_eq!(c.committed_with_metadata(&tp).unwrap(), Some(OffsetAndMetadata::new(1, "checkpoint=17")));
    c.commit_offsets_with_metadata(&[(tp.clone(), OffsetAndMetadata::new(0, "from-rust"))]).unwrap();
    assert_eq!(fetch(&mut client, "g", "t", 0), (0, Some("from-rust".into())));
    // A commit without metadata clears it.
    c.commit_offsets(&[(tp.clone(), 1)]).unwrap();
    assert_eq!(fetch(&mut client, "g", "t", 0), (1, Some(String::new())));
    drop(c);
    server.shutdown();
}

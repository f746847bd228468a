//! Producer ids are not handed out again after a restart. A producer that
//! outlived the restart keeps its id; when a new producer was given the same
//! id (every start began at 1000), its first batch to a partition the old
//! one had just written with the same sequence numbers was answered as a
//! duplicate and never written.

mod common;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use streamlog::{Broker, BrokerOptions, TopicConfig};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

/// One record from idempotent producer `id` with sequence 0.
fn produce(d: &mut Dispatcher, id: i64, value: &'static [u8]) -> i16 {
    let rec = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: id,
        producer_epoch: 0,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: 0,
        timestamp: 1_000,
        key: None,
        value: Some(Bytes::from_static(value)),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut batch, std::iter::once(&rec), &options).unwrap();
    let mut p = produce_request::PartitionProduceData::default();
    p.records = Some(batch.freeze());
    let mut t = produce_request::TopicProduceData::default();
    t.name = TopicName(StrBytes::from_static_str("t"));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.topic_data = vec![t];
    let resp: ProduceResponse = common::call(d, ApiKey::Produce, 8, &req);
    resp.responses[0].partition_responses[0].error_code
}

fn init(d: &mut Dispatcher) -> i64 {
    let resp: InitProducerIdResponse = common::call(d, ApiKey::InitProducerId, 1, &InitProducerIdRequest::default());
    assert_eq!(resp.error_code, 0);
    resp.producer_id.0
}

#[test]
fn a_new_producer_after_a_restart_gets_an_id_not_handed_out_before() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let old = init(&mut Dispatcher::new(Arc::clone(&broker), ServerConfig::default()));
    // The server restarts (its producer state is in memory); the old
    // producer goes on with its id, then a new one starts.
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig::default());
    assert_eq!(produce(&mut d, old, b"old"), 0);
    let new = init(&mut d);
    assert_ne!(new, old);
    assert_eq!(produce(&mut d, new, b"new"), 0);
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    let values: Vec<Bytes> =
        log.read(0, 1 << 20).unwrap().iter().flat_map(|b| b.records()).map(|r| r.unwrap().value.unwrap()).collect();
    assert_eq!(values, [Bytes::from_static(b"old"), Bytes::from_static(b"new")]);
}

//! Producer ids are not handed out again after a restart. A producer that
//! outlived the restart keeps its id; when a new producer was given the same
//! id (every start began at 1000), its first batch to a partition the old
//! one had just written with the same sequence numbers was answered as a
//! duplicate and never written.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use streamlog::{Broker, BrokerOptions, TopicConfig};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

/// One record from idempotent producer `id` with sequence 0.
fn produce(d: &mut Dispatcher, id: i64, value: &'static [u8]) -> i16 {
    let batch = common::raw_batch_of(&common::raw_record(0, None, Some(value), &[]), 0, 1, 0, (id, 0, 0));
    common::produce_raw(d, "t", batch)
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

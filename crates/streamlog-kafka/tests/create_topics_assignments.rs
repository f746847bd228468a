//! CreateTopics with replica assignments and no partition count (-1), as
//! an admin client sends for `NewTopic(name, replicasAssignments)`: the
//! topic gets one partition per assignment. It got the auto-create default.

mod common;

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streamlog::{Broker, BrokerOptions};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

#[test]
fn replica_assignments_give_the_partition_count() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig::default());
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = TopicName(StrBytes::from_static_str("assigned"));
    t.num_partitions = -1;
    t.replication_factor = -1;
    t.assignments = (0..2)
        .map(|i| {
            let mut a = create_topics_request::CreatableReplicaAssignment::default();
            a.partition_index = i;
            a.broker_ids = vec![BrokerId(0)];
            a
        })
        .collect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    let resp: CreateTopicsResponse = common::call(&mut d, ApiKey::CreateTopics, 5, &req);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].num_partitions, 2);
    assert_eq!(broker.topic("assigned").unwrap().partition_count(), 2);
}

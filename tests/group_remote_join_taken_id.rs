//! A remote join (a Kafka client's JoinGroup) with the member id of an
//! in-process consumer is refused with `UnknownMember` (the Kafka front's
//! UNKNOWN_MEMBER_ID), and the consumer stays as it was. Before,
//! `Group::join` inserted the remote member over the consumer's entry:
//! the consumer became a "remote" member, the group rebalanced, and the
//! remote client's requests acted on the consumer's partitions.

use std::time::Duration;

use streamlog::{
    Assignor, Broker, BrokerOptions, ConsumerConfig, Error, OffsetReset, ProducerRecord, RemoteJoin, TopicConfig,
};

#[test]
fn a_remote_join_with_an_in_process_members_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let mut c = b.consumer(ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest)).unwrap();
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::ZERO).unwrap();
    assert_eq!(c.assignment().len(), 2);
    let id = c.member_id().unwrap().to_owned();
    let before = b.describe_group("g").unwrap();

    let group = b.group("g");
    let join = RemoteJoin {
        member_id: id.clone(),
        group_instance_id: None,
        topics: vec!["t".into()],
        owned: Vec::new(),
        assignor: Assignor::Range,
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(10),
    };
    let r = group.remote_join(join, Duration::ZERO);
    assert!(matches!(&r, Err(Error::UnknownMember { member_id, .. }) if *member_id == id), "{r:?}");
    assert!(!group.has_remote_member(&id), "still the in-process member");
    assert_eq!(b.describe_group("g").unwrap(), before, "no rebalance, same members and owners");

    // The consumer goes on as before.
    b.producer().send(ProducerRecord::new("t", "x").partition(1)).unwrap();
    assert_eq!(c.poll(Duration::from_secs(1)).unwrap().len(), 1);
    assert_eq!((c.generation(), c.assignment().len()), (Some(before.generation), 2));
}

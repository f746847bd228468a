//! A JoinGroup that waits for the rebalance holds only its own connection:
//! other connections are answered meanwhile, and the wait is bounded by the
//! client's rebalance timeout (then REBALANCE_IN_PROGRESS: it rejoins). It
//! waits for in-process members of the same group, which share it.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use streamlog::{ConsumerConfig, OffsetReset, TopicConfig};

use common::{Client, start};

fn join_request(member_id: &str, rebalance_ms: i32) -> JoinGroupRequest {
    let mut sub = ConsumerProtocolSubscription::default();
    sub.topics = vec![StrBytes::from_static_str("jw")];
    let mut meta = BytesMut::new();
    meta.extend_from_slice(&0i16.to_be_bytes());
    sub.encode(&mut meta, 0).unwrap();
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = StrBytes::from_static_str("range");
    p.metadata = meta.freeze();
    let mut r = JoinGroupRequest::default();
    r.group_id = GroupId(StrBytes::from_static_str("jw-group"));
    r.session_timeout_ms = 10_000;
    r.rebalance_timeout_ms = rebalance_ms;
    r.member_id = StrBytes::from_string(member_id.to_owned());
    r.protocol_type = StrBytes::from_static_str("consumer");
    r.protocols = vec![p];
    r
}

#[test]
fn join_group_waits_for_in_process_members_without_blocking_other_connections() {
    let env = start();
    env.broker.create_topic("jw", TopicConfig::with_partitions(4)).unwrap();
    let mut a =
        env.broker.consumer(ConsumerConfig::with_group("jw-group").auto_offset_reset(OffsetReset::Earliest)).unwrap();
    a.subscribe(&["jw"]).unwrap();
    a.poll(Duration::from_millis(10)).unwrap();
    assert_eq!(a.assignment().len(), 4);

    // The in-process member does not poll: the wire member's JoinGroup
    // waits for it, up to its own rebalance timeout.
    let addr = env.addr();
    let waiting = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let start = Instant::now();
        let r: JoinGroupResponse = c.request(ApiKey::JoinGroup, 3, &join_request("", 500));
        (c, r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    // Meanwhile another connection is answered at once.
    let mut other = Client::connect(addr);
    let t = Instant::now();
    let _: MetadataResponse = other.request(ApiKey::Metadata, 9, &MetadataRequest::default());
    assert!(t.elapsed() < Duration::from_millis(300), "{:?}", t.elapsed());
    let (mut c, r, took) = waiting.join().unwrap();
    assert_eq!(r.error_code, 27, "REBALANCE_IN_PROGRESS after the rebalance timeout");
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(5), "{took:?}");
    let member_id = r.member_id.to_string();
    assert!(!member_id.is_empty());

    // It rejoins while the in-process member polls: both are in the new
    // generation, the client as a follower of the broker.
    let rejoin = std::thread::spawn(move || {
        let r: JoinGroupResponse = c.request(ApiKey::JoinGroup, 3, &join_request(&member_id, 10_000));
        (c, r, member_id)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rejoin.is_finished() {
        assert!(Instant::now() < deadline);
        a.poll(Duration::from_millis(10)).unwrap();
    }
    let (mut c, r, member_id) = rejoin.join().unwrap();
    assert_eq!(r.error_code, 0);
    assert!(r.generation_id >= 2, "{}", r.generation_id);
    assert_eq!(r.leader.as_str(), "streamlog-broker");
    assert_ne!(r.leader, r.member_id);
    assert_eq!(r.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));

    // SyncGroup hands over what the in-process member released on its poll.
    let generation = r.generation_id;
    let sync = std::thread::spawn(move || {
        let mut req = SyncGroupRequest::default();
        req.group_id = GroupId(StrBytes::from_static_str("jw-group"));
        req.generation_id = generation;
        req.member_id = StrBytes::from_string(member_id);
        let r: SyncGroupResponse = c.request(ApiKey::SyncGroup, 3, &req);
        r
    });
    while !sync.is_finished() {
        a.poll(Duration::from_millis(10)).unwrap();
    }
    let r = sync.join().unwrap();
    assert_eq!(r.error_code, 0);
    let mut bytes = r.assignment.slice(2..);
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, 0).unwrap();
    let wire: Vec<i32> = assignment.assigned_partitions.iter().flat_map(|t| t.partitions.clone()).collect();
    a.poll(Duration::from_millis(10)).unwrap();
    let local: Vec<i32> = a.assignment().iter().map(|tp| tp.partition as i32).collect();
    assert_eq!(wire.len(), 2, "{wire:?}");
    assert_eq!(local.len(), 2, "{local:?}");
    assert!(wire.iter().all(|p| !local.contains(p)), "{wire:?} {local:?}");
}

//! Kafka's classic group protocol on top of the broker's one coordinator:
//! members over the wire and in-process `Consumer`s share a group, with one
//! owner per partition at every moment.
//!
//! The broker assigns for every member, with the group's assignor (the one
//! named by the group's first member: `range`, `roundrobin` or
//! `cooperative-sticky`). A Kafka client never acts as the group leader: the
//! leader id in JoinGroup answers is [`LEADER`], no member's id, so every
//! client is a follower and receives its assignment, encoded in the consumer
//! protocol, from SyncGroup. This keeps a single place that decides and
//! tracks ownership: a partition reaches a wire member only once its
//! previous holder released it (an in-process consumer on its next poll; a
//! wire member when it rejoins without it, leaves, or its session expires).
//!
//! Here: the member ids handed out with MEMBER_ID_REQUIRED (KIP-394) and
//! not yet joined, the protocol name each member was given, and the
//! consumer-protocol codecs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use parking_lot::Mutex;
use streamlog::{Assignor, TopicPartition};

/// The leader id of every JoinGroup answer: the broker, which assigns.
/// Member ids are `<client id>-<8 digits>`, so no client has this one.
pub(crate) const LEADER: &str = "streamlog-broker";

/// Longest a JoinGroup waits for the rebalance before it is answered with
/// REBALANCE_IN_PROGRESS (the client rejoins): a client's rebalance timeout
/// is capped to this, so no request holds its connection's thread longer.
pub(crate) const MAX_JOIN_WAIT: Duration = Duration::from_secs(300);
/// Longest a SyncGroup waits for partitions that their holders have yet to
/// release; what is still held then is handed over after a rejoin
/// (Heartbeat says when). Below every client's SyncGroup timeout
/// (librdkafka: session timeout + 3 s, at least 9 s).
pub(crate) const MAX_SYNC_WAIT: Duration = Duration::from_secs(5);
/// How long a member id handed out with MEMBER_ID_REQUIRED stays valid.
const PENDING_TTL: Duration = Duration::from_secs(300);
/// Most member ids pending at once; the oldest go first.
const MAX_PENDING: usize = 10_000;

/// Per wire member: its group and the protocol name it was given.
struct Known {
    protocol: String,
    seen: Instant,
}

#[derive(Default)]
pub(crate) struct Groups {
    /// (group, member id) handed out with MEMBER_ID_REQUIRED.
    pending: Mutex<HashMap<(String, String), Instant>>,
    /// (group, member id) → what SyncGroup and DescribeGroups repeat.
    known: Mutex<HashMap<(String, String), Known>>,
}

impl Groups {
    /// Waiting group requests look at `stopping` every 100 ms: nothing to wake.
    pub fn wake_all(&self) {}

    /// Sessions expire in the broker's coordinator; here only forgotten
    /// pending ids go.
    pub fn expire_sessions(&self) {
        let now = Instant::now();
        self.pending.lock().retain(|_, at| now.duration_since(*at) < PENDING_TTL);
    }

    pub fn add_pending(&self, group: &str, member_id: &str) {
        let mut p = self.pending.lock();
        let now = Instant::now();
        p.retain(|_, at| now.duration_since(*at) < PENDING_TTL);
        if p.len() >= MAX_PENDING
            && let Some(oldest) = p.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone())
        {
            p.remove(&oldest);
        }
        p.insert((group.to_owned(), member_id.to_owned()), now);
    }

    /// Whether `member_id` was handed out for `group` (and is now used).
    pub fn take_pending(&self, group: &str, member_id: &str) -> bool {
        self.pending.lock().remove(&(group.to_owned(), member_id.to_owned())).is_some()
    }

    pub fn set_protocol(&self, group: &str, member_id: &str, protocol: &str) {
        let mut k = self.known.lock();
        let now = Instant::now();
        k.retain(|_, m| now.duration_since(m.seen) < PENDING_TTL);
        k.insert((group.to_owned(), member_id.to_owned()), Known { protocol: protocol.to_owned(), seen: now });
    }

    pub fn protocol(&self, group: &str, member_id: &str) -> Option<String> {
        let mut k = self.known.lock();
        let m = k.get_mut(&(group.to_owned(), member_id.to_owned()))?;
        m.seen = Instant::now();
        Some(m.protocol.clone())
    }

    pub fn forget(&self, group: &str, member_id: &str) {
        self.known.lock().remove(&(group.to_owned(), member_id.to_owned()));
    }
}

/// The consumer-protocol name of an assignor.
pub(crate) fn protocol_name(a: Assignor) -> &'static str {
    match a {
        Assignor::RoundRobin => "roundrobin",
        Assignor::CooperativeSticky => "cooperative-sticky",
        _ => "range",
    }
}

/// The assignor a client asks for by protocol name (Kafka's eager `sticky`
/// is assigned stickily too).
pub(crate) fn assignor_of(name: &str) -> Option<Assignor> {
    match name {
        "range" => Some(Assignor::Range),
        "roundrobin" => Some(Assignor::RoundRobin),
        "cooperative-sticky" | "sticky" => Some(Assignor::CooperativeSticky),
        _ => None,
    }
}

/// A member's subscription: topics and the partitions it says it owns.
pub(crate) fn decode_subscription(meta: &Bytes) -> Option<(Vec<String>, Vec<TopicPartition>)> {
    let mut buf = meta.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    bytes::Buf::advance(&mut buf, 2);
    // A newer version only appends fields: read what this codec knows.
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3)).ok()?;
    let topics = sub.topics.iter().map(|t| t.to_string()).collect();
    let owned = sub
        .owned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter_map(|&p| Some(TopicPartition::new(t.topic.0.to_string(), u32::try_from(p).ok()?)))
        })
        .collect();
    Some((topics, owned))
}

/// The consumer-protocol bytes of an assignment (version 0, which every
/// client reads).
pub(crate) fn encode_assignment(partitions: &[TopicPartition]) -> Bytes {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition as i32);
    }
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut x = kafka_protocol::messages::consumer_protocol_assignment::TopicPartition::default();
            x.topic = TopicName(StrBytes::from_string(t.to_owned()));
            x.partitions = ps;
            x
        })
        .collect();
    let mut out = BytesMut::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    if a.encode(&mut out, 0).is_err() {
        return Bytes::new();
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_decode_and_assignments_encode() {
        let mut sub = ConsumerProtocolSubscription::default();
        sub.topics = vec![StrBytes::from_static_str("a"), StrBytes::from_static_str("b")];
        let mut owned = kafka_protocol::messages::consumer_protocol_subscription::TopicPartition::default();
        owned.topic = TopicName(StrBytes::from_static_str("a"));
        owned.partitions = vec![1, 3];
        sub.owned_partitions = vec![owned];
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&1i16.to_be_bytes());
        sub.encode(&mut buf, 1).unwrap();
        let (topics, owned) = decode_subscription(&buf.freeze()).unwrap();
        assert_eq!(topics, ["a", "b"]);
        assert_eq!(owned, [TopicPartition::new("a", 1), TopicPartition::new("a", 3)]);
        assert_eq!(decode_subscription(&Bytes::from_static(&[0])), None);

        let bytes = encode_assignment(&[TopicPartition::new("t", 2), TopicPartition::new("t", 0)]);
        let mut b = bytes.slice(2..);
        let a = ConsumerProtocolAssignment::decode(&mut b, 0).unwrap();
        assert_eq!(a.assigned_partitions[0].partitions, [2, 0]);
    }
}

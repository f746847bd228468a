//! The request path (decode, dispatch, encode) fed random frames and mutated
//! valid ones, without a socket (the same entry point as the fuzz target
//! `fuzz/fuzz_targets/kafka_request.rs`): never a panic, an abort or a hang.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use proptest::prelude::*;
use streamlog::{Broker, BrokerOptions, TopicConfig};
use streamlog_kafka::internals::Dispatcher;
use streamlog_kafka::{SUPPORTED, ServerConfig};

/// A broker in a temporary directory and a dispatcher over it.
type Fixture = (tempfile::TempDir, Dispatcher);

fn dispatcher() -> Fixture {
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    (dir, Dispatcher::new(broker, ServerConfig { auto_create_partitions: 1, ..ServerConfig::default() }))
}

fn frame(key: ApiKey, version: i16, body: &impl Encodable) -> Vec<u8> {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = 9;
    h.client_id = Some(StrBytes::from_static_str("fuzz"));
    let mut b = BytesMut::new();
    h.encode(&mut b, key.request_header_version(version)).unwrap();
    body.encode(&mut b, version).unwrap();
    b.to_vec()
}

fn batch(compression: Compression) -> Bytes {
    let recs: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 1000,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from_static(b"value")),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, recs.iter(), &RecordEncodeOptions { version: 2, compression }).unwrap();
    out.freeze()
}

/// One valid request of every supported API at every supported version
/// (mostly default bodies, with a topic, a partition and records where the
/// API has them), the seeds that mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let topic = TopicName(StrBytes::from_static_str("t"));
    let mut out = Vec::new();
    for &(key, lo, hi) in SUPPORTED {
        for v in lo..=hi {
            let f = match key {
                ApiKey::Produce => {
                    let mut p = produce_request::PartitionProduceData::default();
                    p.records = Some(batch(if v % 2 == 0 { Compression::None } else { Compression::Gzip }));
                    let mut t = produce_request::TopicProduceData::default();
                    t.name = topic.clone();
                    t.partition_data = vec![p];
                    let mut r = ProduceRequest::default();
                    r.acks = -1;
                    r.topic_data = vec![t];
                    frame(key, v, &r)
                }
                ApiKey::Fetch => {
                    let mut p = fetch_request::FetchPartition::default();
                    p.partition_max_bytes = 1 << 20;
                    let mut t = fetch_request::FetchTopic::default();
                    t.topic = topic.clone();
                    t.partitions = vec![p];
                    let mut r = FetchRequest::default();
                    r.max_wait_ms = 10_000;
                    r.min_bytes = 1 << 30;
                    r.topics = vec![t];
                    frame(key, v, &r)
                }
                ApiKey::Metadata => {
                    let mut t = metadata_request::MetadataRequestTopic::default();
                    t.name = Some(TopicName(StrBytes::from_static_str("auto")));
                    let mut r = MetadataRequest::default();
                    r.topics = Some(vec![t]);
                    r.allow_auto_topic_creation = true;
                    frame(key, v, &r)
                }
                ApiKey::ListOffsets => {
                    let mut p = list_offsets_request::ListOffsetsPartition::default();
                    p.timestamp = 1_001;
                    let mut t = list_offsets_request::ListOffsetsTopic::default();
                    t.name = topic.clone();
                    t.partitions = vec![p];
                    let mut r = ListOffsetsRequest::default();
                    r.topics = vec![t];
                    frame(key, v, &r)
                }
                ApiKey::DeleteRecords => {
                    let mut p = delete_records_request::DeleteRecordsPartition::default();
                    p.offset = 1;
                    let mut t = delete_records_request::DeleteRecordsTopic::default();
                    t.name = topic.clone();
                    t.partitions = vec![p];
                    let mut r = DeleteRecordsRequest::default();
                    r.topics = vec![t];
                    frame(key, v, &r)
                }
                ApiKey::CreatePartitions => {
                    let mut t = create_partitions_request::CreatePartitionsTopic::default();
                    t.name = topic.clone();
                    t.count = 3;
                    let mut r = CreatePartitionsRequest::default();
                    r.topics = vec![t];
                    frame(key, v, &r)
                }
                ApiKey::ApiVersions => frame(key, v, &ApiVersionsRequest::default()),
                ApiKey::OffsetCommit => frame(key, v, &OffsetCommitRequest::default()),
                ApiKey::OffsetFetch => frame(key, v, &OffsetFetchRequest::default()),
                ApiKey::FindCoordinator => frame(key, v, &FindCoordinatorRequest::default()),
                ApiKey::JoinGroup => frame(key, v, &JoinGroupRequest::default()),
                ApiKey::Heartbeat => frame(key, v, &HeartbeatRequest::default()),
                ApiKey::LeaveGroup => frame(key, v, &LeaveGroupRequest::default()),
                ApiKey::SyncGroup => frame(key, v, &SyncGroupRequest::default()),
                ApiKey::DescribeGroups => frame(key, v, &DescribeGroupsRequest::default()),
                ApiKey::ListGroups => frame(key, v, &ListGroupsRequest::default()),
                ApiKey::CreateTopics => frame(key, v, &CreateTopicsRequest::default()),
                ApiKey::DeleteTopics => frame(key, v, &DeleteTopicsRequest::default()),
                ApiKey::InitProducerId => frame(key, v, &InitProducerIdRequest::default()),
                ApiKey::DescribeConfigs => frame(key, v, &DescribeConfigsRequest::default()),
                _ => continue,
            };
            out.push(f);
        }
    }
    out
}

#[test]
fn every_seed_frame_is_answered() {
    let (_dir, mut d) = dispatcher();
    for f in seeds() {
        let key = i16::from_be_bytes([f[0], f[1]]);
        assert!(d.handle(Bytes::from(f)).is_some(), "api key {key} answered");
    }
}

/// Found by the fuzz target (built against the unpatched codec): a
/// DeleteRecords frame claiming 2^30 topics aborted on allocation.
#[test]
fn a_frame_claiming_a_huge_array_is_refused_without_allocating_it() {
    let (_dir, mut d) = dispatcher();
    let frame = [0x00, 0x15, 0x00, 0x00, 0x3e, 0xec, 0x00, 0x3e, 0x00, 0x00, 0x3e, 0x3e, 0x00, 0x00];
    assert!(d.handle(Bytes::copy_from_slice(&frame)).is_none());
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn apply(f: &mut Vec<u8>, m: &Mutation) {
    let n = f.len();
    match *m {
        Mutation::Set(i, b) if i % (n + 1) >= 8 && i % (n + 1) < n => f[i % (n + 1)] = b,
        Mutation::Set(..) => {}
        Mutation::Truncate(at) => f.truncate((at % (n + 1)).max(8)),
        Mutation::Insert(at, ref bytes) => {
            let at = (at % (n + 1)).max(8).min(n);
            f.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove(at, len) => {
            let at = (at % (n + 1)).max(8).min(n);
            f.drain(at..(at + len).min(n));
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), prop_oneof![Just(0u8), Just(0xff), Just(0x7f), Just(0x80), any::<u8>()])
            .prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    /// Valid frames of every API and version with a few bytes changed
    /// (header fields kept, so the body reaches the handler).
    #[test]
    fn mutated_valid_frames_never_panic(pick in any::<usize>(), ms in proptest::collection::vec(mutation(), 1..6)) {
        thread_local! {
            static STATE: std::cell::RefCell<(Vec<Vec<u8>>, Fixture)> =
                std::cell::RefCell::new((seeds(), dispatcher()));
        }
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let mut f = s.0[pick % s.0.len()].clone();
            for m in &ms {
                apply(&mut f, m);
            }
            let _ = s.1.1.handle(Bytes::from(f));
        });
    }

    /// Random bytes behind a header of a supported API.
    #[test]
    fn random_bodies_never_panic(pick in any::<usize>(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (key, lo, hi) = SUPPORTED[pick % SUPPORTED.len()];
        let version = lo + (pick / SUPPORTED.len()) as i16 % (hi - lo + 1);
        let mut f = Vec::from((key as i16).to_be_bytes());
        f.extend_from_slice(&version.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(&body);
        thread_local! {
            static D: std::cell::RefCell<Fixture> = std::cell::RefCell::new(dispatcher());
        }
        D.with(|d| { let _ = d.borrow_mut().1.handle(Bytes::from(f)); });
    }
}

//! A hostile record batch (a base timestamp of `i64::MAX`, which overflowed
//! in the record decoder: a panic in debug builds, before the vendored
//! decoder was patched to wrap) is answered, and its connection, closed,
//! gives its slot back: with one connection allowed, the next client is
//! served. A connection thread that panics gives its slot back too
//! (`ConnectionSlot`); this test saw that fail before it was added.

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use streamlog::TopicConfig;
use streamlog_kafka::ServerConfig;

use common::*;

/// A batch of two records whose base timestamp is `i64::MAX`: the second
/// record's delta of 1 takes its timestamp past it.
fn overflowing_batch() -> Bytes {
    let recs: Vec<Record> = (0..2)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: i,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut out, recs.iter(), &options).unwrap();
    // baseOffset 8, batchLength 4, leader epoch 4, magic 1, crc 4,
    // attributes 2, lastOffsetDelta 4, then baseTimestamp.
    out[27..35].copy_from_slice(&i64::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

#[test]
fn a_hostile_batch_is_answered_and_its_connection_gives_its_slot_back() {
    let env = start_with(ServerConfig { max_connections: 1, ..ServerConfig::default() });
    env.broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let mut c = Client::connect(env.addr());
    let mut p = produce_request::PartitionProduceData::default();
    p.records = Some(overflowing_batch());
    let mut t = produce_request::TopicProduceData::default();
    t.name = TopicName(StrBytes::from_static_str("t"));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.topic_data = vec![t];
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Produce as i16;
    header.request_api_version = 8;
    header.correlation_id = 1;
    let mut buf = BytesMut::new();
    use kafka_protocol::protocol::Encodable;
    header.encode(&mut buf, ApiKey::Produce.request_header_version(8)).unwrap();
    req.encode(&mut buf, 8).unwrap();
    c.send_raw(&buf);
    let mut f = c.read_frame().expect("an answer");
    use kafka_protocol::protocol::Decodable;
    ResponseHeader::decode(&mut f, ApiKey::Produce.response_header_version(8)).unwrap();
    let r = ProduceResponse::decode(&mut f, 8).unwrap();
    // Refused: INVALID_TIMESTAMP (32), the first record's being past the
    // year 9999 and the second's, wrapped as in Kafka, negative.
    assert_eq!(r.responses[0].partition_responses[0].error_code, 32);
    drop(c);
    // The slot comes back once the server has seen the connection close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.server.as_ref().unwrap().connection_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(env.server.as_ref().unwrap().connection_count(), 0);
    let mut next = Client::connect(env.addr());
    let r: MetadataResponse = next.request(ApiKey::Metadata, 9, &MetadataRequest::default());
    assert_eq!(r.brokers.len(), 1);
}

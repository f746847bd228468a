//! Hostile or broken clients: an error response or a closed connection,
//! never a panic, a hang of other connections, or unbounded memory.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse};
use proptest::prelude::*;
use streamlog_kafka::{Decoded, ServerConfig, decode_request};

use common::*;

fn metadata_works(env: &Env) {
    let mut c = Client::connect(env.addr());
    let r: MetadataResponse = c.request(ApiKey::Metadata, 9, &MetadataRequest::default());
    assert_eq!(r.brokers.len(), 1);
}

#[test]
fn api_versions_at_an_unknown_version_answers_kip_511_v0_error_body() {
    let env = start();
    let mut c = Client::connect(env.addr());
    c.send_raw(&frame_header(ApiKey::ApiVersions as i16, 99, 7));
    let mut f = c.read_frame().expect("an answer, not a closed connection");
    assert_eq!(f.get_i32(), 7); // response header v0: correlation id only
    let body = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut f, 0).unwrap();
    assert_eq!(body.error_code, 35);
    assert!(body.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));
    // And a supported version works on the same connection.
    let r: ApiVersionsResponse = c.request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
}

#[test]
fn unknown_key_bad_version_oversized_and_truncated_frames_close_only_their_connection() {
    let env = start_with(ServerConfig { max_frame_bytes: 1 << 20, ..ServerConfig::default() });
    let mut idle = Client::connect(env.addr());
    for frame in [frame_header(999, 0, 1).to_vec(), frame_header(ApiKey::Fetch as i16, 99, 1).to_vec(), vec![1, 2, 3]] {
        let mut c = Client::connect(env.addr());
        c.send_raw(&frame);
        assert!(c.read_frame().is_none(), "closed");
    }
    // A frame over the cap is refused before it is read (no allocation).
    let mut c = Client::connect(env.addr());
    c.stream.write_all(&(2_000_000_000i32).to_be_bytes()).unwrap();
    assert!(c.read_frame().is_none());
    // A client that disconnects mid-request.
    let mut c = Client::connect(env.addr());
    c.stream.write_all(&100i32.to_be_bytes()).unwrap();
    c.stream.write_all(&[0; 10]).unwrap();
    drop(c);
    // A request claiming a 2^31-element array in a tiny frame (the vendored
    // codec's reservation is bounded): an error, not an abort.
    let mut f = frame_header(ApiKey::Metadata as i16, 1, 3).to_vec();
    f.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut c = Client::connect(env.addr());
    c.send_raw(&f);
    assert!(c.read_frame().is_none());
    // Others are unaffected.
    let r: MetadataResponse = idle.request(ApiKey::Metadata, 9, &MetadataRequest::default());
    assert_eq!(r.brokers.len(), 1);
    metadata_works(&env);
}

#[test]
fn connections_over_the_limit_are_closed_and_shutdown_is_prompt() {
    let mut env = start_with(ServerConfig { max_connections: 2, ..ServerConfig::default() });
    let a = Client::connect(env.addr());
    let b = Client::connect(env.addr());
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.server.as_ref().unwrap().connection_count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut c = Client::connect(env.addr());
    c.send_raw(&frame_header(ApiKey::ApiVersions as i16, 0, 1));
    assert!(c.read_frame().is_none(), "third connection closed");
    drop((a, b));
    let start = Instant::now();
    env.server.take().unwrap().shutdown();
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn an_idle_connection_is_closed_and_its_slot_freed() {
    let env = start_with(ServerConfig {
        max_connections: 1,
        connections_max_idle: Duration::from_millis(200),
        ..ServerConfig::default()
    });
    let mut idle = Client::connect(env.addr());
    let r: MetadataResponse = idle.request(ApiKey::Metadata, 9, &MetadataRequest::default());
    assert_eq!(r.brokers.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.server.as_ref().unwrap().connection_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(env.server.as_ref().unwrap().connection_count(), 0);
    assert!(idle.read_frame().is_none(), "closed by the server");
    metadata_works(&env);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    /// Random frames through the request decoder: never a panic or abort.
    #[test]
    fn the_request_decoder_never_panics(key in 0i16..70, version in -1i16..15, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut f = frame_header(key, version, 1).to_vec();
        f.truncate(8);
        f.extend_from_slice(&body);
        let _ = matches!(decode_request(Bytes::from(f)), Decoded::Reject(_));
    }
}

//! One connection: frames in, requests decoded, answered in order.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::Shared;
use crate::api;

/// The APIs served and their versions: librdkafka's mock cluster's ranges,
/// capped by what the codec decodes and where a newer version needs what
/// streamlog lacks (topic ids from Fetch 13, batched FindCoordinator from
/// 4). Coherent with a Kafka 2.8 broker, which kafka-python infers from them.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 11),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
];

pub(crate) fn supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED.iter().any(|&(k, lo, hi)| k == key && (lo..=hi).contains(&version))
}

pub(crate) fn api_versions_body() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(k, lo, hi)| {
            let mut v = ApiVersion::default();
            v.api_key = k as i16;
            v.min_version = lo;
            v.max_version = hi;
            v
        })
        .collect()
}

/// What a frame decodes to.
#[derive(Debug)]
pub enum Decoded {
    /// A supported request.
    Request(Box<RequestHeader>, Box<RequestKind>),
    /// ApiVersions at a version this server does not know (KIP-511: answered
    /// with a v0 error body listing the supported ranges).
    UnsupportedApiVersions { correlation_id: i32 },
    /// An unknown API key, an unsupported version or malformed bytes: the
    /// connection is closed.
    Reject(String),
}

/// Decodes one request frame (without its 4-byte size prefix). Never
/// panics; the fuzz test feeds it random bytes.
pub fn decode_request(frame: Bytes) -> Decoded {
    if frame.len() < 8 {
        return Decoded::Reject("frame shorter than a request header".into());
    }
    let mut peek = &frame[..8];
    let (key, version, correlation_id) = (peek.get_i16(), peek.get_i16(), peek.get_i32());
    let Ok(api_key) = ApiKey::try_from(key) else {
        return Decoded::Reject(format!("unknown API key {key}"));
    };
    if !supported(api_key, version) {
        if api_key == ApiKey::ApiVersions && version > 3 {
            return Decoded::UnsupportedApiVersions { correlation_id };
        }
        return Decoded::Reject(format!("{api_key:?} v{version} not supported"));
    }
    let mut buf = frame;
    let header = match RequestHeader::decode(&mut buf, api_key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Decoded::Reject(format!("bad request header: {e}")),
    };
    match RequestKind::decode(api_key, &mut buf, version) {
        Ok(req) => Decoded::Request(Box::new(header), Box::new(req)),
        Err(e) => Decoded::Reject(format!("malformed {api_key:?} v{version}: {e}")),
    }
}

/// Serves one connection until the client closes it, sends something
/// unacceptable, or the server stops.
pub(crate) fn serve(shared: &Shared, mut stream: TcpStream) {
    let mut size = [0u8; 4];
    let mut out = BytesMut::new();
    loop {
        if shared.stopping.load(Ordering::Acquire) || stream.read_exact(&mut size).is_err() {
            return;
        }
        let len = i32::from_be_bytes(size);
        if len < 8 || len as usize > shared.config.max_frame_bytes {
            return; // Malformed or oversized: closed without reading it.
        }
        let mut frame = vec![0u8; len as usize];
        if stream.read_exact(&mut frame).is_err() {
            return; // Disconnected mid-request.
        }
        match respond(shared, Bytes::from(frame), &mut out) {
            Reply::Send => {}
            Reply::Nothing => continue,
            Reply::Close => return,
        }
        if write_all(&mut stream, &out).is_err() {
            return;
        }
        if out.capacity() > KEEP_OUT_BYTES {
            // Not held for the connection's life after one large response.
            out = BytesMut::new();
        }
    }
}

/// Largest response buffer a connection keeps between requests: above a
/// consumer's usual Fetch response (1 MiB a partition by default), which a
/// fresh buffer per response made slower (kcat consume 0.72 against 1.13 M
/// records/s in one of three runs with 1 MiB kept).
const KEEP_OUT_BYTES: usize = 4 << 20;

/// What to do after one request.
pub(crate) enum Reply {
    /// Send the response in `out`.
    Send,
    /// Send nothing (a Produce with acks=0).
    Nothing,
    /// Close the connection (a rejected or unencodable request).
    Close,
}

/// One request frame (without its size prefix) to its response frame (with
/// its size prefix) in `out`: decoding, dispatch and encoding, no socket.
pub(crate) fn respond(shared: &Shared, frame: Bytes, out: &mut BytesMut) -> Reply {
    out.clear();
    match decode_request(frame) {
        Decoded::Request(header, req) => {
            let Ok(api_key) = ApiKey::try_from(header.request_api_key) else { return Reply::Close };
            let version = header.request_api_version;
            let Some(response) = api::handle(shared, &header, *req) else { return Reply::Nothing };
            let mut rh = ResponseHeader::default();
            rh.correlation_id = header.correlation_id;
            if encode_response(out, &rh, api_key, version, &response).is_err() {
                return Reply::Close;
            }
        }
        Decoded::UnsupportedApiVersions { correlation_id } => {
            let mut body = ApiVersionsResponse::default();
            body.error_code = api::UNSUPPORTED_VERSION;
            body.api_keys = api_versions_body();
            let mut rh = ResponseHeader::default();
            rh.correlation_id = correlation_id;
            out.put_i32(0);
            if rh.encode(out, 0).is_err() || body.encode(out, 0).is_err() {
                return Reply::Close;
            }
            let n = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&n.to_be_bytes());
        }
        Decoded::Reject(_) => return Reply::Close,
    }
    Reply::Send
}

fn encode_response(
    out: &mut BytesMut,
    header: &ResponseHeader,
    key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> anyhow::Result<()> {
    out.put_i32(0);
    header.encode(out, key.response_header_version(version))?;
    body.encode(out, version)?;
    let n = i32::try_from(out.len() - 4)?;
    out[..4].copy_from_slice(&n.to_be_bytes());
    Ok(())
}

fn write_all(stream: &mut TcpStream, buf: &[u8]) -> io::Result<()> {
    stream.write_all(buf)?;
    stream.flush()
}

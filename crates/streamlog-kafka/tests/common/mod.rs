#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use streamlog::{Broker, BrokerOptions};
use streamlog_kafka::internals::Dispatcher;
use streamlog_kafka::{KafkaServer, ServerConfig};

pub struct Env {
    pub server: Option<KafkaServer>,
    pub broker: Arc<Broker>,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }
    pub fn bootstrap(&self) -> String {
        self.addr().to_string()
    }
}

pub fn start() -> Env {
    start_with(ServerConfig::default())
}

pub fn start_with(config: ServerConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    let server = KafkaServer::start(Arc::clone(&broker), "127.0.0.1:0", config).unwrap();
    Env { server: Some(server), broker, dir }
}

/// A minimal Kafka client: one request at a time.
pub struct Client {
    pub stream: TcpStream,
    next: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { stream, next: 1 }
    }

    pub fn send_raw(&mut self, frame: &[u8]) {
        let mut out = Vec::with_capacity(frame.len() + 4);
        out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
        out.extend_from_slice(frame);
        self.stream.write_all(&out).unwrap();
    }

    /// Reads one response frame; `None` if the server closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).ok()?;
        Some(Bytes::from(buf))
    }

    pub fn request<Req: Encodable, Resp: Decodable>(&mut self, key: ApiKey, version: i16, req: &Req) -> Resp {
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.next;
        header.client_id = Some(StrBytes::from_static_str("wire-test"));
        self.next += 1;
        let mut buf = BytesMut::new();
        header.encode(&mut buf, key.request_header_version(version)).unwrap();
        req.encode(&mut buf, version).unwrap();
        self.send_raw(&buf);
        let mut frame = self.read_frame().expect("response");
        let rh = ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(rh.correlation_id, header.correlation_id);
        Resp::decode(&mut frame, version).unwrap()
    }
}

/// One request through `d` (no socket), its response decoded.
pub fn call<Req: Encodable, Resp: Decodable>(d: &mut Dispatcher, key: ApiKey, version: i16, req: &Req) -> Resp {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("wire-test"));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, key.request_header_version(version)).unwrap();
    req.encode(&mut buf, version).unwrap();
    let mut frame = Bytes::copy_from_slice(&d.handle(buf.freeze()).expect("a response")[4..]);
    let rh = ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
    assert_eq!(rh.correlation_id, 7);
    Resp::decode(&mut frame, version).unwrap()
}

/// Kafka's zigzag varint.
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Record `offset_delta` of a v2 batch, encoded by hand (any field may be
/// made wrong by the caller): timestamp delta 0, the key, the value and
/// the headers (name, value) in order.
pub fn raw_record(offset_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    put_varint(&mut body, 0);
    put_varint(&mut body, offset_delta);
    for field in [key, value] {
        match field {
            None => put_varint(&mut body, -1),
            Some(f) => {
                put_varint(&mut body, f.len() as i64);
                body.extend_from_slice(f);
            }
        }
    }
    put_varint(&mut body, headers.len() as i64);
    for (name, value) in headers {
        put_varint(&mut body, name.len() as i64);
        body.extend_from_slice(name.as_bytes());
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(value);
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    put_varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// A v2 batch around `records` (already compressed with codec
/// `compression`, Kafka's attribute bits), its header's count and last
/// offset delta as given, not producer-idempotent, CRC-32C set.
pub fn raw_batch(records: &[u8], compression: i16, count: i32, last_offset_delta: i32) -> Bytes {
    raw_batch_of(records, compression, count, last_offset_delta, (-1, -1, -1))
}

/// [`raw_batch`] of the idempotent producer `(id, epoch, base sequence)`.
pub fn raw_batch_of(
    records: &[u8],
    compression: i16,
    count: i32,
    last_offset_delta: i32,
    (producer_id, epoch, base_sequence): (i64, i16, i32),
) -> Bytes {
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    b.extend_from_slice(&compression.to_be_bytes());
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&1_000i64.to_be_bytes()); // base timestamp
    b.extend_from_slice(&1_000i64.to_be_bytes()); // max timestamp
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// A Produce (v8, acks -1) of `batches` to partition 0 of topic `topic`
/// through `d`: the partition's error code.
pub fn produce_raw(d: &mut Dispatcher, topic: &'static str, batches: Bytes) -> i16 {
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName, produce_request};
    let mut p = produce_request::PartitionProduceData::default();
    p.records = Some(batches);
    let mut t = produce_request::TopicProduceData::default();
    t.name = TopicName(StrBytes::from_static_str(topic));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.topic_data = vec![t];
    let resp: ProduceResponse = call(d, ApiKey::Produce, 8, &req);
    resp.responses[0].partition_responses[0].error_code
}

pub fn frame_header(key: i16, version: i16, correlation: i32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(key);
    b.put_i16(version);
    b.put_i32(correlation);
    b.put_i16(-1); // null client id
    b
}

pub fn get_i32(b: &mut Bytes) -> i32 {
    b.get_i32()
}

/// The virtualenv Python with the clients, or why there is none.
pub fn python() -> Result<PathBuf, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = root.join(".venv-kafka/bin/python");
    if !py.exists() {
        return Err(format!("{} missing: run scripts/install-test-clients.sh", py.display()));
    }
    Ok(py)
}

pub fn has_module(py: &PathBuf, module: &str) -> bool {
    Command::new(py).args(["-c", &format!("import {module}")]).status().is_ok_and(|s| s.success())
}

pub fn client_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(name)
}

pub fn kcat() -> Result<&'static str, String> {
    if Command::new("kcat").arg("-V").output().is_ok_and(|o| o.status.success()) {
        Ok("kcat")
    } else {
        Err("kcat not installed: run scripts/install-test-clients.sh".into())
    }
}

/// Runs a command with a timeout, returning its stdout (panics on failure).
pub fn run(cmd: &mut Command, timeout: Duration) -> String {
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} timed out\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

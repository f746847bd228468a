//! Figures of the Kafka front, all in one run (`bench/wire_bench.sh` runs it):
//! - the time from `KafkaServer::start` to the first record acknowledged to a
//!   confluent-kafka producer that was already started and waiting;
//! - produce and consume throughput of 100 B records through real clients
//!   (kcat, confluent-kafka) against the in-process path (`Producer::send`,
//!   `Consumer::poll`) of the same records in the same run.
//!
//! `cargo run --release -p streamlog-kafka --example wire_bench -- [RECORDS]`

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamlog::{Broker, BrokerOptions, ConsumerConfig, ProducerRecord, TopicConfig, TopicPartition};
use streamlog_kafka::{KafkaServer, ServerConfig};

const VALUE: usize = 100;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let py = root.join("../../.venv-kafka/bin/python");
    let has_ck = Command::new(&py).args(["-c", "import confluent_kafka"]).status().is_ok_and(|s| s.success());
    let has_kcat = Command::new("kcat").arg("-V").output().is_ok_and(|o| o.status.success());

    if has_ck {
        for auto_create in [false, false, false, true, true, true] {
            first_produce(&py, &root, auto_create);
        }
    } else {
        println!("start to first produce: SKIPPED (no .venv-kafka with confluent-kafka)");
    }

    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    let value = Bytes::from(vec![b'x'; VALUE]);

    // In process: Producer::send one record per call, Consumer::poll.
    broker.create_topic("inproc", TopicConfig::with_partitions(1)).unwrap();
    let producer = broker.producer();
    let t = Instant::now();
    for _ in 0..n {
        producer.send(ProducerRecord::new("inproc", value.clone()).partition(0)).unwrap();
    }
    let produce_inproc = rate(n, t.elapsed());
    let mut consumer = broker.consumer(ConsumerConfig::default()).unwrap();
    let tp = TopicPartition::new("inproc", 0);
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    consumer.seek(&tp, 0).unwrap();
    let (t, mut got) = (Instant::now(), 0);
    while got < n {
        got += consumer.poll(Duration::from_secs(1)).unwrap().len();
    }
    let consume_inproc = rate(n, t.elapsed());
    println!("in-process Producer::send  {n} x {VALUE} B: {produce_inproc:>9.0} records/s");
    println!("in-process Consumer::poll  {n} x {VALUE} B: {consume_inproc:>9.0} records/s");

    let server = KafkaServer::start(Arc::clone(&broker), "127.0.0.1:0", ServerConfig::default()).unwrap();
    let bootstrap = server.local_addr().to_string();
    if has_kcat {
        broker.create_topic("kcat", TopicConfig::with_partitions(1)).unwrap();
        let input = dir.path().join("in");
        let mut line = vec![b'x'; VALUE];
        line.push(b'\n');
        std::fs::write(&input, line.repeat(n)).unwrap();
        let t = Instant::now();
        let status = Command::new("kcat")
            .args(["-b", &bootstrap, "-P", "-t", "kcat", "-p", "0", "-X", "linger.ms=5", "-X"])
            .args([
                "batch.num.messages=10000",
                "-X",
                "batch.size=1000000",
                "-X",
                "queue.buffering.max.messages=1000000",
            ])
            .stdin(std::fs::File::open(&input).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
        let produce = rate(n, t.elapsed());
        assert_eq!(broker.topic("kcat").unwrap().partition(0).unwrap().high_watermark(), n as u64);
        let t = Instant::now();
        let out = Command::new("kcat")
            .args(["-b", &bootstrap, "-C", "-t", "kcat", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "\n"])
            .output()
            .unwrap();
        let consume = rate(n, t.elapsed());
        assert_eq!(out.stdout.iter().filter(|&&b| b == b'\n').count(), n);
        println!("kcat produce (process incl.)  {n} x {VALUE} B: {produce:>9.0} records/s");
        println!("kcat consume (process incl.)  {n} x {VALUE} B: {consume:>9.0} records/s");
    } else {
        println!("kcat: SKIPPED (not installed)");
    }
    if has_ck {
        broker.create_topic("ck", TopicConfig::with_partitions(1)).unwrap();
        let out = Command::new(&py)
            .arg(root.join("bench/ck_throughput.py"))
            .args([&bootstrap, "ck", &n.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let (what, r) = l.split_once(' ').unwrap();
            println!("confluent-kafka {what}         {n} x {VALUE} B: {:>9} records/s", r);
        }
    }
    server.shutdown();
}

/// One measurement of start-up: a producer process is started first and
/// waits (librdkafka retries its connection about every 12 ms whatever the
/// backoff asks, so up to ~12 ms of the figure is the client's); the broker
/// is opened; then the clock starts, the server starts, and the clock stops
/// when the producer reports its record acknowledged (read from its stdout).
/// `auto_create`: the topic is created by the client's Metadata request
/// (four partitions, each a directory and files fsynced) instead of before.
fn first_produce(py: &PathBuf, root: &std::path::Path, auto_create: bool) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut child = Command::new(py)
        .arg(root.join("bench/ck_first_produce.py"))
        .args([&bootstrap, "first"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    if !auto_create {
        broker.create_topic("first", TopicConfig::with_partitions(4)).unwrap();
    }
    let opened = t.elapsed();
    std::thread::sleep(Duration::from_millis(30)); // The client fails to connect a few times.
    let t = Instant::now();
    let server = KafkaServer::start(Arc::clone(&broker), ("127.0.0.1", port), ServerConfig::default()).unwrap();
    let listening = t.elapsed();
    let line = lines.next().unwrap().unwrap();
    let acked = t.elapsed();
    assert_eq!(line, "delivered");
    child.wait().unwrap();
    println!(
        "start to first produce ({}): KafkaServer::start returned (listening) after {:.2} ms, first record \
         acknowledged to a waiting confluent-kafka producer after {:.1} ms (broker open before: {:.1} ms)",
        if auto_create { "topic auto-created" } else { "topic exists" },
        ms(listening),
        ms(acked),
        ms(opened),
    );
    let _ = std::io::stdout().flush();
    server.shutdown();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

//! The `tracing` events a service sees: open, crash recovery (what was
//! scanned and cut), rebalances, and a background maintenance failure,
//! which the maintenance thread used to discard. A tiny subscriber that
//! records every event stands in for the application's.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use streamlog::{
    Broker, BrokerOptions, CleanupPolicy, ConsumerConfig, ManualClock, Partition, PartitionOptions, ProducerRecord,
    Record, TopicConfig,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Metadata, Subscriber};

mod common;

/// Every event as `LEVEL message field=value ...`.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture {
    next_span: AtomicU64,
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        EVENTS.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture { next_span: AtomicU64::new(1) }).unwrap();
    });
}

/// Waits up to 10 s for an event line containing every one of `parts`.
fn wait_for(parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = EVENTS.lock().unwrap().iter().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.clone();
        }
        assert!(Instant::now() < deadline, "no event with {parts:?} in {:#?}", EVENTS.lock().unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn crash_recovery_says_what_it_scanned_and_cut() {
    capture();
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path().join("live"), PartitionOptions::default()).unwrap();
    for _ in 0..10 {
        log.append(&[Record::new(vec![7u8; 100])]).unwrap();
    }
    // What a kill -9 now would leave: the files, no clean marker.
    common::crash_copy(&dir.path().join("live"), &dir.path().join("crashed"));
    let copy = Partition::open(dir.path().join("crashed"), PartitionOptions::default()).unwrap();
    assert_eq!(copy.high_watermark(), 10);
    let line = wait_for(&["recovered a segment", "crashed", "next_offset=10"]);
    assert!(line.starts_with("INFO") && line.contains("scanned_bytes=") && line.contains("cut_bytes="), "{line}");
}

#[test]
fn open_rebalance_and_a_background_maintenance_failure_are_reported() {
    capture();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let opts = BrokerOptions::default().fsync(false).clock(clock.clone()).maintenance_interval(None);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let broker = Broker::open(&dir, opts.clone()).unwrap();
    let config = TopicConfig::with_partitions(1).segment_bytes(4096).cleanup_policy(CleanupPolicy::Compact);
    broker.create_topic("damaged", config).unwrap();
    for i in 0..500u64 {
        broker.producer().send(ProducerRecord::new("damaged", vec![1u8; 100]).key(format!("k{}", i % 3))).unwrap();
    }
    let mut consumer = broker.consumer(ConsumerConfig::with_group("readers")).unwrap();
    consumer.subscribe(&["damaged"]).unwrap();
    consumer.poll(Duration::from_millis(10)).unwrap();
    wait_for(&["group rebalanced", "group=readers", "generation=1", "members=1", "partitions_moved=1"]);
    broker.close().unwrap();

    // Damage a sealed segment; reopen with a maintenance thread, which
    // used to drop the failure on the floor.
    let seg = dir.join("topics/damaged/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    clock.advance(Duration::from_secs(10));
    let broker = Broker::open(&dir, opts.maintenance_interval(Some(Duration::from_millis(1)))).unwrap();
    wait_for(&["opened the broker", "topics=1", "clean=true"]);
    let line = wait_for(&["maintenance failed", "topic=\"damaged\"", "partition=0", "corrupt"]);
    assert!(line.starts_with("WARN"), "{line}");
    broker.close().unwrap();
}

#[test]
fn a_failed_auto_commit_is_a_warning() {
    capture();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let tmp = tempfile::tempdir().unwrap();
    let broker =
        Broker::open(tmp.path(), BrokerOptions::default().clock(clock.clone()).maintenance_interval(None)).unwrap();
    broker.create_topic("busy", TopicConfig::with_partitions(1)).unwrap();
    let mut member = broker.consumer(ConsumerConfig::with_group("busy").enable_auto_commit(false)).unwrap();
    member.subscribe(&["busy"]).unwrap();
    member.poll(Duration::ZERO).unwrap();
    // Outside the group, which has a member: its auto-commit is refused.
    let mut outsider = broker.consumer(ConsumerConfig::with_group("busy")).unwrap();
    outsider.assign(&[streamlog::TopicPartition::new("busy", 0)]).unwrap();
    outsider.poll(Duration::ZERO).unwrap();
    clock.advance(Duration::from_secs(6));
    outsider.poll(Duration::ZERO).unwrap();
    let line = wait_for(&["auto-commit failed", "group=\"busy\""]);
    assert!(line.starts_with("WARN"), "{line}");
}

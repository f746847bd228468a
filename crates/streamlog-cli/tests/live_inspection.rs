//! Read-only commands on a directory that another process holds while it
//! appends, rolls, compacts and applies retention in a loop: they never
//! take the lock, never change a byte, never die of a signal; commands that
//! write refuse, naming the holder.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlog::{Broker, BrokerOptions, CleanupPolicy, ProducerRecord, TopicConfig};

const CHILD_ENV: &str = "STREAMLOG_LIVE_CHILD_DIR";

/// The holder: run as a child process of the test (this same binary).
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let broker = Broker::open(&dir, BrokerOptions::default().maintenance_interval(None)).unwrap();
    let small = |c: TopicConfig| c.segment_bytes(4096).index_interval_bytes(256);
    broker.create_topic("events", small(TopicConfig::with_partitions(2)).retention_bytes(Some(64 << 10))).unwrap();
    broker
        .create_topic(
            "state",
            small(TopicConfig::with_partitions(1))
                .cleanup_policy(CleanupPolicy::Compact)
                .min_cleanable_dirty_ratio(0.0),
        )
        .unwrap();
    let producer = broker.producer();
    let until = Instant::now() + Duration::from_secs(4);
    let mut i = 0u64;
    while Instant::now() < until {
        for _ in 0..200 {
            producer.send(ProducerRecord::new("events", format!("event-{i}")).key(format!("k{}", i % 7))).unwrap();
            producer.send(ProducerRecord::new("state", format!("v{i}")).key(format!("key-{}", i % 20))).unwrap();
            i += 1;
        }
        broker.run_maintenance().unwrap();
    }
    broker.close().unwrap();
}

fn streamlog(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_streamlog")).arg("--data").arg(data).args(args).output().expect("run streamlog")
}

#[test]
fn inspection_works_while_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &data)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the topics.
    let started = Instant::now();
    while !data.join("topics/state/topic.meta").exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "the writer did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rounds = 0;
    let mut held_seen = false;
    while child.try_wait().unwrap().is_none() {
        rounds += 1;
        for args in [
            &["topics", "describe"][..],
            &["consume", "events", "--from-beginning", "--timeout-ms", "50", "--max-messages", "5000"],
            &[
                "consume",
                "state",
                "--from-beginning",
                "--timeout-ms",
                "50",
                "--output",
                "json",
                "--max-messages",
                "500",
            ],
            &["groups", "list"],
            &["dump-log", data.join("topics/state/0").to_str().unwrap()],
            &["verify", "--quiet"],
        ] {
            let out = streamlog(&data, args);
            // Verify may find a segment replaced mid-read; nothing may die of
            // a signal or panic.
            assert!(out.status.code().is_some(), "{args:?} died: {:?}", out.status);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            if args[0] != "verify" && args[0] != "dump-log" {
                assert!(out.status.success(), "{args:?}: {stderr}");
            }
        }
        let refused = streamlog(&data, &["topics", "create", "other"]);
        if child.try_wait().unwrap().is_none() {
            let stderr = String::from_utf8_lossy(&refused.stderr);
            if refused.status.code() == Some(1) && stderr.contains(&format!("process {}", child.id())) {
                held_seen = true;
            }
        }
    }
    assert!(child.wait().unwrap().success(), "the writer failed");
    assert!(rounds >= 2, "only {rounds} rounds ran while the writer wrote");
    assert!(held_seen, "a writing command was never refused naming the holder");
    // Quiescent now: the directory is whole and clean.
    let out = streamlog(&data, &["verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

//! `streamlog verify` fails on what `Broker::open` refuses: offsets missing
//! between two segments, a missing first segment, a topic directory without
//! its `topic.meta`; and reads segments in pieces, never whole.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// A topic of three segments (one per produce), verified clean.
fn three_segments() -> (tempfile::TempDir, PathBuf, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(streamlog(&data, &["topics", "create", "t", "--config", "segment.bytes=4096"], "").status.success());
    let lines: String = (0..40).map(|i| format!("{i:0>50}\n")).collect();
    for _ in 0..3 {
        assert!(streamlog(&data, &["produce", "t"], &lines).status.success());
    }
    let part = data.join("topics/t/0");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    assert_eq!(logs.len(), 3, "{logs:?}");
    let out = streamlog(&data, &["verify"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    (dir, data, logs)
}

fn remove_segment(log: &Path) {
    for ext in ["log", "index", "timeindex"] {
        let _ = std::fs::remove_file(log.with_extension(ext));
    }
}

/// Verify fails naming `what`, and so does opening the directory.
fn refused(data: &Path, what: &str) {
    let out = streamlog(data, &["verify"], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(what), "{stdout:?} lacks {what:?}");
    let open = streamlog(data, &["topics", "create", "other"], "");
    assert_eq!(open.status.code(), Some(1), "open accepted it");
}

#[test]
fn a_missing_middle_segment() {
    let (_dir, data, logs) = three_segments();
    remove_segment(&logs[1]);
    refused(&data, "are missing");
}

#[test]
fn a_missing_first_segment() {
    let (_dir, data, logs) = three_segments();
    remove_segment(&logs[0]);
    refused(&data, "are missing");
}

#[test]
fn a_topic_without_its_metadata() {
    let (_dir, data, _) = three_segments();
    std::fs::remove_file(data.join("topics/t/topic.meta")).unwrap();
    refused(&data, "topic.meta");
}

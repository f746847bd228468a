//! `streamlog produce` takes lines as bytes, as Kafka's console producer
//! does: keys and values need not be UTF-8 (`--key-separator` splits bytes).
//! A line it cannot take (bad JSON) or a failed read ends the input after
//! the lines before it are appended, and the message names the line.

mod common;

use common::*;
use std::path::Path;

use streamlog::inspect::DataDir;

/// A record's key and value.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of partition 0 of `topic`.
fn records(data: &Path, topic: &str) -> Vec<KeyValue> {
    let files = DataDir::open(data).unwrap().partition(topic, 0).unwrap();
    let mut out = Vec::new();
    loop {
        let batches = files.read(out.len() as u64, 1 << 20).unwrap();
        if batches.is_empty() {
            return out;
        }
        for b in batches {
            for r in b.try_records().unwrap() {
                out.push((r.key.map(|k| k.to_vec()), r.value.map(|v| v.to_vec())));
            }
        }
    }
}

fn created(topic: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(streamlog(&data, &["topics", "create", topic], b"").status.success());
    (dir, data)
}

#[test]
fn lines_that_are_not_utf8_are_appended_as_bytes() {
    let (_dir, data) = created("t");
    let mut input: Vec<u8> = (1..=2000).flat_map(|i| format!("{i}\n").into_bytes()).collect();
    input.extend_from_slice(b"\xff\n");
    let out = streamlog(&data, &["produce", "t"], &input);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = records(&data, "t");
    assert_eq!(got.len(), 2001);
    assert_eq!(got[1999].1.as_deref(), Some(&b"2000"[..]));
    assert_eq!(got[2000], (None, Some(vec![0xff])));
}

#[test]
fn the_key_separator_splits_bytes() {
    let (_dir, data) = created("t");
    let out = streamlog(&data, &["produce", "t", "--key-separator", ":"], b"k\xfe:v\xff:w\r\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(records(&data, "t"), [(Some(b"k\xfe".to_vec()), Some(b"v\xff:w".to_vec()))]);
}

#[test]
fn json_that_is_not_utf8_fails_naming_the_line_after_appending_those_before() {
    let (_dir, data) = created("t");
    let mut input: Vec<u8> = (1..=2000).flat_map(|i| format!("{{\"value\":\"{i}\"}}\n").into_bytes()).collect();
    input.extend_from_slice(b"{\"value\":\"\xff\"}\n{\"value\":\"after\"}\n");
    let out = streamlog(&data, &["produce", "t", "--json"], &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2001:") && stderr.contains("lines before it were appended"), "{stderr}");
    let got = records(&data, "t");
    assert_eq!(got.len(), 2000);
    assert_eq!(got[1999].1.as_deref(), Some(&b"2000"[..]));
}

#[test]
fn a_line_longer_than_64_mib_is_refused_after_the_lines_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["topics", "create", "t"], "");
    let mut input = b"before\n".to_vec();
    input.resize(input.len() + (65 << 20), b'x');
    let out = streamlog(&data, &["produce", "t"], &input);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2") && stderr.contains("longer than 64 MiB"), "{stderr}");
    assert_eq!(records(&data, "t"), [(None, Some(b"before".to_vec()))]);
}

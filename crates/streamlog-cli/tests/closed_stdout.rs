//! Standard output closed (`| head -1` gone): commands that only print stop
//! quietly (round_trip.rs); commands that write or judge do their work all
//! the same and their status tells how it went: `produce --verbose` appends
//! every line, `groups reset-offsets --execute` commits, `verify` fails on
//! damage.

mod common;

use common::*;
use std::path::Path;

use streamlog::inspect::DataDir;

/// Runs `streamlog` with `stdin` and a stdout whose reader is gone.
fn with_stdout_closed(data: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = command(data, args);
    cmd.stdout(writer);
    run(cmd, stdin)
}

#[test]
fn produce_verbose_appends_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["topics", "create", "t"], b"");
    let lines: String = (0..200_000).map(|i| format!("{i}\n")).collect();
    let out = with_stdout_closed(&data, &["produce", "t", "--verbose"], lines.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let end = DataDir::open(&data).unwrap().partition("t", 0).unwrap().log_end_offset().unwrap();
    assert_eq!(end, 200_000);
}

#[test]
fn reset_offsets_execute_commits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["topics", "create", "t"], b"");
    ok(&data, &["produce", "t"], b"a\nb\nc\n");
    ok(&data, &["consume", "t", "--group", "g", "--from-beginning", "--timeout-ms", "300"], b"");
    let out =
        with_stdout_closed(&data, &["groups", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--execute"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = DataDir::open(&data).unwrap().committed_offsets().unwrap();
    assert_eq!(committed["g"].values().copied().collect::<Vec<_>>(), [0]);
}

#[test]
fn verify_fails_on_damage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["topics", "create", "t"], b"");
    ok(&data, &["produce", "t"], b"hello\n");
    let seg = data.join("topics/t/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[50] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let out = with_stdout_closed(&data, &["verify"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 problem(s)"), "{}", String::from_utf8_lossy(&out.stderr));
}

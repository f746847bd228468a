//! A batch of the last (active) segment that fails its checksum, in a
//! directory no process holds and that was closed cleanly, is damage, not a
//! write in progress: `consume`, `topics describe` and `groups describe`
//! fail naming the file and the position, instead of ending the log there
//! (nothing printed, the lag understated, status 0). After a crash (no clean
//! marker) a batch cut short with nothing valid after it is where the
//! written log ends, as the owner's next open will cut it.

mod common;

use common::*;
use std::path::Path;

/// Runs `args` and checks that it fails naming `position` of `seg`.
fn fails_naming(data: &Path, args: &[&str], seg: &Path, position: u64) {
    let out = streamlog(data, args, "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: stdout {:?}, stderr {stderr:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let named = format!("{} at byte {position}", seg.display());
    assert!(stderr.contains(&named), "{args:?}: {stderr:?} lacks {named:?}");
}

fn flip(seg: &Path, at: usize) {
    let mut bytes = std::fs::read(seg).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(seg, bytes).unwrap();
}

#[test]
fn a_flipped_byte_in_the_only_batch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["topics", "create", "t"], "");
    ok(&data, &["produce", "t"], "hello\n");
    let seg = data.join("topics/t/0/00000000000000000000.log");
    flip(&seg, 50);
    fails_naming(&data, &["consume", "t", "--from-beginning", "--timeout-ms", "100"], &seg, 0);
    fails_naming(&data, &["topics", "describe", "t"], &seg, 0);
}

#[test]
fn valid_batches_after_the_damage_are_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["topics", "create", "t"], "");
    // Two appends, two batches; the group has read both.
    ok(&data, &["produce", "t"], "first\n");
    ok(&data, &["produce", "t"], "second\n");
    let read = ok(&data, &["consume", "t", "--group", "g", "--from-beginning", "--timeout-ms", "300"], "");
    assert_eq!(read, "first\nsecond\n");
    let seg = data.join("topics/t/0/00000000000000000000.log");
    flip(&seg, 50);
    fails_naming(&data, &["consume", "t", "--from-beginning", "--timeout-ms", "100"], &seg, 0);
    fails_naming(&data, &["consume", "t", "--timeout-ms", "100"], &seg, 0);
    fails_naming(&data, &["topics", "describe", "t"], &seg, 0);
    fails_naming(&data, &["groups", "describe", "g"], &seg, 0);
}

#[test]
fn a_tail_cut_short_by_a_crash_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["topics", "create", "t"], "");
    ok(&data, &["produce", "t"], "first\n");
    let seg = data.join("topics/t/0/00000000000000000000.log");
    let second = std::fs::metadata(&seg).unwrap().len();
    ok(&data, &["produce", "t"], "second\n");
    // The second batch half written, and no clean close: a crash.
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 5).unwrap();
    let marker = data.join(".clean_shutdown");
    let clean = std::fs::read(&marker).unwrap();
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(ok(&data, &["consume", "t", "--from-beginning", "--timeout-ms", "100"], ""), "first\n");
    // Nothing open would refuse: it cuts such a tail.
    ok(&data, &["verify"], "");
    // The same cut in a directory closed cleanly is damage.
    std::fs::write(&marker, clean).unwrap();
    fails_naming(&data, &["consume", "t", "--from-beginning", "--timeout-ms", "100"], &seg, second);
    assert!(!streamlog(&data, &["verify"], "").status.success());
}

//! `inspect::PartitionFiles` on a damaged batch at the end of the last
//! segment while a process holds the directory: a write in progress (the log
//! ends there for now) only if no valid batch follows it; with one after it,
//! `Error::Corrupt` naming the file and position, as in a directory nobody
//! holds. After a crash, a tail cut short ends the log; after a clean close
//! it is damage (tests of the command line:
//! crates/streamlog-cli/tests/damaged_last_segment.rs).

use std::os::unix::fs::FileExt;

use streamlog::inspect::DataDir;
use streamlog::{Broker, BrokerOptions, Error, ProducerRecord, TopicConfig};

fn setup(values: &[&str]) -> (tempfile::TempDir, Broker, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    for v in values {
        broker.producer().send(ProducerRecord::new("t", v.to_string())).unwrap();
    }
    let seg = dir.path().join("topics/t/0/00000000000000000000.log");
    (dir, broker, seg)
}

#[test]
fn a_damaged_tail_with_nothing_after_it_is_a_write_in_progress() {
    let (dir, broker, seg) = setup(&["one"]);
    let data = DataDir::open(dir.path()).unwrap();
    assert_eq!(data.holder(), Some(std::process::id()));
    let files = data.partition("t", 0).unwrap();
    let end = files.read(0, 1 << 20).unwrap()[0].as_bytes().len() as u64;
    // The start of a batch the holder has not finished writing.
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&[0xab; 40], end).unwrap();
    let files = data.partition("t", 0).unwrap();
    assert_eq!(files.log_end_offset().unwrap(), 1);
    assert_eq!(files.read(0, 1 << 20).unwrap().len(), 1);
    assert!(files.read(1, 1 << 20).unwrap().is_empty());
    drop(broker);
}

#[test]
fn a_damaged_batch_with_a_valid_one_after_it_is_an_error_while_held() {
    damaged_then_valid("two");
}

#[test]
fn a_valid_batch_after_larger_than_a_read_chunk_is_found() {
    damaged_then_valid(&"x".repeat(3 << 20));
}

fn damaged_then_valid(second: &str) {
    let (dir, broker, seg) = setup(&["one", second]);
    let data = DataDir::open(dir.path()).unwrap();
    assert_eq!(data.holder(), Some(std::process::id()));
    // The first batch's value, under its checksum.
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&seg).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, 50).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], 50).unwrap();
    let files = data.partition("t", 0).unwrap();
    let named = |e: &Error| matches!(e, Error::Corrupt { path, position: 0, .. } if *path == seg);
    assert!(named(&files.read(0, 1 << 20).unwrap_err()));
    assert!(named(&files.log_end_offset().unwrap_err()));
    drop(broker);
}

/// After a crash (no clean close) a cut-short tail ends the log, even with
/// a partition marker left in the partition's directory from a time it was
/// opened alone: in a broker's directory only the broker's marker counts
/// (the leftover file made the tail damage). After a clean close the same
/// tail is damage.
#[test]
fn after_a_crash_a_cut_short_tail_ends_the_log_whatever_a_leftover_partition_marker_says() {
    let (dir, broker, seg) = setup(&["one", "two"]);
    broker.close().unwrap();
    let marker = dir.path().join(".clean_shutdown");
    let clean = std::fs::read(&marker).unwrap();
    // A crash: no marker, the second batch half written.
    std::fs::remove_file(&marker).unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 5).unwrap();
    std::fs::write(dir.path().join("topics/t/0/.clean_shutdown"), b"left from a standalone open").unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    assert_eq!(data.holder(), None);
    let files = data.partition("t", 0).unwrap();
    assert_eq!(files.read(0, 1 << 20).unwrap().len(), 1);
    assert_eq!(files.log_end_offset().unwrap(), 1);
    // The broker's marker listing the partition: a clean close, so damage.
    std::fs::write(&marker, clean).unwrap();
    let files = data.partition("t", 0).unwrap();
    assert!(matches!(files.read(0, 1 << 20), Err(Error::Corrupt { .. })));
}

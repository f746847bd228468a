//! A cleanly closed broker keeps one clean marker for all its partitions:
//! open writes nothing (the marker stays until the first change), a close
//! with nothing changed writes nothing, and a crash after the first change
//! leaves no marker, so the next open recovers.

mod common;

use std::path::Path;

use streamlog::{Broker, BrokerOptions, Record, TopicConfig};

fn opts() -> BrokerOptions {
    BrokerOptions::default().maintenance_interval(None)
}

fn marker(dir: &Path) -> std::path::PathBuf {
    dir.join(".clean_shutdown")
}

#[test]
fn open_writes_nothing_and_the_first_write_removes_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    let t = broker.create_topic("t", TopicConfig::with_partitions(4)).unwrap();
    for p in t.partitions() {
        p.append(&[Record::new("a"), Record::new("b")]).unwrap();
    }
    broker.close().unwrap();
    assert!(marker(dir.path()).exists());
    for p in 0..4 {
        assert!(!dir.path().join(format!("topics/t/{p}/.clean_shutdown")).exists(), "no per-partition markers");
    }
    let written = std::fs::read(marker(dir.path())).unwrap();
    let modified = std::fs::metadata(marker(dir.path())).unwrap().modified().unwrap();

    // Open and close without a change: the marker is left as it was.
    let broker = Broker::open(dir.path(), opts()).unwrap();
    assert!(marker(dir.path()).exists(), "open changes nothing");
    assert_eq!(broker.topic("t").unwrap().end_offsets(), vec![2; 4]);
    broker.close().unwrap();
    assert_eq!(std::fs::read(marker(dir.path())).unwrap(), written);
    assert_eq!(std::fs::metadata(marker(dir.path())).unwrap().modified().unwrap(), modified);

    // The first write removes it; a crash now (the copy) must recover.
    let broker = Broker::open(dir.path(), opts()).unwrap();
    let part = broker.topic("t").unwrap().partition(2).unwrap();
    part.append(&[Record::new("c")]).unwrap();
    assert!(!marker(dir.path()).exists(), "removed before the first write");
    let crashed = tempfile::tempdir().unwrap();
    copy_tree(dir.path(), crashed.path());
    broker.close().unwrap();
    assert!(marker(dir.path()).exists());

    let reopened = Broker::open(crashed.path(), opts()).unwrap();
    assert_eq!(reopened.topic("t").unwrap().end_offsets(), vec![2, 2, 3, 2]);
    reopened.close().unwrap();
    let reopened = Broker::open(dir.path(), opts()).unwrap();
    let t = reopened.topic("t").unwrap();
    assert_eq!(t.end_offsets(), vec![2, 2, 3, 2]);
    assert_eq!(t.partition(2).unwrap().append(&[Record::new("d")]).unwrap().base_offset, 3);
    reopened.close().unwrap();
}

#[test]
fn a_damaged_marker_vouches_for_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    let t = broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    t.partition(0).unwrap().append(&[Record::new("a")]).unwrap();
    broker.close().unwrap();
    let mut b = std::fs::read(marker(dir.path())).unwrap();
    let last = b.len() - 5;
    b[last] ^= 0xff;
    std::fs::write(marker(dir.path()), b).unwrap();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    assert_eq!(broker.topic("t").unwrap().end_offsets(), vec![1, 0]);
    broker.close().unwrap();
}

/// What a kill -9 would leave: every file as it is now (the page cache
/// survives a process crash), but for the lock.
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else if e.file_name() != ".lock" {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// A broker's partition opened on its own (broker closed), which recovers
/// it and writes to it, voids the broker's marker, so the broker does not
/// trust a stale state.
#[test]
fn a_partition_changed_on_its_own_voids_the_broker_marker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    broker
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record::new("a")])
        .unwrap();
    broker.close().unwrap();
    assert!(marker(dir.path()).exists());
    let p = streamlog::Partition::open(dir.path().join("topics/t/0"), streamlog::PartitionOptions::default()).unwrap();
    p.append(&[Record::new("b")]).unwrap();
    assert!(!marker(dir.path()).exists(), "the broker's marker no longer vouches for this partition");
    p.close().unwrap();
    let broker = Broker::open(dir.path(), opts()).unwrap();
    assert_eq!(broker.topic("t").unwrap().end_offsets(), vec![2]);
    broker.close().unwrap();
}

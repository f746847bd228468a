//! One handle per directory: a second open fails with `Error::Locked`, from
//! this process or from another one.

use std::process::Command;

use streamlog::{Error, Partition, PartitionOptions};

/// flock(2) locks belong to the open file description, which a child forked
/// by another test shares until it execs: a lock closed in this process may
/// outlive its close by that long. The tests here run one at a time so that
/// "released on close" is what they observe.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn second_open_in_the_same_process_is_locked() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    let err = Partition::open(dir.path(), PartitionOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    p.close().unwrap();
    Partition::open(dir.path(), PartitionOptions::default()).unwrap();
}

#[test]
fn open_from_another_process_is_locked() {
    let _serial = serial();
    if let Ok(dir) = std::env::var("STREAMLOG_LOCK_CHILD") {
        let err = Partition::open(&dir, PartitionOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        println!("CHILD-SAW-LOCKED");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "open_from_another_process_is_locked", "--nocapture", "--test-threads=1"])
        .env("STREAMLOG_LOCK_CHILD", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("CHILD-SAW-LOCKED"), "{stdout}");
}

/// A broker holds one lock for its whole directory; a partition directory
/// inside it cannot be opened on its own while the broker is open, from
/// this process or another, and the broker does not open while one of its
/// partitions is open on its own.
#[test]
fn a_partition_of_an_open_broker_is_locked() {
    let _serial = serial();
    use streamlog::{Broker, BrokerOptions, TopicConfig};
    if let Ok(dir) = std::env::var("STREAMLOG_BROKER_LOCK_CHILD") {
        let err = Partition::open(&dir, PartitionOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        println!("CHILD-SAW-LOCKED");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let part_dir = dir.path().join("topics").join("t").join("1");
    let err = Partition::open(&part_dir, PartitionOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_partition_of_an_open_broker_is_locked", "--nocapture", "--test-threads=1"])
        .env("STREAMLOG_BROKER_LOCK_CHILD", &part_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("CHILD-SAW-LOCKED"), "{stdout}");
    broker.close().unwrap();

    // Closed broker: the partition opens on its own, and the broker waits.
    let p = Partition::open(&part_dir, PartitionOptions::default()).unwrap();
    let err = Broker::open(dir.path(), BrokerOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    p.close().unwrap();
    Broker::open(dir.path(), BrokerOptions::default()).unwrap().close().unwrap();
}

/// A broker's partitions take no lock files of their own: the number of
/// open descriptors does not grow by one per partition.
#[test]
fn broker_partitions_have_no_lock_files() {
    let _serial = serial();
    use streamlog::{Broker, BrokerOptions, TopicConfig};
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(3)).unwrap();
    for p in 0..3 {
        assert!(!dir.path().join("topics/t").join(p.to_string()).join(".lock").exists());
    }
    broker.close().unwrap();
}

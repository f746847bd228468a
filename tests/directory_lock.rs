//! One handle per directory: a second open fails with `Error::Locked`, from
//! this process or from another one.

use std::process::Command;

use streamlog::{Error, Partition, PartitionOptions};

#[test]
fn second_open_in_the_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    let err = Partition::open(dir.path(), PartitionOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    p.close().unwrap();
    Partition::open(dir.path(), PartitionOptions::default()).unwrap();
}

#[test]
fn open_from_another_process_is_locked() {
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

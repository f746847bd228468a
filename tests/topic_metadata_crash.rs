//! Topic metadata is written atomically: a crash before a creation's rename, in the middle of a delete, or of an `add_partitions`, leaves
//! the topic either whole or absent.

use std::fs;

use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};

#[test]
fn a_creation_that_crashed_before_its_rename_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic("kept", TopicConfig::with_partitions(2)).unwrap();
        b.create_topic("half", TopicConfig::with_partitions(2)).unwrap();
        b.close().unwrap();
    }
    // The state a crash before the creation's commit point (the rename of
    // its directory into place) leaves: the directory under its temporary
    // name, with or without its metadata.
    let half = dir.path().join("topics/half");
    let creating = dir.path().join("topics/~half");
    fs::rename(&half, &creating).unwrap();
    fs::create_dir(dir.path().join("topics/~other")).unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert_eq!(b.topics(), vec!["kept".to_owned()]);
    assert!(!creating.exists() && !half.exists(), "the leftovers are removed");
    assert!(!dir.path().join("topics/~other").exists());
    b.create_topic("half", TopicConfig::with_partitions(1)).unwrap();
}

#[test]
fn a_torn_metadata_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    drop(Broker::open(dir.path(), BrokerOptions::default()).unwrap().create_topic("t", TopicConfig::default()));
    let meta = dir.path().join("topics/t/topic.meta");
    let text = fs::read_to_string(&meta).unwrap();
    fs::write(&meta, &text[..text.len() / 2]).unwrap();
    let err = Broker::open(dir.path(), BrokerOptions::default()).unwrap_err();
    assert!(matches!(&err, streamlog::Error::Corrupt { path, .. } if *path == meta), "{err}");
}

#[test]
fn interrupted_delete_and_add_partitions_are_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
        b.producer().send(ProducerRecord::new("t", "x").partition(1)).unwrap();
        b.close().unwrap();
    }
    // A delete that moved the directory to the trash and crashed.
    fs::create_dir_all(dir.path().join("deleted/old-123/0")).unwrap();
    // Stray files are left alone.
    fs::write(dir.path().join("topics/.DS_Store"), "x").unwrap();
    // An add_partitions that created partition 2 but not the new metadata.
    fs::create_dir_all(dir.path().join("topics/t/2")).unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert_eq!(b.topics(), vec!["t".to_owned()]);
    assert!(!dir.path().join("deleted/old-123").exists());
    assert!(dir.path().join("topics/.DS_Store").exists());
    assert!(!dir.path().join("topics/t/2").exists());
    let t = b.topic("t").unwrap();
    assert_eq!(t.partition_count(), 2);
    assert_eq!(t.partition(1).unwrap().high_watermark(), 1);
}

//! Topics: create, list, reopen, add partitions, delete; bad input is typed.

use std::time::Duration;

use streamlog::{Broker, BrokerOptions, CleanupPolicy, Durability, Error, ProducerRecord, TopicConfig};

#[test]
fn topics_survive_close_and_reopen_with_their_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicConfig::with_partitions(4)
        .segment_bytes(1 << 20)
        .durability(Durability::Interval(Duration::from_millis(100)))
        .retention(Some(Duration::from_secs(3600)))
        .retention_bytes(Some(10 << 20))
        .cleanup_policy(CleanupPolicy::Compact);
    {
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic("orders", config.clone()).unwrap();
        b.create_topic("audit.log", TopicConfig::default()).unwrap();
        let p = b.producer();
        for i in 0..100 {
            p.send(ProducerRecord::new("orders", format!("v{i}")).key(format!("k{i}"))).unwrap();
        }
        b.close().unwrap();
    }
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert_eq!(b.topics(), vec!["audit.log".to_owned(), "orders".to_owned()]);
    let t = b.topic("orders").unwrap();
    assert_eq!(t.config(), config);
    assert_eq!(t.partition_count(), 4);
    assert_eq!(t.end_offsets().iter().sum::<u64>(), 100);
}

#[test]
fn add_partitions_only_grows() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    b.add_partitions("t", 5).unwrap();
    assert_eq!(b.topic("t").unwrap().partition_count(), 5);
    assert!(matches!(b.add_partitions("t", 5), Err(Error::InvalidConfig(_))));
    assert!(matches!(b.add_partitions("t", 3), Err(Error::InvalidConfig(_))));
    assert!(matches!(b.add_partitions("nope", 9), Err(Error::UnknownTopic { .. })));
    b.producer().send(ProducerRecord::new("t", "x").partition(4)).unwrap();
    drop(b);
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let t = b.topic("t").unwrap();
    assert_eq!(t.partition_count(), 5);
    assert_eq!(t.partition(4).unwrap().high_watermark(), 1);
}

#[test]
fn delete_topic_removes_files_and_handles_fail() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let t = b.create_topic("gone", TopicConfig::with_partitions(2)).unwrap();
    b.producer().send(ProducerRecord::new("gone", "x").partition(0)).unwrap();
    let held = t.partition(0).unwrap().read(0, 100).unwrap();
    b.delete_topic("gone").unwrap();
    assert!(b.topics().is_empty());
    assert!(!dir.path().join("topics/gone").exists());
    assert!(matches!(t.partition(0), Err(Error::UnknownTopic { .. })));
    assert!(matches!(b.producer().send(ProducerRecord::new("gone", "x")), Err(Error::UnknownTopic { .. })));
    assert!(matches!(b.delete_topic("gone"), Err(Error::UnknownTopic { .. })));
    // Records read before the delete are still readable.
    assert_eq!(held[0].records().next().unwrap().unwrap().value.as_deref(), Some(&b"x"[..]));
    // The name can be used again, from scratch.
    let t = b.create_topic("gone", TopicConfig::with_partitions(1)).unwrap();
    assert_eq!(t.partition(0).unwrap().high_watermark(), 0);
}

#[test]
fn bad_input_is_typed_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    for name in ["", ".", "..", "a b", "x/y", &"n".repeat(250)] {
        let err = b.create_topic(name, TopicConfig::default()).unwrap_err();
        assert!(matches!(&err, Error::InvalidTopicName { name: n, .. } if n == name), "{err}");
    }
    assert!(matches!(b.create_topic("t", TopicConfig::default()), Err(Error::TopicExists { .. })));
    assert!(matches!(b.create_topic("z", TopicConfig::with_partitions(0)), Err(Error::InvalidConfig(_))));
    let internal = streamlog::OFFSETS_TOPIC;
    assert!(matches!(b.producer().send(ProducerRecord::new(internal, "x")), Err(Error::InvalidConfig(_))));
    assert!(matches!(b.delete_topic(internal), Err(Error::InvalidConfig(_))));
    assert!(matches!(b.add_partitions(internal, 9), Err(Error::InvalidConfig(_))));
    let err = b.topic("missing").unwrap_err();
    assert!(matches!(&err, Error::UnknownTopic { topic } if topic == "missing"));
    assert!(err.to_string().contains("missing"));
    let err = b.topic("t").unwrap().partition(2).unwrap_err();
    assert!(matches!(err, Error::UnknownPartition { partition: 2, count: 2, .. }), "{err}");
    let err = b.producer().send(ProducerRecord::new("t", "x").partition(7)).unwrap_err();
    assert!(matches!(err, Error::UnknownPartition { partition: 7, .. }));
    assert_eq!(b.topics(), vec!["t".to_owned()]);
    assert_eq!(b.topic("t").unwrap().end_offsets(), vec![0, 0]);
}

#[test]
fn directories_that_are_not_ours_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = Broker::open(dir.path(), BrokerOptions::default()).unwrap_err();
    assert!(matches!(&err, Error::NotAStreamlogDirectory { path } if path == dir.path()), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "hello");

    let newer = tempfile::tempdir().unwrap();
    drop(Broker::open(newer.path(), BrokerOptions::default()).unwrap());
    std::fs::write(newer.path().join("streamlog.meta"), "streamlog-broker 7\n").unwrap();
    let err = Broker::open(newer.path(), BrokerOptions::default()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { version: 7, .. }), "{err}");

    assert!(matches!(Broker::open("", BrokerOptions::default()), Err(Error::InvalidConfig(_))));
}

#[test]
fn one_broker_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert!(matches!(Broker::open(dir.path(), BrokerOptions::default()), Err(Error::Locked { .. })));
    drop(b);
    Broker::open(dir.path(), BrokerOptions::default()).unwrap();
}

#[test]
fn auto_create_on_first_produce() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert!(matches!(b.producer().send(ProducerRecord::new("auto", "x")), Err(Error::UnknownTopic { .. })));
    drop(b);
    let opts = BrokerOptions::default().auto_create_topics(true).default_topic_config(TopicConfig::with_partitions(3));
    let b = Broker::open(dir.path(), opts).unwrap();
    let meta = b.producer().send(ProducerRecord::new("auto", "x")).unwrap();
    assert_eq!(&*meta.topic, "auto");
    assert_eq!(b.topic("auto").unwrap().partition_count(), 3);
    assert!(matches!(b.producer().send(ProducerRecord::new("bad name", "x")), Err(Error::InvalidTopicName { .. })));
}

#[test]
fn a_closed_broker_refuses_calls() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::default()).unwrap();
    let producer = b.producer();
    b.close().unwrap();
    assert!(matches!(producer.send(ProducerRecord::new("t", "x")), Err(Error::Closed)));
}

#[test]
fn close_releases_the_directory_even_with_handles_alive() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let topic = b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let producer = b.producer();
    producer.send(ProducerRecord::new("t", "x").partition(1)).unwrap();
    let part = topic.partition(1).unwrap();
    b.close().unwrap();
    // Old handles fail cleanly; the directory opens again at once.
    assert!(matches!(producer.send(ProducerRecord::new("t", "y")), Err(Error::Closed)));
    assert!(matches!(part.read(0, 100), Err(Error::Closed)));
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert_eq!(b.topic("t").unwrap().partition(1).unwrap().high_watermark(), 1);
}

#[test]
fn a_partition_handle_that_outlived_its_broker_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1).segment_bytes(4096)).unwrap();
    let p = b.producer();
    for i in 0..300 {
        p.send(ProducerRecord::new("t", vec![i as u8; 100])).unwrap();
    }
    let stale = b.topic("t").unwrap().partition(0).unwrap();
    b.close().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert!(matches!(stale.delete_records(150), Err(Error::Closed)));
    assert!(matches!(stale.apply_retention(i64::MAX, Some(Duration::from_secs(1)), None), Err(Error::Closed)));
    let fresh = b.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(fresh.log_start_offset(), 0);
    assert!(!fresh.read(0, 100).unwrap().is_empty());
}

#[test]
fn odd_but_valid_names_and_stray_files_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic(".deleted-x", TopicConfig::default()).unwrap();
        b.producer().send(ProducerRecord::new(".deleted-x", "kept")).unwrap();
    }
    std::fs::write(dir.path().join("topics/.DS_Store"), "x").unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert_eq!(b.topic(".deleted-x").unwrap().end_offsets(), vec![1]);
}

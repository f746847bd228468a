//! Brokers for tests: `Broker::temporary`, `BrokerOptions::fsync(false)`,
//! and `Broker` as a cheap, cloneable handle.

use std::time::{Duration, Instant};

use streamlog::{Broker, BrokerOptions, Error, ProducerRecord, Record, TopicConfig};

/// Waits up to 10 s for `path` to be gone (temporary directories are
/// removed on a background thread).
fn gone(path: &std::path::Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while path.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn a_temporary_broker_is_a_real_log_removed_at_close() {
    let broker = Broker::temporary().unwrap();
    let dir = broker.dir().to_owned();
    assert!(dir.starts_with(std::env::temp_dir()));
    let topic = broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    broker.producer().send(ProducerRecord::new("t", "v").partition(1)).unwrap();
    assert_eq!(topic.partition(1).unwrap().high_watermark(), 1);
    assert!(dir.join("topics/t/1").is_dir());
    // Two at once never share a directory.
    let other = Broker::temporary().unwrap();
    assert_ne!(other.dir(), dir);
    broker.close().unwrap();
    assert!(gone(&dir), "{} still exists", dir.display());
    let other_dir = other.dir().to_owned();
    drop(other);
    assert!(gone(&other_dir));
}

#[test]
fn a_broker_without_fsync_reopens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BrokerOptions::default().fsync(false);
    let broker = Broker::open(dir.path(), opts.clone()).unwrap();
    let t = broker.create_topic("t", TopicConfig::with_partitions(1).segment_bytes(4096)).unwrap();
    for i in 0..100u32 {
        t.partition(0).unwrap().append(&[Record::new(vec![i as u8; 200])]).unwrap();
    }
    assert!(t.partition(0).unwrap().segment_count() > 1, "rolled (a roll syncs, unless fsync is off)");
    broker.close().unwrap();
    // A durable broker may open it afterwards: the registration is gone.
    let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    assert_eq!(broker.topic("t").unwrap().partition(0).unwrap().high_watermark(), 100);
    broker.close().unwrap();
}

#[test]
fn clones_share_one_broker_and_close_closes_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().fsync(false)).unwrap();
    let a = broker.clone();
    let b = broker.clone();
    // Dropping a clone closes nothing.
    drop(a);
    broker.create_topic("t", TopicConfig::default()).unwrap();
    assert_eq!(b.topics(), vec!["t".to_owned()]);
    // Closing any clone closes the broker for every one of them.
    b.close().unwrap();
    assert!(matches!(broker.create_topic("u", TopicConfig::default()), Err(Error::Closed)));
    assert!(matches!(broker.stats(), Err(Error::Closed)));
    // The directory is free again, and closing twice does nothing.
    let again = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    broker.close().unwrap();
    again.close().unwrap();
}

#[test]
fn dropping_the_last_clone_closes_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let clone = broker.clone();
    let producer = broker.producer();
    drop(broker);
    // Still open: a clone lives.
    assert!(matches!(Broker::open(dir.path(), BrokerOptions::default()), Err(Error::Locked { .. })));
    drop(clone);
    // The producer outlives the broker but holds no lock.
    assert!(matches!(producer.send(ProducerRecord::new("t", "v")), Err(Error::Closed)));
    Broker::open(dir.path(), BrokerOptions::default()).unwrap().close().unwrap();
}

#[test]
fn broker_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Broker>();
}

#[test]
fn the_offsets_topic_is_made_by_the_first_commit() {
    let dir = tempfile::tempdir().unwrap();
    let offsets_dir = dir.path().join("topics").join(streamlog::OFFSETS_TOPIC);
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    assert!(!offsets_dir.exists(), "a broker that never commits makes no offsets topic");
    assert!(matches!(b.create_topic(streamlog::OFFSETS_TOPIC, TopicConfig::default()), Err(Error::InvalidConfig(_))));
    let tp = streamlog::TopicPartition::new("t", 0);
    let mut c = b.consumer(streamlog::ConsumerConfig::with_group("g")).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.commit_offsets(&[(tp.clone(), 0)]).unwrap();
    assert!(offsets_dir.is_dir());
    drop(c);
    b.close().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    let c = b.consumer(streamlog::ConsumerConfig::with_group("g")).unwrap();
    assert_eq!(c.committed(&tp).unwrap(), Some(0));
    drop(c);
    b.close().unwrap();
}

//! A consumer with manually assigned partitions: poll, seek, positions,
//! pause/resume, watermarks, lag, time lookups, and typed bad input.

use std::time::{Duration, Instant};

use streamlog::{
    Broker, BrokerOptions, Consumer, ConsumerConfig, Error, OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

fn setup(records: u64) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    let p = b.producer();
    for i in 0..records {
        p.send(ProducerRecord::new("t", format!("v{i}")).partition((i % 2) as u32).timestamp(1000 + i as i64)).unwrap();
    }
    (dir, b)
}

fn earliest(b: &Broker) -> Consumer {
    b.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap()
}

fn drain(c: &mut Consumer) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    loop {
        let recs = c.poll(Duration::from_millis(20)).unwrap();
        if recs.is_empty() {
            return out;
        }
        out.extend(recs.iter().map(|r| (r.partition, r.offset)));
    }
}

#[test]
fn assigned_partitions_are_read_in_order_and_fairly() {
    let (_d, b) = setup(2000);
    let mut c =
        b.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).max_poll_records(100)).unwrap();
    c.assign(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)]).unwrap();
    let first = c.poll(Duration::from_secs(1)).unwrap();
    let second = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(first.len(), 100);
    assert_ne!(first[0].partition, second[0].partition, "polls take turns across partitions");
    let mut all: Vec<(u32, u64)> = first.iter().chain(&second).map(|r| (r.partition, r.offset)).collect();
    all.extend(drain(&mut c));
    assert_eq!(all.len(), 2000);
    for p in 0..2 {
        let offs: Vec<u64> = all.iter().filter(|(q, _)| *q == p).map(|(_, o)| *o).collect();
        assert_eq!(offs, (0..1000).collect::<Vec<_>>());
    }
}

#[test]
fn seek_position_pause_and_watermarks() {
    let (_d, b) = setup(20);
    let tp0 = TopicPartition::new("t", 0);
    let tp1 = TopicPartition::new("t", 1);
    let mut c = earliest(&b);
    c.assign(&[tp0.clone(), tp1.clone()]).unwrap();
    assert_eq!(c.position(&tp0).unwrap(), 0);
    assert_eq!(c.watermarks(&tp0).unwrap(), (0, 10));
    assert_eq!(c.lag(&tp0).unwrap(), 10);
    c.seek(&tp0, 7).unwrap();
    c.pause(std::slice::from_ref(&tp1)).unwrap();
    assert_eq!(c.paused(), vec![tp1.clone()]);
    let got = drain(&mut c);
    assert_eq!(got, vec![(0, 7), (0, 8), (0, 9)], "paused partitions return nothing");
    c.resume(std::slice::from_ref(&tp1)).unwrap();
    c.seek_to_end(std::slice::from_ref(&tp1)).unwrap();
    assert!(drain(&mut c).is_empty());
    c.seek_to_beginning(&[]).unwrap();
    assert_eq!(drain(&mut c).len(), 20);
    assert_eq!(c.lag(&tp1).unwrap(), 0);
    let times = c.offsets_for_times(&[(tp0.clone(), 1004), (tp1.clone(), 5000)]).unwrap();
    assert_eq!(times, vec![(tp0, Some(2)), (tp1, None)]);
}

#[test]
fn latest_reset_sees_only_new_records_and_poll_wakes_on_append() {
    let (_d, b) = setup(10);
    let mut c = b.consumer(ConsumerConfig::default()).unwrap();
    c.assign(&[TopicPartition::new("t", 1)]).unwrap();
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
    let producer = b.producer();
    let sender = std::thread::spawn(move || {
        // Long enough for the consumer to stop spinning and park.
        std::thread::sleep(Duration::from_millis(100));
        producer.send(ProducerRecord::new("t", "late").partition(1)).unwrap();
        Instant::now()
    });
    let recs = c.poll(Duration::MAX).unwrap();
    let returned = Instant::now();
    let sent = sender.join().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value.as_deref(), Some(&b"late"[..]));
    // Woken by the append: well within a scheduler tick of it, not at the
    // 30 s timeout (the latency bench measures the real figure, ~20 µs).
    let latency = returned.saturating_duration_since(sent);
    assert!(latency < Duration::from_millis(200), "woken {latency:?} after the send");
}

#[test]
fn bad_input_is_typed() {
    let (_d, b) = setup(4);
    let mut c = earliest(&b);
    assert!(matches!(c.assign(&[TopicPartition::new("nope", 0)]), Err(Error::UnknownTopic { .. })));
    assert!(matches!(c.assign(&[TopicPartition::new("t", 9)]), Err(Error::UnknownPartition { .. })));
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let err = c.seek(&TopicPartition::new("t", 1), 0).unwrap_err();
    assert!(matches!(err, Error::NotAssigned { partition: 1, .. }), "{err}");
    assert!(matches!(c.commit(), Err(Error::InvalidConfig(_))), "no group id, no commits");
    assert!(matches!(c.subscribe(&["t"]), Err(Error::InvalidConfig(_))));
    let mut g = b.consumer(ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest)).unwrap();
    // A missing topic is fine (Kafka waits for it); a name no topic can have is not.
    assert!(matches!(g.subscribe(&["not a topic"]), Err(Error::InvalidTopicName { .. })));
    g.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let err = g.commit_offsets(&[(TopicPartition::new("t", 0), 99)]).unwrap_err();
    assert!(matches!(err, Error::OffsetOutOfRange { requested: 99, end: 2, .. }), "{err}");
    for bad in [
        ConsumerConfig::default().max_poll_records(0),
        ConsumerConfig::with_group(""),
        ConsumerConfig::default().max_poll_interval(Duration::ZERO),
    ] {
        assert!(matches!(b.consumer(bad), Err(Error::InvalidConfig(_))));
    }
    let mut reset_error = b.consumer(ConsumerConfig::with_group("g2").auto_offset_reset(OffsetReset::Error)).unwrap();
    reset_error.assign(&[TopicPartition::new("t", 0)]).unwrap();
    assert!(matches!(reset_error.poll(Duration::ZERO), Err(Error::NoOffset { .. })));
    drop(b);
    assert!(matches!(c.poll(Duration::ZERO), Err(Error::Closed)), "the broker is closed");
}

#[test]
fn an_error_on_one_partition_does_not_lose_records_of_another() {
    let (_d, b) = setup(20);
    let cfg = ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Error).enable_auto_commit(false);
    let tp0 = TopicPartition::new("t", 0);
    let mut c = b.consumer(cfg.clone()).unwrap();
    c.assign(&[tp0.clone(), TopicPartition::new("t", 1)]).unwrap();
    c.commit_offsets(&[(tp0.clone(), 5)]).unwrap();
    // Partition 1 has no commit and the reset is `Error`: whichever is
    // fetched first, partition 0's records are returned, not dropped.
    let mut got = Vec::new();
    let mut errors = 0;
    for _ in 0..4 {
        match c.poll(Duration::ZERO) {
            Ok(recs) => got.extend(recs.iter().map(|r| (r.partition, r.offset))),
            Err(Error::NoOffset { partition: 1, .. }) => errors += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, (5..10).map(|o| (0, o)).collect::<Vec<_>>());
    assert!(errors > 0);
}

#[test]
fn seeking_past_the_end_resets_and_deleted_topics_drop_out() {
    let (_d, b) = setup(10);
    let tp = TopicPartition::new("t", 0);
    let mut c = earliest(&b);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 1000).unwrap();
    assert_eq!(c.poll(Duration::from_millis(50)).unwrap().len(), 5, "reset to the earliest offset");
    b.delete_topic("t").unwrap();
    let start = Instant::now();
    // Told once, at once; the deleted partition is dropped.
    let r = c.poll(Duration::from_millis(300));
    assert!(matches!(&r, Err(Error::UnknownTopic { topic }) if topic == "t"), "{r:?}");
    assert!(c.assignment().is_empty(), "the deleted partition is dropped");
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Assigning a partition again after its topic was deleted and made anew
/// reads the new topic's log, from the reset; before, the assignment kept
/// the old (closed) log and its position, the next poll reported the topic
/// unknown and dropped the partition, and the new records never came.
#[test]
fn assigning_again_after_the_topic_was_made_anew_reads_the_new_log() {
    let (_dir, b) = setup(10);
    let tp = TopicPartition::new("t", 0);
    let mut c = earliest(&b);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(c.poll(Duration::ZERO).unwrap().len(), 5);
    b.delete_topic("t").unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    b.producer().send(ProducerRecord::new("t", "new").partition(0)).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let got = c.poll(Duration::ZERO).unwrap();
    assert_eq!(got.iter().map(|r| (r.offset, r.value.clone())).collect::<Vec<_>>(), [(0, Some("new".into()))]);
}

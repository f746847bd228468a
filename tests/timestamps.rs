//! Issue 11 item 5: a topic's timestamp type (`CreateTime` or
//! `LogAppendTime`) and the validation of producer timestamps.

use std::sync::Arc;
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, Error, MAX_TIMESTAMP, ManualClock, OffsetReset, Partition, PartitionOptions,
    ProducerRecord, Record, TimestampType, TopicConfig, TopicPartition,
};

const DAY: Duration = Duration::from_secs(24 * 3600);
const NOW: i64 = 1_800_000_000_000;

/// Twelve segments of events stamped 30 days before the clock, imported
/// into a topic with the default 7-day retention; then a maintenance pass.
/// Returns the segments left and what a consumer reads back.
fn import_old_events(timestamp_type: TimestampType) -> (usize, Vec<(i64, TimestampType)>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let b = Broker::open(dir.path(), BrokerOptions::default().clock(clock.clone()).maintenance_interval(None)).unwrap();
    let config = TopicConfig::default().segment_bytes(4096).timestamp_type(timestamp_type);
    assert_eq!(config.retention, Some(7 * DAY));
    b.create_topic("imported", config).unwrap();
    let p = b.producer();
    let month_ago = NOW - 30 * DAY.as_millis() as i64;
    let log = b.topic("imported").unwrap().partition(0).unwrap();
    let mut i = 0i64;
    while log.segment_count() < 12 {
        p.send(ProducerRecord::new("imported", vec![0u8; 200]).timestamp(month_ago + i)).unwrap();
        i += 1;
    }
    clock.advance(Duration::from_secs(60));
    b.run_maintenance().unwrap();
    let mut c = b.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    c.assign(&[TopicPartition::new("imported", 0)]).unwrap();
    let mut seen = Vec::new();
    loop {
        let recs = c.poll(Duration::from_millis(10)).unwrap();
        if recs.is_empty() {
            break;
        }
        seen.extend(recs.iter().map(|r| (r.timestamp, r.timestamp_type)));
    }
    (log.segment_count(), seen)
}

#[test]
fn old_events_imported_into_a_log_append_time_topic_survive_retention() {
    let (segments, seen) = import_old_events(TimestampType::LogAppendTime);
    assert_eq!(segments, 12, "7-day retention must not delete records appended a minute ago");
    assert!(seen.len() > 100);
    assert!(seen.iter().all(|&(ts, tt)| ts == NOW && tt == TimestampType::LogAppendTime), "{:?}", &seen[..3]);
}

#[test]
fn old_events_in_a_create_time_topic_expire_by_their_own_timestamps() {
    // The contrast (and the default): event time drives retention.
    let (segments, seen) = import_old_events(TimestampType::CreateTime);
    assert_eq!(segments, 1, "all sealed segments expired");
    assert!(seen.iter().all(|&(ts, tt)| ts < NOW && tt == TimestampType::CreateTime));
}

#[test]
fn out_of_range_timestamps_are_rejected_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let p = Partition::open(dir.path(), PartitionOptions::default().clock(clock.clone())).unwrap();
    let invalid = |ts: i64| matches!(p.append(&[Record::new("x").with_timestamp(ts)]), Err(Error::InvalidTimestamp { timestamp, .. }) if timestamp == ts);
    // Without windows (the default) every timestamp of years 1970..=9999 is
    // accepted, as before.
    for ts in [0, 1, NOW - 3650 * DAY.as_millis() as i64, NOW + 3650 * DAY.as_millis() as i64, MAX_TIMESTAMP] {
        p.append(&[Record::new("ok").with_timestamp(ts)]).unwrap();
    }
    for ts in [-2, -1_000, i64::MIN, MAX_TIMESTAMP + 1, i64::MAX] {
        assert!(invalid(ts), "{ts} accepted");
    }
    // -1 is Kafka's "no timestamp": it takes the clock's time.
    let hw = p.high_watermark();
    p.append(&[Record::new("none").with_timestamp(-1)]).unwrap();
    assert_eq!(p.read(hw, 1 << 20).unwrap()[0].records().next().unwrap().unwrap().timestamp, NOW);
    // A bad record anywhere in a batch rejects the whole batch.
    let hw = p.high_watermark();
    let batch = [Record::new("a").with_timestamp(NOW), Record::new("b").with_timestamp(-5)];
    assert!(matches!(p.append(&batch), Err(Error::InvalidTimestamp { timestamp: -5, .. })));
    assert_eq!(p.high_watermark(), hw);

    // Windows around the clock, like Kafka's message.timestamp.before/after.max.ms.
    let windowed = PartitionOptions::default()
        .clock(clock.clone())
        .timestamp_before_max(Some(DAY))
        .timestamp_after_max(Some(Duration::from_secs(3600)));
    p.update_options(&windowed).unwrap();
    p.append(&[Record::new("ok").with_timestamp(NOW - DAY.as_millis() as i64)]).unwrap();
    p.append(&[Record::new("ok").with_timestamp(NOW + 3_600_000)]).unwrap();
    assert!(invalid(NOW - DAY.as_millis() as i64 - 1));
    assert!(invalid(NOW + 3_600_001));
    assert!(invalid(0));
    // The window moves with the clock.
    clock.advance(2 * DAY);
    assert!(invalid(NOW));
    p.append(&[Record::new("ok")]).unwrap();
    // LogAppendTime ignores the producer's timestamps, so none is rejected
    // by the windows (an out-of-range one is still nothing the log stores).
    p.update_options(&windowed.clone().timestamp_type(TimestampType::LogAppendTime)).unwrap();
    let hw = p.high_watermark();
    p.append(&[Record::new("old").with_timestamp(0), Record::new("far").with_timestamp(i64::MAX)]).unwrap();
    let batch = &p.read(hw, 1 << 20).unwrap()[0];
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    let now = NOW + 2 * DAY.as_millis() as i64;
    assert!(batch.records().all(|r| r.unwrap().timestamp == now));
    p.close().unwrap();
}

#[test]
fn the_timestamp_type_is_stored_per_batch_and_survives_alter_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let opts = BrokerOptions::default().clock(clock.clone()).maintenance_interval(None);
    let b = Broker::open(dir.path(), opts.clone()).unwrap();
    b.create_topic("t", TopicConfig::default()).unwrap();
    let p = b.producer();
    p.send(ProducerRecord::new("t", "created").timestamp(5)).unwrap();
    // Switch the topic to LogAppendTime: only later batches are stamped.
    let config = b.topic("t").unwrap().config().timestamp_type(TimestampType::LogAppendTime);
    b.alter_topic("t", config).unwrap();
    p.send(ProducerRecord::new("t", "appended").timestamp(5)).unwrap();
    b.close().unwrap();

    let b = Broker::open(dir.path(), opts).unwrap();
    assert_eq!(b.topic("t").unwrap().config().timestamp_type, TimestampType::LogAppendTime);
    let mut c = b.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(c.poll(Duration::from_secs(1)).unwrap().iter().map(|r| (r.timestamp, r.timestamp_type)));
    }
    assert_eq!(got, vec![(5, TimestampType::CreateTime), (NOW, TimestampType::LogAppendTime)]);
    // After a reopen, new appends still follow the stored setting.
    p_send_and_check(&b);
}

fn p_send_and_check(b: &Broker) {
    let log = b.topic("t").unwrap().partition(0).unwrap();
    let hw = log.high_watermark();
    b.producer().send(ProducerRecord::new("t", "again").timestamp(7)).unwrap();
    let batch = &log.read(hw, 1 << 20).unwrap()[0];
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(batch.records().next().unwrap().unwrap().timestamp, NOW);
}

#[test]
fn compaction_keeps_a_batchs_timestamp_type() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let opts = PartitionOptions::default().clock(clock).timestamp_type(TimestampType::LogAppendTime);
    let p = Partition::open(dir.path(), opts).unwrap();
    // One batch with a superseded key, so compaction must rewrite it.
    p.append(&[Record::new("v1").with_key("k"), Record::new("w").with_key("other")]).unwrap();
    p.append(&[Record::new("v2").with_key("k")]).unwrap();
    p.roll().unwrap();
    let copts = streamlog::CompactionOptions { min_cleanable_dirty_ratio: 0.0, ..Default::default() };
    let stats = p.compact(NOW, &copts).unwrap();
    assert!(stats.records_removed > 0, "{stats:?}");
    for b in p.read(p.log_start_offset(), 1 << 20).unwrap() {
        assert_eq!(b.timestamp_type(), TimestampType::LogAppendTime);
    }
    p.verify().unwrap();
}

//! The batching producer: records from many threads and tasks land, each
//! delivery future tells where, `flush` waits for all, the buffer bound
//! pushes back (`QueueFull`, or a send that waits), and a failed append is
//! reported to its records.

use std::time::Duration;

use streamlog::{BatchingConfig, Broker, BrokerOptions, Error, ProducerRecord, TopicConfig};

fn broker() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(3)).unwrap();
    (dir, b)
}

#[test]
fn records_from_many_threads_land_once_each_in_order_per_thread() {
    let (_dir, b) = broker();
    let producer = b.batching_producer(BatchingConfig::default().linger(Duration::from_millis(2))).unwrap();
    let per_thread = 5_000;
    let deliveries: Vec<Vec<_>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let producer = producer.clone();
                s.spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            producer.send(ProducerRecord::new("t", format!("{t}-{i}")).key(format!("k{t}"))).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    producer.flush();
    assert_eq!(producer.in_flight(), 0);
    let topic = b.topic("t").unwrap();
    let total: u64 = (0..3).map(|p| topic.partition(p).unwrap().high_watermark()).sum();
    assert_eq!(total, 4 * per_thread as u64);
    for list in deliveries {
        let metas: Vec<_> = list.into_iter().map(|d| d.wait().unwrap()).collect();
        // One key per thread: one partition, offsets increasing.
        assert!(metas.windows(2).all(|w| w[0].partition == w[1].partition && w[0].offset < w[1].offset));
    }
    producer.close();
}

#[test]
fn a_full_buffer_pushes_back() {
    let (_dir, b) = broker();
    // A long linger keeps the first records buffered.
    let producer =
        b.batching_producer(BatchingConfig::default().linger(Duration::from_secs(60)).max_queued(2)).unwrap();
    let d1 = producer.try_send(ProducerRecord::new("t", "1").partition(0)).unwrap();
    let _d2 = producer.try_send(ProducerRecord::new("t", "2").partition(0)).unwrap();
    assert!(matches!(producer.try_send(ProducerRecord::new("t", "3")), Err(Error::QueueFull { max: 2 })));
    // An async send waits for room; a flush makes it.
    let p2 = producer.clone();
    let t = std::thread::spawn(move || {
        futures_executor::block_on(async { p2.send_async(ProducerRecord::new("t", "3").partition(0)).await?.await })
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "the send did not wait for room");
    producer.flush();
    assert_eq!(d1.wait().unwrap().offset, 0);
    // The flush may already have sent it (it drains every clone's buffer).
    while producer.in_flight() == 0 && !t.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.flush();
    assert_eq!(t.join().unwrap().unwrap().offset, 2);
    drop(producer); // joins the thread
    assert_eq!(b.topic("t").unwrap().partition(0).unwrap().high_watermark(), 3);
}

#[test]
fn delivery_futures_on_tokio_and_a_failed_append() {
    let (_dir, b) = broker();
    let producer = b.batching_producer(BatchingConfig::default().linger(Duration::from_millis(1))).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let d = producer.send_async(ProducerRecord::new("t", "x").partition(2)).await.unwrap();
        let m = d.await.unwrap();
        assert_eq!((m.partition, m.offset), (2, 0));
    });
    // A record too large for a segment fails its batch, and only its own.
    b.create_topic("small", TopicConfig::with_partitions(1).segment_bytes(64 << 10)).unwrap();
    let bad = producer.send(ProducerRecord::new("small", vec![0u8; 100 << 10])).unwrap();
    let good = producer.send(ProducerRecord::new("t", "ok").partition(0)).unwrap();
    assert!(matches!(bad.wait(), Err(Error::BatchFailed(e)) if matches!(*e, Error::RecordTooLarge { .. })));
    assert_eq!(good.wait().unwrap().offset, 0);
}

#[test]
fn an_idle_clones_buffer_is_sent_after_linger() {
    let (_dir, b) = broker();
    let producer = b.batching_producer(BatchingConfig::default().linger(Duration::from_millis(20))).unwrap();
    let idle = producer.clone();
    let d = idle.send(ProducerRecord::new("t", "x").partition(1)).unwrap();
    // Nobody flushes and the clone sends nothing more: the background thread does.
    let started = std::time::Instant::now();
    assert_eq!(d.wait().unwrap().offset, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(producer.in_flight(), 0);
    drop(idle);
    producer.close();
}

#[test]
fn flush_sends_every_clones_buffer() {
    let (_dir, b) = broker();
    let producer = b.batching_producer(BatchingConfig::default().linger(Duration::from_secs(60))).unwrap();
    let clones: Vec<_> = (0..3).map(|_| producer.clone()).collect();
    let deliveries: Vec<_> = clones
        .iter()
        .enumerate()
        .map(|(i, c)| c.send(ProducerRecord::new("t", format!("{i}")).partition(i as u32)).unwrap())
        .collect();
    assert_eq!(producer.in_flight(), 3);
    // Another clone's flush sends them (the linger is a minute).
    producer.flush();
    assert_eq!(producer.in_flight(), 0);
    let topic = b.topic("t").unwrap();
    for (i, d) in deliveries.into_iter().enumerate() {
        let m = d.wait().unwrap();
        assert_eq!((m.partition, m.offset), (i as u32, 0));
        assert_eq!(topic.partition(i as u32).unwrap().high_watermark(), 1);
    }
}

#[test]
fn dropping_a_clone_sends_what_it_buffered() {
    let (_dir, b) = broker();
    let producer = b.batching_producer(BatchingConfig::default().linger(Duration::from_secs(60))).unwrap();
    let clone = producer.clone();
    let d = clone.send(ProducerRecord::new("t", "x").partition(2)).unwrap();
    let d2 = clone.send(ProducerRecord::new("t", "y").partition(2)).unwrap();
    drop(clone);
    assert_eq!(b.topic("t").unwrap().partition(2).unwrap().high_watermark(), 2);
    assert_eq!(d.wait().unwrap().offset, 0);
    assert_eq!(d2.wait().unwrap().offset, 1);
    assert_eq!(producer.in_flight(), 0);
}

#[test]
fn blocking_sends_from_many_clones_stay_within_the_bound() {
    let (_dir, b) = broker();
    let max = 10;
    // A long linger: only full buffers, sends waiting for room and the final flush send anything.
    let producer =
        b.batching_producer(BatchingConfig::default().linger(Duration::from_secs(60)).max_queued(max)).unwrap();
    let per_thread = 2_000;
    std::thread::scope(|s| {
        for t in 0..4 {
            let producer = producer.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    drop(producer.send(ProducerRecord::new("t", format!("{i}")).key(format!("k{t}"))).unwrap());
                    assert!(producer.in_flight() <= max);
                    if i % 100 == 0 {
                        // The non-blocking call fails or fits, never overshoots.
                        match producer.try_send(ProducerRecord::new("t", "extra").key(format!("k{t}"))) {
                            Ok(_) | Err(Error::QueueFull { max: 10 }) => {}
                            Err(e) => panic!("unexpected {e}"),
                        }
                        assert!(producer.in_flight() <= max);
                    }
                }
            });
        }
    });
    producer.flush();
    assert_eq!(producer.in_flight(), 0);
    let topic = b.topic("t").unwrap();
    let total: u64 = (0..3).map(|p| topic.partition(p).unwrap().high_watermark()).sum();
    assert!(total >= 4 * per_thread as u64 && total <= 4 * (per_thread as u64 + per_thread as u64 / 100));
}

#[test]
fn full_batches_appended_by_the_sender_keep_the_order_of_sends() {
    let (_dir, b) = broker();
    // Batches of a few records: most are appended by the send that fills
    // them, the rest by the linger thread and the final flush.
    let producer =
        b.batching_producer(BatchingConfig::default().linger(Duration::from_micros(200)).batch_size(40)).unwrap();
    let per_thread = 3_000u32;
    std::thread::scope(|s| {
        for t in 0..4 {
            let producer = producer.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    let r = ProducerRecord::new("t", i.to_be_bytes().to_vec()).key(format!("thread-{t}"));
                    drop(producer.send(r).unwrap());
                }
            });
        }
    });
    producer.flush();
    let topic = b.topic("t").unwrap();
    let mut next = std::collections::HashMap::new();
    for p in 0..3 {
        let log = topic.partition(p).unwrap();
        for batch in log.read(0, usize::MAX).unwrap() {
            for r in batch.records() {
                let r = r.unwrap();
                let key = r.key.clone().unwrap();
                let v = u32::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
                let expected = next.entry(key).or_insert(0u32);
                assert_eq!(v, *expected, "out of order");
                *expected += 1;
            }
        }
    }
    assert!(next.values().all(|&n| n == per_thread));
}

#[test]
fn sync_partitions_are_appended_off_the_senders_thread() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    b.create_topic("s", TopicConfig::with_partitions(2).durability(streamlog::Durability::Sync)).unwrap();
    let producer =
        b.batching_producer(BatchingConfig::default().linger(Duration::from_secs(60)).batch_size(200)).unwrap();
    let deliveries: Vec<_> = (0..50u32)
        .map(|i| producer.send(ProducerRecord::new("s", vec![i as u8; 20]).partition(i % 2)).unwrap())
        .collect();
    producer.flush();
    assert_eq!(producer.in_flight(), 0);
    for (i, d) in deliveries.into_iter().enumerate() {
        let m = d.wait().unwrap();
        assert_eq!((m.partition, m.offset), (i as u32 % 2, i as u64 / 2));
    }
}

#[test]
fn a_failed_send_keeps_no_room() {
    let (_dir, b) = broker();
    let producer = b.batching_producer(BatchingConfig::default().max_queued(64)).unwrap();
    let other = producer.clone();
    for _ in 0..3 {
        assert!(matches!(other.try_send(ProducerRecord::new("missing", "x")), Err(Error::UnknownTopic { .. })));
    }
    // The failed clone holds no room: another fills the whole bound.
    let held = producer.clone();
    let deliveries: Vec<_> =
        (0..64).map(|i| held.try_send(ProducerRecord::new("t", format!("{i}")).partition(0)).unwrap()).collect();
    assert_eq!(producer.in_flight(), 64);
    producer.flush();
    assert_eq!(deliveries.into_iter().last().unwrap().wait().unwrap().offset, 63);
    drop(other);
}

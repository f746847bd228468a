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
    while producer.in_flight() == 0 {
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

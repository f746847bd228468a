//! Async sends: with `Durability::Sync` the future resolves once a sync
//! covers the record (shared between concurrent sends), and the executor's
//! thread is never blocked for it; with `Os` it resolves at its first poll.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use common::on_every_executor;
use streamlog::{Broker, BrokerOptions, Durability, Partition, PartitionOptions, ProducerRecord, Record, TopicConfig};

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn an_async_send_to_a_sync_topic_awaits_the_sync() {
    on_every_executor(|| async {
        let dir = tempfile::tempdir().unwrap();
        let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
        b.create_topic("s", TopicConfig::with_partitions(1).durability(Durability::Sync)).unwrap();
        let producer = b.producer();
        // Many sends in flight at once from one task: their futures wait
        // together, and all resolve with their offsets.
        let futures: Vec<_> = (0..200).map(|i| producer.send_async(ProducerRecord::new("s", format!("{i}")))).collect();
        let mut offsets = Vec::new();
        for f in futures {
            offsets.push(f.await.unwrap().offset);
        }
        assert_eq!(offsets, (0..200).collect::<Vec<u64>>());
        let log = b.topic("s").unwrap().partition(0).unwrap();
        assert!(log.flushed_offset() >= 200, "acknowledged but not synced");
        b.close().unwrap();
    });
}

#[test]
fn an_async_send_without_sync_resolves_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    b.create_topic("o", TopicConfig::with_partitions(1)).unwrap();
    let mut f = b.producer().send_async(ProducerRecord::new("o", "x"));
    assert!(matches!(poll_once(&mut f), Poll::Ready(Ok(m)) if m.offset == 0));
    // An error is reported by the future.
    let mut f = b.producer().send_async(ProducerRecord::new("o", "x").partition(7));
    assert!(matches!(poll_once(&mut f), Poll::Ready(Err(streamlog::Error::UnknownPartition { .. }))));
}

#[test]
fn a_pending_sync_append_does_not_block_the_polling_thread() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Partition::open(dir.path(), PartitionOptions::default().durability(Durability::Sync)).unwrap());
    let mut f = log.append_async(&[Record::new("a")]);
    // The first poll returns (Pending, or Ready if the syncer was quick)
    // without syncing on this thread; the future then resolves.
    let first = poll_once(&mut f);
    let at = match first {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => futures_executor::block_on(f).unwrap(),
    };
    assert_eq!(at.base_offset, 0);
    assert!(log.flushed_offset() >= 1);
    // Closing with the syncer running joins it.
    Arc::into_inner(log).unwrap().close().unwrap();
}

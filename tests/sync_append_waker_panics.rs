//! An async append's waker that panics, woken by the partition's syncer
//! thread (`Durability::Sync`), does not end that thread. It did, and the
//! thread stayed registered as started: every later async append waited
//! for a sync that nobody would run.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use common::within;
use streamlog::{Durability, Partition, PartitionOptions, Record};

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("a broken waker");
    }
}

#[test]
fn async_appends_are_synced_after_a_waker_woken_by_a_sync_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Partition::open(dir.path(), PartitionOptions::default().durability(Durability::Sync)).unwrap());
    let mut first = log.append_async(&[Record::new("a")]);
    let waker = Waker::from(Arc::new(Panics));
    // Pending: only the syncer thread syncs for it.
    assert!(Pin::new(&mut first).poll(&mut Context::from_waker(&waker)).is_pending());
    let start = Instant::now();
    while log.flushed_offset() < 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "the first sync never came");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(first);
    let second = within(Duration::from_secs(10), {
        let log = Arc::clone(&log);
        move || futures_executor::block_on(log.append_async(&[Record::new("b")])).unwrap().base_offset
    });
    assert_eq!(second, 1);
    assert!(log.flushed_offset() >= 2);
}

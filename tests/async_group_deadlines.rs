//! Group duties of consumers driven only through async, on tokio
//! (multi-thread and current-thread) and `futures::executor`: no thread
//! parks with a timeout for a pending `recv`, so the broker's timer must
//! wake it when the group changes by time alone (another member missing
//! its poll deadline), when an auto-commit is due and when a waiting
//! member must renew its own poll deadline; a pending future that its task
//! never polls again does not keep its member in the group.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::on_every_executor;
use streamlog::{Broker, BrokerOptions, Consumer, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

/// Awaits both futures at once (on one task), returning both outputs.
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() { Poll::Ready((ra.take().unwrap(), rb.take().unwrap())) } else { Poll::Pending }
    })
    .await
}

/// Fails the scenario instead of hanging when `f` never resolves.
async fn within<F: Future>(limit: Duration, f: F) -> F::Output {
    let deadline = Instant::now() + limit;
    let mut f = Box::pin(f);
    // A watchdog thread wakes the task once, at the limit (waking it
    // earlier would be the timer polling this test is about).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let waker = Arc::new(parking_lot::Mutex::new(None::<std::task::Waker>));
    let w2 = Arc::clone(&waker);
    let watchdog = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            if Instant::now() >= deadline
                && let Some(w) = w2.lock().as_ref()
            {
                w.wake_by_ref();
                return;
            }
        }
    });
    let out = std::future::poll_fn(|cx| {
        *waker.lock() = Some(cx.waker().clone());
        assert!(Instant::now() < deadline, "not done within {limit:?}");
        Pin::new(&mut f).poll(cx)
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    watchdog.join().unwrap();
    out
}

fn broker() -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    (dir, Arc::new(b))
}

fn member(b: &Broker, group: &str, max_poll_interval: Duration) -> Consumer {
    let config = ConsumerConfig::with_group(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .max_poll_interval(max_poll_interval)
        .rebalance_timeout(Duration::from_millis(400));
    let mut c = b.consumer(config).unwrap();
    c.subscribe(&["t"]).unwrap();
    c
}

/// Two members of group "g", each with one of the topic's two partitions
/// and its first record received: both rejoined the first rebalance.
async fn two_members(b: &Broker, max_poll_interval: Duration) -> (Consumer, Consumer) {
    let (mut c1, mut c2) = (member(b, "g", max_poll_interval), member(b, "g", max_poll_interval));
    for p in 0..2 {
        b.producer().send(ProducerRecord::new("t", "first").partition(p)).unwrap();
    }
    let (r1, r2) = within(Duration::from_secs(10), join(c1.recv(), c2.recv())).await;
    assert_eq!((r1.unwrap().len(), r2.unwrap().len()), (1, 1));
    (c1, c2)
}

#[test]
fn a_pending_member_takes_over_from_one_that_stopped_polling() {
    on_every_executor(|| async {
        let (_dir, b) = broker();
        // Both rejoin the first rebalance and get a partition each.
        let (mut c1, c2) = two_members(&b, Duration::from_millis(400)).await;
        let producer = b.producer();
        assert_eq!((c1.assignment().len(), c2.assignment().len()), (1, 1));
        let p2 = c2.assignment()[0].partition;

        // c2 stops polling (alive, never awaited again). c1 waits in recv;
        // nothing appends to its partition; only the timer, at c2's poll
        // deadline, can make it look, remove c2 and take over.
        producer.send(ProducerRecord::new("t", "orphan").partition(p2)).unwrap();
        let start = Instant::now();
        let mut got = Vec::new();
        while !got.iter().any(|v: &Vec<u8>| v == b"orphan") {
            let records = within(Duration::from_secs(10), c1.recv()).await.unwrap();
            got.extend(records.into_iter().map(|r| r.value.unwrap().to_vec()));
        }
        assert!(start.elapsed() >= Duration::from_millis(300), "took over before c2's deadline");
        assert_eq!(c1.assignment().len(), 2);
        assert_eq!(b.describe_group("g").unwrap().members.len(), 1);
        drop(c2);
    });
}

#[test]
fn auto_commit_happens_while_only_awaiting() {
    on_every_executor(|| async {
        let (_dir, b) = broker();
        let config = ConsumerConfig::with_group("ac")
            .auto_offset_reset(OffsetReset::Earliest)
            .auto_commit_interval(Duration::from_millis(100));
        let mut c = b.consumer(config).unwrap();
        c.subscribe(&["t"]).unwrap();
        b.producer().send(ProducerRecord::new("t", "a").partition(0)).unwrap();
        let records = within(Duration::from_secs(10), c.recv()).await.unwrap();
        assert_eq!(records.len(), 1);
        // Now only awaiting: a thread watches the group's committed offsets
        // and sends the record that ends the wait once the commit is seen
        // (or after 5 s, and then the check below fails).
        let b2 = Arc::clone(&b);
        let watcher = std::thread::spawn(move || {
            let group = b2.group("ac");
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut seen = false;
            while Instant::now() < deadline && !seen {
                seen = group.committed().unwrap().values().any(|&o| o == 1);
                std::thread::sleep(Duration::from_millis(5));
            }
            b2.producer().send(ProducerRecord::new("t", "b").partition(0)).unwrap();
            seen
        });
        within(Duration::from_secs(10), c.recv()).await.unwrap();
        assert!(watcher.join().unwrap(), "no auto-commit while the consumer only awaited");
    });
}

#[test]
fn a_pending_future_that_is_never_polled_again_lets_its_member_expire() {
    on_every_executor(|| async {
        let (_dir, b) = broker();
        let (mut c1, mut c2) = two_members(&b, Duration::from_millis(400)).await;
        let producer = b.producer();
        let p2 = c2.assignment()[0].partition;

        // c2's task polls a recv once, then keeps it without polling it
        // again (stuck elsewhere). c1 must take over after c2's
        // max_poll_interval, as from a blocking consumer that stopped.
        let mut stuck = Box::pin(c2.recv());
        let first = stuck.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        assert!(first.is_pending());
        producer.send(ProducerRecord::new("t", "orphan").partition(p2)).unwrap();
        let mut got = Vec::new();
        while !got.iter().any(|v: &Vec<u8>| v == b"orphan") {
            let records = within(Duration::from_secs(5), c1.recv()).await.unwrap();
            got.extend(records.into_iter().map(|r| r.value.unwrap().to_vec()));
        }
        assert_eq!(c1.assignment().len(), 2);
        drop(stuck);
        drop(c2);
    });
}

#[test]
fn a_waiting_member_stays_in_the_group_past_its_poll_interval() {
    on_every_executor(|| async {
        let (_dir, b) = broker();
        // A longer interval than the other tests': the renewal at half of
        // it must not miss on a loaded machine.
        let (mut c1, mut c2) = two_members(&b, Duration::from_secs(1)).await;
        let (a1, a2) = (c1.assignment(), c2.assignment());

        // Both wait with nothing to read for two and a half poll intervals: the
        // timer wakes each to renew, so neither is removed.
        let b2 = Arc::clone(&b);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2500));
            for p in 0..2 {
                b2.producer().send(ProducerRecord::new("t", "later").partition(p)).unwrap();
            }
        });
        let (r1, r2) = within(Duration::from_secs(10), join(c1.recv(), c2.recv())).await;
        sender.join().unwrap();
        assert_eq!((r1.unwrap().len(), r2.unwrap().len()), (1, 1));
        assert_eq!((c1.assignment(), c2.assignment()), (a1, a2));
        assert_eq!(b.describe_group("g").unwrap().members.len(), 2);
    });
}

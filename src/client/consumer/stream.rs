//! The consumer as an async source: [`Consumer::recv`] and
//! [`Consumer::stream`]. No executor is assumed: a waiting future registers
//! its task's `Waker` with the partitions it reads (and, for the consumer's
//! lifetime, with the broker and the group), so the append that publishes
//! records, a rebalance, a broker close, a topic delete or a wakeup wakes
//! it. Nothing polls on a timer and no thread waits on its behalf.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{Ordering, fence};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use super::{Consumer, ConsumerRecord};
use crate::error::{Error, Result};
use crate::group::TopicPartition;
use crate::log::notify::Waiter;

/// One async wait in progress.
#[derive(Default)]
struct AsyncPoll {
    /// Between `enter_poll` and `exit_poll`: the group counts the member as
    /// alive while a future waits, as it does while `poll` blocks.
    entered: bool,
    /// The next step is the poll's first (it auto-commits).
    first: bool,
    /// The broker's timer holds a deadline for the consumer's waiter.
    timed: bool,
}

impl Consumer {
    /// Waits for records without blocking the thread: resolves to a
    /// non-empty batch (at most `max_poll_records`), or to the error
    /// [`Consumer::poll`] would return ([`Error::Closed`],
    /// [`Error::Wakeup`], [`Error::UnknownTopic`], ...). Group duties
    /// (rebalances, revocations, auto-commit) happen inside it as inside
    /// `poll`. The member counts as polling while its task polls the
    /// pending future: the future asks to be polled again well within
    /// `max_poll_interval`, and one that its task stops polling (while
    /// keeping it) lets the member expire, as a blocking consumer that
    /// stops calling `poll` does.
    ///
    /// Dropping the future before it resolves loses nothing: no record is
    /// taken until the future returns it, and the consumer stays usable.
    ///
    /// ```
    /// use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("orders", TopicConfig::default())?;
    /// let config = ConsumerConfig::with_group("billing").auto_offset_reset(OffsetReset::Earliest);
    /// let mut consumer = broker.consumer(config)?;
    /// consumer.subscribe(&["orders"])?;
    /// let producer = broker.producer();
    /// // Any executor: here `futures_executor`; tokio's `#[tokio::main]` is the same.
    /// futures_executor::block_on(async {
    ///     producer.send_async(ProducerRecord::new("orders", "created")).await?;
    ///     let records = consumer.recv().await?; // woken by the append, no timer
    ///     assert_eq!(records[0].value.as_deref(), Some(&b"created"[..]));
    ///     consumer.commit()
    /// })?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Recv<'_> {
        Recv { consumer: self, state: AsyncPoll::default() }
    }

    /// The records, one at a time, as a [`Stream`]. Dropping the stream
    /// puts back the records it fetched but did not yield (the positions
    /// move back to the first of them). After [`Error::Closed`] the stream
    /// ends.
    pub fn stream(&mut self) -> RecordStream<'_> {
        RecordStream { consumer: self, state: AsyncPoll::default(), buffer: Vec::new().into_iter(), done: false }
    }

    fn poll_async(&mut self, cx: &mut Context<'_>, st: &mut AsyncPoll) -> Poll<Result<Vec<ConsumerRecord>>> {
        if !self.waiter.is_task() {
            self.rebind_waiter(Waiter::task());
        }
        // Before the step's reset: a wake-up after it reaches this task.
        self.waiter.set_waker(cx.waker());
        // A woken wait stays on the wait lists it joined (they skip a
        // waiter already woken): leaving and joining again on every
        // wake-up took each list's lock, which the append that woke it had
        // just taken on the other core. `finish_async` leaves them.
        let first_step = !st.entered;
        if first_step {
            if let Err(e) = self.check_open() {
                return Poll::Ready(Err(e));
            }
            st.entered = true;
        }
        // Alive for `max_poll_interval` from its last renewal, not for as
        // long as the future exists: one that its task never polls again
        // (stuck on something else while holding it) lets the member
        // expire, as a blocking consumer that stops calling `poll` does. A
        // waiting future is woken in time to renew (`group_deadline`); a
        // step renews once a quarter of the interval has passed (not on
        // every wake-up: that takes the group's lock).
        if let Some(m) = &self.membership {
            let now = self.broker.now_ms();
            let quarter = super::millis(self.config.max_poll_interval) / 4;
            if first_step || now.saturating_sub(self.poll_until_ms) >= quarter {
                self.poll_until_ms = now;
                m.group.enter_poll(self.broker.coordinator(), &m.member_id, now, now);
            }
        }
        // Every step auto-commits when the interval is up: a woken wait is
        // the only chance a consumer driven by async has to.
        st.first = true;
        loop {
            match self.poll_once::<Vec<ConsumerRecord>>(&mut st.first) {
                Ok(records) if records.is_empty() => {}
                done => {
                    self.finish_async(st);
                    return Poll::Ready(done);
                }
            }
            self.join_wait_lists();
            // Pairs with the SeqCst store of the high watermark (and the
            // broker's closed flag): either this check sees the records or
            // the append sees the registration and wakes the task.
            fence(Ordering::SeqCst);
            if !self.has_data() && !self.broker.is_closed() && !self.waiter.is_woken() {
                // No thread parks with a timeout for a task: the broker's
                // timer wakes it when the group may change by time alone
                // (a rebalance timeout, another member's poll deadline) or
                // an auto-commit is due.
                match self.group_deadline() {
                    Some(at) => {
                        if let Err(e) = self.broker.timer.wake_at(&self.waiter, at) {
                            self.finish_async(st);
                            return Poll::Ready(Err(e));
                        }
                        st.timed = true;
                    }
                    None if std::mem::take(&mut st.timed) => self.broker.timer.cancel(&self.waiter),
                    None => {}
                }
                return Poll::Pending;
            }
        }
    }

    /// When a waiting member must look again although nothing woke it:
    /// the group's next change by time, the auto-commit of positions that
    /// moved since the last commit, or halfway to its own poll deadline
    /// (to renew it).
    fn group_deadline(&self) -> Option<Instant> {
        let m = self.membership.as_ref()?;
        let renew = self.poll_until_ms.saturating_add(super::millis(self.config.max_poll_interval) / 2);
        let mut at = Some(m.wake_at_ms.map_or(renew, |t| t.min(renew)));
        if self.config.enable_auto_commit
            && let Some(g) = self.config.group_id.as_deref()
        {
            let offsets = &self.broker.coordinator().offsets;
            let moved = self.assigned.iter().any(|(tp, a)| a.position.is_some_and(|p| offsets.get(g, tp) != Some(p)));
            if moved {
                let due = self.last_auto_commit_ms.saturating_add(super::millis(self.config.auto_commit_interval));
                at = Some(at.map_or(due, |t| t.min(due)));
            }
        }
        let ms = at?.saturating_sub(self.broker.now_ms()).max(1);
        Instant::now().checked_add(Duration::from_millis(ms as u64))
    }

    /// Ends an async wait (resolved or dropped): leaves the wait lists and,
    /// for the group, the poll.
    fn finish_async(&mut self, st: &mut AsyncPoll) {
        self.leave_wait_lists();
        if std::mem::take(&mut st.timed) {
            self.broker.timer.cancel(&self.waiter);
        }
        if std::mem::take(&mut st.entered)
            && let Some(m) = &self.membership
        {
            m.group.exit_poll(&m.member_id, self.broker.now_ms());
        }
    }
}

/// The future of [`Consumer::recv`].
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a> {
    consumer: &'a mut Consumer,
    state: AsyncPoll,
}

impl Future for Recv<'_> {
    type Output = Result<Vec<ConsumerRecord>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.consumer.poll_async(cx, &mut this.state)
    }
}

impl Drop for Recv<'_> {
    fn drop(&mut self) {
        self.consumer.finish_async(&mut self.state);
    }
}

impl fmt::Debug for Recv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").field("consumer", &self.consumer).finish()
    }
}

/// The stream of [`Consumer::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct RecordStream<'a> {
    consumer: &'a mut Consumer,
    state: AsyncPoll,
    /// Fetched, not yet yielded.
    buffer: std::vec::IntoIter<ConsumerRecord>,
    done: bool,
}

impl Stream for RecordStream<'_> {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(r) = this.buffer.next() {
            return Poll::Ready(Some(Ok(r)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match this.consumer.poll_async(cx, &mut this.state) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(records)) => {
                this.buffer = records.into_iter();
                Poll::Ready(this.buffer.next().map(Ok))
            }
            Poll::Ready(Err(e)) => {
                this.done = matches!(e, Error::Closed);
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.buffer.len(), None)
    }
}

impl Drop for RecordStream<'_> {
    fn drop(&mut self) {
        self.consumer.finish_async(&mut self.state);
        // Give back what was fetched and not yielded: a poll takes each
        // partition's records as one run in offset order, so the first of
        // a run is where that partition resumes.
        let mut previous: Option<(crate::TopicName, u32)> = None;
        for r in self.buffer.by_ref() {
            if previous.as_ref().is_some_and(|(t, p)| *t == r.topic && *p == r.partition) {
                continue;
            }
            let tp = TopicPartition::new(&*r.topic, r.partition);
            if let Some(a) = self.consumer.assigned.get_mut(&tp) {
                a.position = Some(r.offset);
            }
            previous = Some((r.topic, r.partition));
        }
    }
}

impl fmt::Debug for RecordStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordStream").field("buffered", &self.buffer.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use crate::{Broker, ConsumerConfig, TopicConfig, TopicPartition};

    /// A `recv` future forgotten while it waits leaves the consumer's
    /// waiter on the partition's wait list; a blocking poll after it (which
    /// moves the consumer to a thread waiter) takes it off, so appends do
    /// not keep waking, and keeping, a waiter nobody waits on.
    #[test]
    fn a_forgotten_pending_recv_leaves_no_waiter_behind() {
        let broker = Broker::temporary().unwrap();
        broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
        let log = broker.topic("t").unwrap().partition(0).unwrap();
        let mut consumer = broker.consumer(ConsumerConfig::default()).unwrap();
        consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let mut recv = Box::pin(consumer.recv());
        assert!(recv.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(log.waiters_registered(), 1);
        // Its drop never runs (the box leaks, in this test only).
        std::mem::forget(recv);
        assert!(consumer.poll(Duration::ZERO).unwrap().is_empty());
        assert_eq!(log.waiters_registered(), 0);
        drop(consumer);
        assert_eq!(log.waiters_registered(), 0);
    }
}

//! Waking threads and tasks that wait for new records: a waiter registers
//! with the logs it waits on, re-checks them, and parks (a thread) or returns
//! `Pending` (a task); an append that publishes new data unparks the
//! registered threads and wakes the registered tasks' `Waker`s. Appends pay
//! one load while nobody waits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::thread::{JoinHandle, Thread};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// One parked (or about to park) thread, or one task waiting in a future.
#[derive(Debug)]
pub(crate) struct Waiter {
    target: Target,
    woken: AtomicBool,
}

#[derive(Debug)]
enum Target {
    Thread(Thread),
    /// The waker of the task's latest poll (`None` before the first).
    Task(Mutex<Option<Waker>>),
}

impl Waiter {
    /// A waiter for the calling thread.
    pub fn current() -> Arc<Waiter> {
        Arc::new(Waiter { target: Target::Thread(std::thread::current()), woken: AtomicBool::new(false) })
    }

    /// A waiter for a task: [`Waiter::set_waker`] on every poll.
    pub fn task() -> Arc<Waiter> {
        Arc::new(Waiter { target: Target::Task(Mutex::new(None)), woken: AtomicBool::new(false) })
    }

    /// Whether the calling thread is the one this waiter parks.
    pub fn is_current_thread(&self) -> bool {
        matches!(&self.target, Target::Thread(t) if t.id() == std::thread::current().id())
    }

    pub fn is_task(&self) -> bool {
        matches!(self.target, Target::Task(_))
    }

    /// Makes `waker` the one woken. Call before `reset` and the checks that
    /// follow it, so that a wake-up after them reaches this poll's task.
    pub fn set_waker(&self, waker: &Waker) {
        if let Target::Task(slot) = &self.target {
            let mut slot = slot.lock();
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
    }

    pub fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            match &self.target {
                Target::Thread(t) => t.unpark(),
                Target::Task(slot) => {
                    // Woken outside the lock: a waker may run the task inline.
                    let waker = slot.lock().clone();
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
            }
        }
    }

    /// Whether a wake-up came since the last `reset`.
    pub fn is_woken(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    /// Clears a previous wake-up before registering again. A swap, not a
    /// store: reading the waker's write makes what it did before waking
    /// (closing, requesting a wakeup) visible to the checks that follow.
    pub fn reset(&self) {
        self.woken.swap(false, Ordering::AcqRel);
    }

    /// Parks until woken or `deadline`. Must be called by the thread that
    /// made the waiter (a task's waiter never parks).
    pub fn park_until(&self, deadline: Instant) {
        debug_assert!(self.is_current_thread());
        while !self.woken.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            std::thread::park_timeout(deadline - now);
        }
    }
}

/// The waiters registered with one log (or group).
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    waiters: Mutex<Vec<Arc<Waiter>>>,
    pub(super) count: AtomicUsize,
}

impl WaitList {
    /// Registers `w`. The caller must re-check for data after this (and
    /// before parking): the `SeqCst` here pairs with the `SeqCst` store of
    /// the published data and the `SeqCst` load in [`WaitList::wake_all`],
    /// so either the waiter sees the data or the writer sees the waiter.
    pub fn register(&self, w: &Arc<Waiter>) {
        self.waiters.lock().push(Arc::clone(w));
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub fn unregister(&self, w: &Arc<Waiter>) {
        let mut ws = self.waiters.lock();
        if let Some(i) = ws.iter().position(|x| Arc::ptr_eq(x, w)) {
            ws.swap_remove(i);
            self.count.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes every registered waiter; one atomic load when there is none.
    /// Call after publishing the new data with a `SeqCst` store.
    #[inline]
    pub fn wake_all(&self) {
        if self.count.load(Ordering::SeqCst) > 0 {
            self.wake_slow();
        }
    }

    /// [`WaitList::wake_all`], keeping a waker's panic in `panicked` (as
    /// [`catch_panic`] does) for the caller to go on with once its own work
    /// is done.
    #[inline]
    pub fn wake_all_keeping_panic(&self, panicked: &mut Option<Panic>) {
        if self.count.load(Ordering::SeqCst) > 0 {
            catch_panic(panicked, || self.wake_slow());
        }
    }

    /// Wakes outside the list's lock: the woken thread's (or task's) first
    /// act is to unregister, which takes that lock; woken under it, it
    /// would find it held, and sleep again until the waker let go (on a
    /// busy machine, a scheduler slice later: milliseconds).
    #[cold]
    fn wake_slow(&self) {
        // Orders the caller's store of the new data before the loads of
        // the waiters' `woken` flags below: a waiter that stays registered
        // across wake-ups (an async wait) resets its flag, fences, then
        // looks for data; one of the two sides sees the other's write.
        fence(Ordering::SeqCst);
        let mut wakes = Wakes::default();
        for w in self.waiters.lock().iter() {
            wakes.add(w);
        }
        // Dropped here, after the lock: the wake-ups.
        drop(wakes);
    }
}

/// Waiters to wake once the locks they were found under are released;
/// woken when dropped (through [`wake_each`]). The usual one or few are
/// kept on the stack: nothing is allocated between a change and its
/// wake-ups.
#[derive(Default)]
pub(crate) struct Wakes {
    few: [Option<Arc<Waiter>>; 4],
    more: Vec<Arc<Waiter>>,
}

impl Wakes {
    /// Adds `w`, unless it is in already or woken already (its owner has
    /// yet to look, which it does after the wake-ups).
    pub fn add(&mut self, w: &Arc<Waiter>) {
        if w.is_woken() {
            return;
        }
        for slot in &mut self.few {
            match slot {
                Some(x) if Arc::ptr_eq(x, w) => return,
                Some(_) => {}
                None => {
                    *slot = Some(Arc::clone(w));
                    return;
                }
            }
        }
        self.more.push(Arc::clone(w));
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        if self.few[0].is_none() {
            return;
        }
        // `add` skips duplicates in `few` only.
        self.more.sort_unstable_by_key(Arc::as_ptr);
        self.more.dedup_by(|a, b| Arc::ptr_eq(a, b));
        wake_each(self.few.iter().flatten().chain(&self.more), |w| w.wake());
    }
}

/// Calls `wake` on each item. A waker is foreign code (an executor's, or an
/// application's): if one panics, the rest are still woken, then the first
/// panic goes on (none does if a panic was unwinding already). Without
/// that, one broken waker would leave every waiter after it asleep, however
/// much data came.
pub(crate) fn wake_each<T>(items: impl Iterator<Item = T>, wake: impl Fn(T)) {
    // Each wake caught: the rest are woken whatever one does, and a second
    // panic is never raised while the first unwinds (that would abort).
    let mut first_panic = None;
    for item in items {
        catch_panic(&mut first_panic, || wake(item));
    }
    resume_panic(first_panic);
}

/// A panic caught by [`catch_panic`], to go on with by [`resume_panic`].
pub(crate) type Panic = Box<dyn std::any::Any + Send>;

/// Runs `f`; a panic it raises is kept in `first` (if it holds none yet)
/// instead of unwinding: for wake-ups in the middle of work that must be
/// finished whatever a waker does (waking each waiter; deleting a topic;
/// closing the broker).
pub(crate) fn catch_panic(first: &mut Option<Panic>, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        first.get_or_insert(panic);
    }
}

/// Goes on with the panic [`catch_panic`] kept, if any, once the work is
/// done: unless this runs while another panic unwinds (a second one would
/// abort the process).
pub(crate) fn resume_panic(first: Option<Panic>) {
    if let Some(panic) = first
        && !std::thread::panicking()
    {
        std::panic::resume_unwind(panic);
    }
}

/// Wakes waiters at a time: one thread per broker, started on first use,
/// for the deadlines of tasks waiting in futures (a group's rebalance
/// timeout, another member's poll deadline, an auto-commit), which have no
/// thread of their own to park with a timeout. Each waiter has at most one
/// deadline; the thread sleeps until the earliest.
#[derive(Default)]
pub(crate) struct Timer {
    shared: Arc<TimerShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct TimerShared {
    state: Mutex<TimerState>,
    changed: Condvar,
}

#[derive(Default)]
struct TimerState {
    due: Vec<(Instant, Weak<Waiter>)>,
    stopped: bool,
}

impl Timer {
    /// Wakes `w` at `at`, replacing its earlier deadline if any.
    pub fn wake_at(&self, w: &Arc<Waiter>, at: Instant) -> Result<()> {
        {
            let mut st = self.shared.state.lock();
            if st.stopped {
                return Ok(());
            }
            let earliest = st.due.iter().map(|(t, _)| *t).min();
            match st.due.iter_mut().find(|(_, x)| std::ptr::eq(x.as_ptr(), Arc::as_ptr(w))) {
                Some(entry) if entry.0 == at => return Ok(()),
                Some(entry) => entry.0 = at,
                None => st.due.push((at, Arc::downgrade(w))),
            }
            // Only an earlier deadline needs the thread to look again.
            if earliest.is_some_and(|e| e <= at) {
                return Ok(());
            }
        }
        self.shared.changed.notify_one();
        let mut thread = self.thread.lock();
        if thread.is_none() {
            let shared = Arc::clone(&self.shared);
            let handle = std::thread::Builder::new()
                .name("streamlog-timer".into())
                .spawn(move || shared.run())
                .map_err(|e| Error::Io { op: "spawn thread", path: PathBuf::from("streamlog-timer"), source: e })?;
            *thread = Some(handle);
        }
        Ok(())
    }

    /// Forgets `w`'s deadline.
    pub fn cancel(&self, w: &Arc<Waiter>) {
        self.shared.state.lock().due.retain(|(_, x)| !std::ptr::eq(x.as_ptr(), Arc::as_ptr(w)));
    }

    /// Stops the thread and joins it; later deadlines are ignored.
    pub fn shutdown(&self) {
        self.shared.state.lock().stopped = true;
        self.shared.changed.notify_all();
        // Not from the timer thread itself (a waker it ran dropped the
        // broker): it ends on its own, having seen `stopped`.
        if let Some(t) = self.thread.lock().take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

impl TimerShared {
    fn run(&self) {
        let mut st = self.state.lock();
        while !st.stopped {
            let now = Instant::now();
            let mut fired = Vec::new();
            st.due.retain(|(at, w)| {
                if *at <= now {
                    fired.push(w.clone());
                    return false;
                }
                w.strong_count() > 0
            });
            if !fired.is_empty() {
                // Woken outside the lock: a waker may run its task inline.
                drop(st);
                for w in fired.iter().filter_map(Weak::upgrade) {
                    // A waker that panics (foreign code) must not end this
                    // thread: every other waiting task's deadlines depend
                    // on it. The panic hook has reported it.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
                }
                st = self.state.lock();
                continue;
            }
            match st.due.iter().map(|(t, _)| *t).min() {
                Some(at) => {
                    self.changed.wait_until(&mut st, at);
                }
                None => self.changed.wait(&mut st),
            }
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer").field("deadlines", &self.shared.state.lock().due.len()).finish()
    }
}

/// Wakers for tests of what wakes waiters.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A waker that counts its wake-ups.
    pub(crate) struct Counts(pub AtomicUsize);
    impl std::task::Wake for Counts {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A broken executor's waker.
    pub(crate) struct Panics;
    impl std::task::Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("a broken waker");
        }
    }

    /// A task's waiter, woken through `waker`.
    pub(crate) fn task_waiter(waker: std::task::Waker) -> Arc<super::Waiter> {
        let w = super::Waiter::task();
        w.set_waker(&waker);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Counts, Panics, task_waiter};
    use super::*;
    use std::time::Duration;

    /// Six waiters on one list (four woken from the stack, two from the
    /// vector after them), those at `broken` with a panicking waker: all
    /// the others are woken, and the (first) panic goes on.
    fn wake_all_with_broken_wakers(broken: &[usize]) {
        let list = WaitList::default();
        let counts = Arc::new(Counts(AtomicUsize::new(0)));
        let waiters: Vec<Arc<Waiter>> = (0..6)
            .map(|i| {
                let waker =
                    if broken.contains(&i) { Waker::from(Arc::new(Panics)) } else { Waker::from(Arc::clone(&counts)) };
                let w = task_waiter(waker);
                list.register(&w);
                w
            })
            .collect();
        let woke = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| list.wake_all()));
        assert!(woke.is_err(), "a waker's panic goes on");
        assert_eq!(counts.0.load(Ordering::SeqCst), 6 - broken.len(), "every other waiter's task was woken");
        drop(waiters);
    }

    /// One waker that panics (a broken executor) does not keep the other
    /// waiters of the list asleep: they are woken, then the panic goes on.
    #[test]
    fn a_panicking_waker_does_not_keep_the_others_asleep() {
        wake_all_with_broken_wakers(&[1]);
    }

    /// Two broken wakers in one list: the second's panic is not raised
    /// while the first unwinds (that aborts the process).
    #[test]
    fn two_panicking_wakers_neither_abort_nor_keep_the_others_asleep() {
        wake_all_with_broken_wakers(&[1, 4]);
    }

    /// A waker that panics in the timer's thread does not end it: a later
    /// deadline of another task still fires.
    #[test]
    fn the_timer_outlives_a_panicking_waker() {
        let broken = task_waiter(Waker::from(Arc::new(Panics)));
        let counts = Arc::new(Counts(AtomicUsize::new(0)));
        let w = task_waiter(Waker::from(Arc::clone(&counts)));
        let timer = Timer::default();
        let start = Instant::now();
        timer.wake_at(&broken, start + Duration::from_millis(5)).unwrap();
        timer.wake_at(&w, start + Duration::from_millis(50)).unwrap();
        while counts.0.load(Ordering::SeqCst) == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "the timer's thread died with the broken waker");
            std::thread::sleep(Duration::from_millis(1));
        }
        timer.shutdown();
    }

    #[test]
    fn every_registered_waiter_is_woken_however_many() {
        let list = WaitList::default();
        let waiters: Vec<Arc<Waiter>> = (0..9).map(|_| Waiter::task()).collect();
        for w in &waiters {
            list.register(w);
        }
        waiters[2].wake();
        list.wake_all();
        assert!(waiters.iter().all(|w| w.is_woken()));
    }

    #[test]
    fn a_registered_waiter_is_woken() {
        let list = Arc::new(WaitList::default());
        let w = Waiter::current();
        list.register(&w);
        let l = Arc::clone(&list);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            l.wake_all();
        });
        let start = Instant::now();
        w.park_until(Instant::now() + Duration::from_secs(10));
        assert!(start.elapsed() < Duration::from_secs(5));
        list.unregister(&w);
        t.join().unwrap();
        assert_eq!(list.count.load(Ordering::SeqCst), 0);
        // Not registered: not woken; the deadline ends the park.
        w.reset();
        list.wake_all();
        w.park_until(Instant::now() + Duration::from_millis(10));
        assert!(!w.woken.load(Ordering::SeqCst));
    }

    #[test]
    fn a_registered_task_is_woken_through_its_waker() {
        let count = Arc::new(Counts(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let list = WaitList::default();
        let w = Waiter::task();
        w.set_waker(&waker);
        list.register(&w);
        list.wake_all();
        list.wake_all(); // once until reset
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(w.is_woken() && w.is_task() && !w.is_current_thread());
        w.reset();
        list.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_timer_wakes_a_task_at_its_latest_deadline_and_stops() {
        let count = Arc::new(Counts(AtomicUsize::new(0)));
        let w = task_waiter(Waker::from(Arc::clone(&count)));
        let timer = Timer::default();
        let start = Instant::now();
        timer.wake_at(&w, start + Duration::from_secs(3600)).unwrap();
        // Replaced by an earlier deadline: the thread looks again.
        timer.wake_at(&w, start + Duration::from_millis(30)).unwrap();
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "never woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(start.elapsed() >= Duration::from_millis(30));
        // A cancelled deadline never fires.
        w.reset();
        timer.wake_at(&w, Instant::now() + Duration::from_millis(10)).unwrap();
        timer.cancel(&w);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        timer.shutdown();
    }

    #[test]
    fn a_woken_task_may_unregister_inside_its_waker() {
        // A waker that runs its task inline (as some executors do): the
        // task's first act is to leave the wait list, which must not be
        // locked by the wake that called it.
        struct Inline(Arc<WaitList>, Mutex<Option<Arc<Waiter>>>);
        impl std::task::Wake for Inline {
            fn wake(self: Arc<Self>) {
                if let Some(w) = self.1.lock().take() {
                    self.0.unregister(&w);
                }
            }
        }
        let list = Arc::new(WaitList::default());
        let w = Waiter::task();
        let inline = Arc::new(Inline(Arc::clone(&list), Mutex::new(Some(Arc::clone(&w)))));
        w.set_waker(&Waker::from(inline));
        list.register(&w);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            list.wake_all();
            tx.send(list.count.load(Ordering::SeqCst)).unwrap();
        });
        let left = rx.recv_timeout(Duration::from_secs(10)).expect("the wake deadlocked on the wait list's lock");
        assert_eq!(left, 0);
    }

    /// The collected waiters are woken once each, on the stack and past
    /// it, and one broken waker does not keep the others asleep.
    #[test]
    fn collected_waiters_are_woken_once_each_despite_a_panicking_waker() {
        let counts: Vec<Arc<Counts>> = (0..6).map(|_| Arc::new(Counts(AtomicUsize::new(0)))).collect();
        let mut wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(Arc::clone(c))).collect();
        wakers.insert(2, Waker::from(Arc::new(Panics)));
        let waiters: Vec<Arc<Waiter>> = wakers.into_iter().map(task_waiter).collect();
        let mut wakes = Wakes::default();
        // Twice over, as a rebalance that also assigns adds every member twice.
        for w in waiters.iter().chain(&waiters) {
            wakes.add(w);
        }
        assert!(waiters.iter().all(|w| !w.is_woken()), "not woken until dropped");
        let woke = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(wakes)));
        assert!(woke.is_err(), "the waker's panic goes on");
        assert!(counts.iter().all(|c| c.0.load(Ordering::SeqCst) == 1), "each woken once");
        // Woken already: not collected again.
        let mut wakes = Wakes::default();
        wakes.add(&waiters[0]);
        assert!(wakes.few[0].is_none());
    }

    /// Waiters collected under a lock that a panic unwinds out of are
    /// woken, and a waker panicking then does not abort the process (a
    /// panic during a panic would).
    #[test]
    fn waiters_collected_when_a_panic_unwinds_are_woken_without_aborting() {
        let count = Arc::new(Counts(AtomicUsize::new(0)));
        let waiters = [Waker::from(Arc::new(Panics)), Waker::from(Arc::clone(&count))].map(task_waiter);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut wakes = Wakes::default();
            waiters.iter().for_each(|w| wakes.add(w));
            panic!("a bug under the lock the waiters were found under");
        }));
        assert!(unwound.is_err());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}

//! Waking threads that wait for new records: a waiter registers with the
//! logs it waits on, re-checks them, and parks; an append that publishes new
//! data unparks the registered waiters. Appends pay one load while nobody
//! waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Instant;

use parking_lot::Mutex;

/// One parked (or about to park) thread.
#[derive(Debug)]
pub(crate) struct Waiter {
    thread: Thread,
    woken: AtomicBool,
}

impl Waiter {
    /// A waiter for the calling thread.
    pub fn current() -> Arc<Waiter> {
        Arc::new(Waiter { thread: std::thread::current(), woken: AtomicBool::new(false) })
    }

    /// Whether the calling thread is the one this waiter parks.
    pub fn is_current_thread(&self) -> bool {
        self.thread.id() == std::thread::current().id()
    }

    pub fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
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
    /// made the waiter.
    pub fn park_until(&self, deadline: Instant) {
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
    count: AtomicUsize,
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

    #[cold]
    fn wake_slow(&self) {
        for w in self.waiters.lock().iter() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}

//! A named background thread that runs a task at an interval until stopped,
//! and is joined when it stops. A panic in the task is not lost: the thread
//! ends and `on_panic` runs (the owner poisons itself).

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

pub(crate) struct Periodic {
    stop: Arc<(Mutex<Signal>, Condvar)>,
    thread: JoinHandle<()>,
}

#[derive(Default)]
struct Signal {
    stopped: bool,
    /// [`Periodic::poke`] since the task last ran.
    poked: bool,
}

/// What a task wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Run again after the interval.
    Again,
    /// Nothing to do until [`Periodic::poke`]: sleep without waking up (an
    /// idle thread that ticks steals the processor from spinning threads).
    Idle,
    /// End the thread (its owner is gone).
    Stop,
}

impl Periodic {
    /// Runs `task` every `every` on a thread called `name`. The task returns
    /// `false` to end the thread (its owner is gone).
    pub fn start(
        name: &str,
        every: Duration,
        mut task: impl FnMut() -> bool + Send + 'static,
        on_panic: impl FnOnce() + Send + 'static,
    ) -> Result<Periodic> {
        Periodic::start_idle(name, every, move || if task() { Next::Again } else { Next::Stop }, on_panic)
    }

    /// As [`Periodic::start`], but the task may go idle until poked.
    pub fn start_idle(
        name: &str,
        every: Duration,
        mut task: impl FnMut() -> Next + Send + 'static,
        on_panic: impl FnOnce() + Send + 'static,
    ) -> Result<Periodic> {
        let stop = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let (lock, cv) = &*signal;
                let mut sig = lock.lock();
                let mut idle = false;
                // Checked before every wait: a stop that came before the
                // thread first waited must not be slept through.
                while !sig.stopped {
                    if idle {
                        while !sig.poked && !sig.stopped {
                            cv.wait(&mut sig);
                        }
                    } else if !sig.poked {
                        cv.wait_for(&mut sig, every);
                    }
                    if sig.stopped {
                        return;
                    }
                    sig.poked = false;
                    let next = parking_lot::MutexGuard::unlocked(&mut sig, || {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut task))
                    });
                    match next {
                        Ok(Next::Again) => idle = false,
                        Ok(Next::Idle) => idle = true,
                        Ok(Next::Stop) => return,
                        Err(_) => {
                            on_panic();
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::Io { op: "spawn thread", path: PathBuf::from(name), source: e })?;
        Ok(Periodic { stop, thread })
    }

    /// Runs the task soon (at once if it is idle).
    pub fn poke(&self) {
        self.stop.0.lock().poked = true;
        self.stop.1.notify_all();
    }

    /// Stops the thread (after the task run in progress, if any) and joins it.
    pub fn stop(self) {
        self.stop.0.lock().stopped = true;
        self.stop.1.notify_all();
        let _ = self.thread.join();
    }
}

/// A job for a [`Worker`].
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// One named background thread that runs jobs in the order given: what a
/// broker (or a standalone partition) hands work to that must not stall an
/// appender, such as syncing a rolled segment. One per owner, not one per
/// partition. The thread starts with the first job and is joined by
/// [`Worker::shutdown`] (or drop), after the jobs queued before it.
pub(crate) struct Worker {
    name: &'static str,
    /// The queue and the thread, once started; `None` inside after shutdown.
    state: Mutex<WorkerState>,
}

#[derive(Default)]
struct WorkerState {
    queue: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    stopped: bool,
}

impl Worker {
    pub fn new(name: &'static str) -> Arc<Worker> {
        Arc::new(Worker { name, state: Mutex::new(WorkerState::default()) })
    }

    /// Queues `job`. After shutdown (or if the thread cannot be started) it
    /// runs on the caller's thread instead: it is never dropped unrun.
    pub fn submit(&self, job: Job) {
        let mut state = self.state.lock();
        if !state.stopped && state.queue.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new().name(self.name.to_owned()).spawn(move || {
                for job in rx {
                    // A panicking job must not take the queue down with it
                    // (the job reports its own failure to its owner).
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            if let Ok(thread) = spawned {
                state.queue = Some(tx);
                state.thread = Some(thread);
            }
        }
        let job = match state.queue.as_ref() {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => job,
        };
        drop(state);
        job();
    }

    /// Runs the queued jobs to their end, then stops and joins the thread.
    pub fn shutdown(&self) {
        let thread = {
            let mut state = self.state.lock();
            state.stopped = true;
            drop(state.queue.take());
            state.thread.take()
        };
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[test]
    fn runs_on_schedule_and_stops_at_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        let p = Periodic::start(
            "test-periodic",
            Duration::from_millis(1),
            move || r.fetch_add(1, Ordering::SeqCst) < 1000,
            || {},
        )
        .unwrap();
        while runs.load(Ordering::SeqCst) < 3 {
            std::thread::yield_now();
        }
        p.stop();
        // A stop right after the start must not wait out a long interval.
        let start = Instant::now();
        Periodic::start("test-periodic", Duration::from_secs(3600), || true, || {}).unwrap().stop();
        assert!(start.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn a_panic_is_reported() {
        let panicked = Arc::new(AtomicUsize::new(0));
        let p2 = Arc::clone(&panicked);
        let p = Periodic::start(
            "test-periodic",
            Duration::from_millis(1),
            || panic!("task failed"),
            move || {
                p2.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
        while panicked.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        p.stop();
    }

    #[test]
    fn an_idle_task_sleeps_until_poked() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        let p = Periodic::start_idle(
            "test-periodic",
            Duration::from_millis(1),
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                Next::Idle
            },
            || {},
        )
        .unwrap();
        while runs.load(Ordering::SeqCst) < 1 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "an idle task ran without a poke");
        p.poke();
        let start = Instant::now();
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(start.elapsed() < Duration::from_secs(10), "a poke did not run the task");
            std::thread::yield_now();
        }
        p.stop();
    }
}

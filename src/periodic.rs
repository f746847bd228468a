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
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
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
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let (lock, cv) = &*signal;
                let mut stopped = lock.lock();
                loop {
                    cv.wait_for(&mut stopped, every);
                    if *stopped {
                        return;
                    }
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut task)) {
                        Ok(true) => {}
                        Ok(false) => return,
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

    /// Stops the thread (after the task run in progress, if any) and joins it.
    pub fn stop(self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        let _ = self.thread.join();
    }
}

//! [`Broker::temporary`]: a throwaway broker for tests, in a fresh
//! directory under the system's temporary directory, removed at close.
//!
//! The removal runs on a background thread: on ext4 each `rmdir` can cost
//! milliseconds (4 ms median on the development VM, mounted with
//! `discard`), several times what the whole broker's life costs without
//! fsyncs. Directories a process left behind (it exited before its
//! removals ran) are removed by the first temporary broker of a later
//! process, once their owner is gone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};

use crate::broker::{Broker, BrokerOptions};
use crate::error::{Error, Result};

impl Broker {
    /// A broker in a new, empty directory under [`std::env::temp_dir`],
    /// opened with `BrokerOptions::default().fsync(false)` and removed when
    /// the broker closes (by [`Broker::close`] or when its last clone is
    /// dropped; the removal runs on a background thread, so it may still be
    /// under way when `close` returns). For tests: a real log, created and
    /// closed in under a millisecond on ext4, as nothing is synced (see
    /// [`BrokerOptions::fsync`]: it survives a crash of the test process,
    /// not power loss). Each temporary broker has its own directory and
    /// lock, so tests running in parallel never share one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{Broker, ConsumerConfig, ProducerRecord, TopicConfig};
    ///
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("events", TopicConfig::with_partitions(1))?;
    /// broker.producer().send(ProducerRecord::new("events", "hello"))?;
    /// let mut consumer = broker.consumer(ConsumerConfig::default())?;
    /// consumer.assign(&[streamlog::TopicPartition::new("events", 0)])?;
    /// consumer.seek_to_beginning(&[streamlog::TopicPartition::new("events", 0)])?;
    /// let records = consumer.poll(Duration::from_secs(1))?;
    /// assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
    /// broker.close()?; // the directory goes in the background
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn temporary() -> Result<Broker> {
        Broker::temporary_with(BrokerOptions::default().fsync(false))
    }

    /// [`Broker::temporary`] with these options (pass `fsync(false)` to keep
    /// it fast; a [`ManualClock`](crate::ManualClock) and no maintenance
    /// thread make time-based tests instant).
    pub fn temporary_with(opts: BrokerOptions) -> Result<Broker> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        static SWEPT: OnceLock<()> = OnceLock::new();
        SWEPT.get_or_init(|| reaper(Job::Sweep(base.clone())));
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("{PREFIX}{}-{n}-{nanos:09}", std::process::id()));
            // `create_dir` fails on an existing entry: the directory is ours
            // alone, whatever else runs.
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::Io { op: "create directory", path: dir, source: e }),
            }
            return match Broker::open(&dir, opts) {
                Ok(broker) => {
                    broker.state().temporary.store(true, Ordering::Release);
                    Ok(broker)
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    Err(e)
                }
            };
        }
        Err(Error::InvalidConfig(format!("no unused temporary directory name under {}", base.display())))
    }
}

/// Name prefix of temporary broker directories: `streamlog-<pid>-...`.
const PREFIX: &str = "streamlog-";

enum Job {
    /// Remove this directory.
    Remove(PathBuf),
    /// Remove the temporary broker directories under this one whose process
    /// is gone.
    Sweep(PathBuf),
}

/// Removes a closed temporary broker's directory, on the reaper thread.
pub(crate) fn remove_later(dir: PathBuf) {
    reaper(Job::Remove(dir));
}

/// Hands `job` to the process's reaper thread, started on first use; if
/// the thread cannot start, does the job here.
fn reaper(job: Job) {
    static QUEUE: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("streamlog-reaper".into()).spawn(move || reap(&rx)).ok()?;
        Some(Mutex::new(tx))
    });
    let job = match queue {
        Some(tx) => match tx.lock().unwrap_or_else(|e| e.into_inner()).send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    match job {
        Job::Remove(dir) => remove(&dir),
        Job::Sweep(base) => leftovers(&base).iter().for_each(|d| remove(d)),
    }
}

/// The reaper thread. This process's own directories go first: the
/// leftovers of earlier processes (there can be thousands, at milliseconds
/// each) are removed one at a time while nothing else waits.
fn reap(rx: &mpsc::Receiver<Job>) {
    let mut leftover: Vec<PathBuf> = Vec::new();
    loop {
        let job = match leftover.is_empty() {
            true => match rx.recv() {
                Ok(job) => job,
                Err(mpsc::RecvError) => return,
            },
            false => match rx.try_recv() {
                Ok(job) => job,
                Err(mpsc::TryRecvError::Empty) => {
                    remove(&leftover.pop().expect("not empty"));
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => return,
            },
        };
        match job {
            Job::Remove(dir) => remove(&dir),
            Job::Sweep(base) => leftover.extend(leftovers(&base)),
        }
    }
}

/// Best effort: what is left is swept by a later process.
fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// The `base/streamlog-<pid>-*` directories of processes that no longer
/// exist, but only those that hold a broker (or nothing).
fn leftovers(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else { return Vec::new() };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)).and_then(|n| n.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let path = e.path();
        let ours = path.join(crate::log::meta::BROKER_META).is_file()
            || std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none());
        if pid != std::process::id() && !process_alive(pid) && ours {
            found.push(path);
        }
    }
    found
}

/// Whether process `pid` exists (Linux: it has a `/proc` entry; where
/// `/proc` is missing, every process counts as alive and nothing is swept).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

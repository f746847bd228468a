//! Helpers shared by the scenario tests.
#![allow(dead_code)]

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};

use bytes::Bytes;
use streamlog::{LogRecord, Partition, PartitionOptions, Record};

/// Copies every file of a live partition directory: the copy is what a
/// `kill -9` at this moment would leave on disk (the page cache survives a
/// process crash), minus the lock. A file that goes while the directory is
/// copied (a rolled segment's index files being written in the background)
/// is left out, as a crash a moment later would have found it gone.
pub fn crash_copy(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_name() != ".lock" {
            match fs::copy(e.path(), dst.join(e.file_name())) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("copying {}: {err}", e.path().display()),
            }
        }
    }
}

/// Every record from `from` to the high watermark, checked to be dense.
pub fn read_all(p: &Partition, from: u64) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let mut next = from;
    let end = p.high_watermark();
    while next < end {
        let batches = p.read(next, 256 << 10).unwrap();
        assert!(!batches.is_empty(), "no batch at {next} below {end}");
        for b in &batches {
            for r in b.try_records().unwrap() {
                assert_eq!(r.offset, next, "offsets must be dense");
                next += 1;
                out.push(r);
            }
        }
    }
    out
}

/// A record whose value encodes `i`, so that its content can be checked.
pub fn numbered(i: u64, value_len: usize) -> Record {
    let mut v = vec![(i % 251) as u8; value_len.max(8)];
    v[..8].copy_from_slice(&i.to_le_bytes());
    Record::new(Bytes::from(v)).with_key(format!("key-{i:08}")).with_timestamp(1_000_000 + i as i64)
}

pub fn number_of(r: &LogRecord) -> u64 {
    u64::from_le_bytes(r.value.as_ref().unwrap()[..8].try_into().unwrap())
}

pub fn small_segments() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(16 << 10).index_interval_bytes(256)
}

pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// A command that re-runs this test binary as a child process executing
/// only `test_name`, with `env_var` set to `dir` (the child's cue to play
/// its part). Its stdout is piped; libtest may print "test ... " ahead of
/// the first line, so parse lines with `find`, not `starts_with`.
pub fn child_process(test_name: &str, env_var: &str, dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(env_var, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    cmd
}

/// A temporary directory on tmpfs when there is one: for tests about
/// descriptors or memory, not fsyncs.
#[allow(dead_code)]
pub fn scratch_dir() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

/// Runs `f` on a thread of its own and returns what it returns: a hang
/// (a deadlock) fails the test after `limit` instead of holding up the run.
pub fn within<T: Send + 'static>(limit: std::time::Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || tx.send(f()).unwrap());
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("still running after {limit:?}: deadlocked"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(thread.join().expect_err("gone without a result"))
        }
    }
}

/// Runs the same async scenario on tokio's multi-thread and current-thread
/// runtimes and on `futures::executor`: the library picks no executor.
pub fn on_every_executor<F, Fut>(scenario: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    eprintln!("-- tokio multi-thread");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    rt.block_on(rt.spawn(scenario())).unwrap();
    drop(rt);
    eprintln!("-- tokio current-thread");
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(scenario());
    eprintln!("-- futures::executor");
    futures_executor::block_on(scenario());
}

/// A global allocator that counts, per thread, the allocations (and
/// reallocations) it forwards to the system allocator. A test binary
/// installs it with `#[global_allocator] static GLOBAL: CountingAlloc =
/// CountingAlloc;` and reads [`allocs`].
pub struct CountingAlloc;

thread_local! {
    static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the count is a thread-local
// `Cell` with a const initializer, which never allocates.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made on this thread so far (with [`CountingAlloc`]
/// installed).
pub fn allocs() -> u64 {
    ALLOCS.with(std::cell::Cell::get)
}

/// A task run by its own waker: `wake` polls it inline, on the waking
/// thread.
pub struct InlineTask {
    future: parking_lot::Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
    /// Woken since its last poll began: whoever holds the task polls again.
    notified: AtomicBool,
    polls: AtomicUsize,
}

impl InlineTask {
    pub fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Arc<InlineTask> {
        let task = Arc::new(InlineTask {
            future: parking_lot::Mutex::new(Some(Box::pin(future))),
            notified: AtomicBool::new(false),
            polls: AtomicUsize::new(0),
        });
        task.run();
        task
    }

    fn run(self: &Arc<Self>) {
        self.notified.store(true, Ordering::SeqCst);
        // A wake during a poll (this thread's, re-entered, or another's)
        // finds the task taken: the poll that holds it polls again.
        while self.notified.load(Ordering::SeqCst) {
            let Some(mut slot) = self.future.try_lock() else { return };
            if !self.notified.swap(false, Ordering::SeqCst) {
                continue;
            }
            let Some(future) = slot.as_mut() else { return };
            self.polls.fetch_add(1, Ordering::SeqCst);
            let waker = Waker::from(Arc::clone(self));
            if future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                *slot = None;
            }
        }
    }

    pub fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    /// Drops the future (and what it owns) outside the task's lock.
    pub fn cancel(&self) {
        let future = self.future.lock().take();
        drop(future);
    }
}

impl Wake for InlineTask {
    fn wake(self: Arc<Self>) {
        self.run();
    }
}

/// One batch of a segment file, as its header gives it (docs/FORMAT.md:
/// the length at byte 4, the base offset at 12, the last offset delta at
/// 20): for tests that damage a file where they mean to.
#[derive(Debug, Clone, Copy)]
pub struct StoredBatch {
    pub pos: usize,
    pub len: usize,
    pub base_offset: u64,
    pub last_offset: u64,
}

/// The batches of an undamaged segment file, walked by their lengths.
pub fn stored_batches(bytes: &[u8]) -> Vec<StoredBatch> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 44 <= bytes.len() {
        let base_offset = u64::from_le_bytes(bytes[pos + 12..pos + 20].try_into().unwrap());
        let len = u32_at(pos + 4) as usize;
        out.push(StoredBatch { pos, len, base_offset, last_offset: base_offset + u64::from(u32_at(pos + 20)) });
        pos += len;
    }
    out
}

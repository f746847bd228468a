//! Small file-system helpers with the durability rules of `docs/FORMAT.md`:
//! every create, rename and delete is followed by a sync of its directory
//! (but for the lock file and the removal of leftover `*.tmp` files, which
//! need not survive a crash).
//!
//! A broker opened with `BrokerOptions::fsync(false)` registers its
//! directory here ([`NoSyncRoot`]); every sync of a path under it is then
//! skipped. The check is one relaxed atomic load when no such broker is
//! open, and it runs only where an fsync would (never per append).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// Makes the directory entry changes inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(test)]
    crate::log::mmap::failpoints::count_sync();
    if skips_sync(dir) {
        return Ok(());
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("sync directory", dir))
}

/// `file.sync_all()`, unless `path` (the file's) lies under a [`NoSyncRoot`].
pub(crate) fn sync_file(file: &File, path: &Path) -> Result<()> {
    if skips_sync(path) {
        return Ok(());
    }
    file.sync_all().map_err(Error::io("sync", path))
}

/// How many [`NoSyncRoot`]s are registered: the fast path of [`skips_sync`].
static NO_SYNC_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The registered roots (a root may be registered more than once).
static NO_SYNC_ROOTS: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());

/// Whether syncs of `path` are skipped: it lies under a registered
/// [`NoSyncRoot`] (compared component by component, as the paths a broker
/// syncs are all built on its directory path).
pub(crate) fn skips_sync(path: &Path) -> bool {
    // Relaxed: a root is registered before its broker makes any file, on
    // the same thread or one that synchronized with it since.
    NO_SYNC_COUNT.load(Ordering::Relaxed) > 0
        && NO_SYNC_ROOTS.read().unwrap_or_else(|e| e.into_inner()).iter().any(|root| path.starts_with(root))
}

/// A directory whose files and subdirectories are never synced while this
/// value lives (a broker opened with `fsync(false)`).
#[derive(Debug)]
pub(crate) struct NoSyncRoot(PathBuf);

impl NoSyncRoot {
    pub(crate) fn register(root: &Path) -> NoSyncRoot {
        NO_SYNC_ROOTS.write().unwrap_or_else(|e| e.into_inner()).push(root.to_owned());
        NO_SYNC_COUNT.fetch_add(1, Ordering::Relaxed);
        NoSyncRoot(root.to_owned())
    }
}

impl Drop for NoSyncRoot {
    fn drop(&mut self) {
        let mut roots = NO_SYNC_ROOTS.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = roots.iter().position(|r| *r == self.0) {
            roots.swap_remove(i);
            NO_SYNC_COUNT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Replaces `dir/name` with `bytes` atomically: a temporary file in the same
/// directory, synced, renamed over the target, then the directory synced.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(bytes).map_err(Error::io("write", &tmp))?;
    sync_file(&f, &tmp)?;
    drop(f);
    fs::rename(&tmp, &target).map_err(Error::io("rename", &target))?;
    sync_dir(dir)
}

/// [`write_atomic`] of several files of `dir` (full paths), with one
/// directory sync for all the renames.
pub(crate) fn write_atomic_many(dir: &Path, files: &[(&Path, &[u8])]) -> Result<()> {
    for (target, bytes) in files {
        let mut tmp = target.as_os_str().to_owned();
        tmp.push(TMP_SUFFIX);
        let tmp = std::path::PathBuf::from(tmp);
        let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        f.write_all(bytes).map_err(Error::io("write", &tmp))?;
        sync_file(&f, &tmp)?;
        drop(f);
        fs::rename(&tmp, target).map_err(Error::io("rename", target))?;
    }
    sync_dir(dir)
}

/// Suffix of half-written files; any left over from a crash are deleted on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Removes `path` if it exists; returns whether it did.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io { op: "remove", path: path.to_owned(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_are_skipped_under_a_registered_root_only_while_it_lives() {
        let root = Path::new("/no-sync-test/broker");
        assert!(!skips_sync(&root.join("topics/t/0")));
        let a = NoSyncRoot::register(root);
        let b = NoSyncRoot::register(root);
        assert!(skips_sync(root) && skips_sync(&root.join("topics/t/0/00000000000000000000.log")));
        // Component-wise: a sibling whose name extends the root's is synced.
        assert!(!skips_sync(Path::new("/no-sync-test/broker2/x")));
        assert!(!skips_sync(Path::new("/no-sync-test")));
        drop(a);
        assert!(skips_sync(root), "registered twice, released once");
        drop(b);
        assert!(!skips_sync(root));
    }
}

//! Small file-system helpers with the durability rules of `docs/FORMAT.md`:
//! every create, rename and delete is followed by a sync of its directory
//! (but for the lock file and the removal of leftover `*.tmp` files, which
//! need not survive a crash).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Makes the directory entry changes inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("sync directory", dir))
}

/// Replaces `dir/name` with `bytes` atomically: a temporary file in the same
/// directory, synced, renamed over the target, then the directory synced.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(bytes).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("sync", &tmp))?;
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
        f.sync_all().map_err(Error::io("sync", &tmp))?;
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

//! Deliberately broken storage layers: each plays a known way for a log to lose data,
//! so a test can show that the torture checks catch it (the checks have teeth).

use actix_wal::{SharedStorage, Storage, StorageFile};
use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the wrapper gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// `sync_data` succeeds without syncing: the log acknowledges before the data is
    /// durable.
    AckBeforeFsync,
    /// `sync_dir` succeeds without syncing: a new segment's directory entry (and a removal)
    /// may vanish in a crash.
    SkipDirSync,
    /// An `fsync` that fails is retried, and the retry's success believed: after Linux
    /// dropped the dirty pages (PostgreSQL's fsyncgate).
    RetryFsync,
    /// `set_len` does nothing: the cut-back of a failed write and recovery's cut of a torn
    /// tail leave the bytes in place.
    SkipCutBack,
    /// `set_len` cuts one byte too many: an off-by-one in the cut-back and in recovery's
    /// cut of a torn tail.
    CutOneByteShort,
    /// A metadata replace that never lands (a checkpoint, a metadata slot, the
    /// newest-segment floor all stay behind): renaming a file over an existing `META` or
    /// `META.copy` succeeds without doing it, and so do writes and cuts of an existing
    /// file opened under either name (a replace in place). The copies a new log gets
    /// land, so the log keeps the `META` it started with.
    MetaNotRenamed,
    /// A spare segment's `fsync`s do nothing while it is under its spare name: a
    /// rollover renames it to its segment name before its header and frames are
    /// durable (the order "Creating a segment" forbids).
    SpareRenamedUnsynced,
    /// Listing a directory leaves out spare segments: a recovery that never adopts a
    /// spare whose rename a crash lost (and never removes one either).
    SparesUnlisted,
}

/// Whether `path` names a spare segment (see `actix_wal::files::is_spare_name`).
fn is_spare(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(actix_wal::files::is_spare_name)
}

/// Whether `path` names a copy of the metadata file.
fn is_meta(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == "META" || n == "META.copy")
}

/// A storage that forwards to `inner`, wrong in the way `broken` says.
#[derive(Debug)]
pub struct BrokenStorage {
    inner: SharedStorage,
    broken: Broken,
    /// Broken only while this is true (always, for [`BrokenStorage::wrap`]).
    armed: Arc<AtomicBool>,
    /// Spares opened, and whether each is still under its spare name.
    spares: Mutex<Vec<(std::path::PathBuf, Arc<AtomicBool>)>>,
}

impl BrokenStorage {
    /// `inner`, broken as `broken` says, as a shared storage.
    pub fn wrap(inner: SharedStorage, broken: Broken) -> SharedStorage {
        BrokenStorage::wrap_armed(inner, broken, Arc::new(AtomicBool::new(true)))
    }

    /// `inner`, broken as `broken` says only while `armed` is true (e.g. during one
    /// operation of the workload, so the checks show that operation's own teeth).
    pub fn wrap_armed(
        inner: SharedStorage,
        broken: Broken,
        armed: Arc<AtomicBool>,
    ) -> SharedStorage {
        Arc::new(BrokenStorage {
            inner,
            broken,
            armed,
            spares: Mutex::default(),
        })
    }

    fn broken(&self) -> Option<Broken> {
        self.armed.load(Ordering::SeqCst).then_some(self.broken)
    }

    fn file(&self, f: Box<dyn StorageFile>, path: &Path, opened: bool) -> Box<dyn StorageFile> {
        let unnamed = (self.broken == Broken::SpareRenamedUnsynced && is_spare(path))
            .then(|| Arc::new(AtomicBool::new(true)));
        if let Some(u) = &unnamed {
            self.spares
                .lock()
                .unwrap()
                .push((path.to_path_buf(), u.clone()));
        }
        Box::new(BrokenFile {
            inner: f,
            broken: self.broken,
            armed: self.armed.clone(),
            unnamed,
            meta: opened && is_meta(path),
        })
    }
}

impl Storage for BrokenStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        self.inner.is_dir(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = self.inner.list(dir)?;
        if self.broken() == Some(Broken::SparesUnlisted) {
            names.retain(|n| !actix_wal::files::is_spare_name(n));
        }
        Ok(names)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.file(self.inner.create(path)?, path, false))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.file(self.inner.open(path, writable)?, path, true))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.broken() == Some(Broken::MetaNotRenamed)
            && is_meta(to)
            && self.inner.open(to, false).is_ok()
        {
            return Ok(());
        }
        if self.broken == Broken::SpareRenamedUnsynced {
            // The handles of a renamed spare sync again from now on.
            self.spares.lock().unwrap().retain(|(p, unnamed)| {
                let keep = p != from;
                if !keep {
                    unnamed.store(false, Ordering::SeqCst);
                }
                keep
            });
        }
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self.broken() {
            Some(Broken::SkipDirSync) => Ok(()),
            _ => self.inner.sync_dir(dir),
        }
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
        self.inner.lock(path)
    }
    fn lock_dir(
        &self,
        dir: &Path,
        lock_name: &str,
    ) -> io::Result<Box<dyn actix_wal::storage::DirLock>> {
        self.inner.lock_dir(dir, lock_name)
    }
}

#[derive(Debug)]
struct BrokenFile {
    inner: Box<dyn StorageFile>,
    broken: Broken,
    armed: Arc<AtomicBool>,
    /// `SpareRenamedUnsynced`: true while this spare is under its spare name.
    unnamed: Option<Arc<AtomicBool>>,
    /// Opened under a name of a copy of the metadata file (`MetaNotRenamed`).
    meta: bool,
}

impl BrokenFile {
    fn broken(&self) -> Option<Broken> {
        self.armed.load(Ordering::SeqCst).then_some(self.broken)
    }

    fn sync(&self, sync: impl Fn(&dyn StorageFile) -> io::Result<()>) -> io::Result<()> {
        if self.broken().is_some()
            && self
                .unnamed
                .as_ref()
                .is_some_and(|u| u.load(Ordering::SeqCst))
        {
            return Ok(());
        }
        match self.broken() {
            Some(Broken::RetryFsync) => {
                sync(self.inner.as_ref()).or_else(|_| sync(self.inner.as_ref()))
            }
            _ => sync(self.inner.as_ref()),
        }
    }
}

impl StorageFile for BrokenFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.meta && self.broken() == Some(Broken::MetaNotRenamed) {
            return Ok(());
        }
        self.inner.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.meta && self.broken() == Some(Broken::MetaNotRenamed) {
            return Ok(());
        }
        match self.broken() {
            Some(Broken::SkipCutBack) => Ok(()),
            Some(Broken::CutOneByteShort) => self.inner.set_len(len.saturating_sub(1)),
            _ => self.inner.set_len(len),
        }
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        match self.broken() {
            Some(Broken::AckBeforeFsync) => Ok(()),
            _ => self.sync(|f| f.sync_data()),
        }
    }
    fn sync_all(&self) -> io::Result<()> {
        self.sync(|f| f.sync_all())
    }
    fn is_linked(&self) -> io::Result<bool> {
        self.inner.is_linked()
    }
}

//! `FaultyFs`: the real file system, with faults the test switches on and off while the
//! log runs: removals, opens for writing, writes and fsyncs of chosen files fail with a
//! chosen errno (an immutable segment's `EPERM`, `EIO`, `ENOSPC`). Tests run as root, where file
//! modes stop nothing, so a fault at the storage seam stands in for them.
#![allow(dead_code)]

use actix_wal::storage::DirLock;
use actix_wal::{FsStorage, Storage, StorageFile};
use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Which operations fail, on paths whose name ends with a suffix, and with which errno.
#[derive(Debug, Default, Clone)]
struct Faults {
    remove: Option<(String, i32)>,
    open_for_write: Option<(String, i32)>,
    write: Option<(String, i32)>,
    sync: Option<(String, i32)>,
}

fn hit(fault: &Option<(String, i32)>, path: &Path) -> io::Result<()> {
    match fault {
        Some((suffix, errno)) if path.to_string_lossy().ends_with(suffix.as_str()) => {
            Err(io::Error::from_raw_os_error(*errno))
        }
        _ => Ok(()),
    }
}

/// The real file system with switchable faults; share it with `WalConfig::storage` as an
/// `Arc` and switch faults on the test's copy.
#[derive(Debug, Default)]
pub struct FaultyFs {
    faults: Arc<Mutex<Faults>>,
}

impl FaultyFs {
    /// A new one, no fault on.
    pub fn new() -> Arc<FaultyFs> {
        Arc::new(FaultyFs::default())
    }

    /// `remove` of a path ending with `suffix` fails with `errno` (`""`: every path).
    pub fn fail_remove(&self, suffix: &str, errno: i32) {
        self.faults.lock().unwrap().remove = Some((suffix.to_string(), errno));
    }

    /// `open` for writing (and `create`) of a path ending with `suffix` fails with `errno`.
    pub fn fail_open_for_write(&self, suffix: &str, errno: i32) {
        self.faults.lock().unwrap().open_for_write = Some((suffix.to_string(), errno));
    }

    /// Writes into a file whose path ends with `suffix` fail with `errno`, nothing written
    /// (also through handles opened before).
    pub fn fail_write(&self, suffix: &str, errno: i32) {
        self.faults.lock().unwrap().write = Some((suffix.to_string(), errno));
    }

    /// `fdatasync` and `fsync` of a file whose path ends with `suffix` fail with `errno`.
    pub fn fail_sync(&self, suffix: &str, errno: i32) {
        self.faults.lock().unwrap().sync = Some((suffix.to_string(), errno));
    }

    /// Every fault off.
    pub fn heal(&self) {
        *self.faults.lock().unwrap() = Faults::default();
    }

    fn faults(&self) -> Faults {
        self.faults.lock().unwrap().clone()
    }
}

impl Storage for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        FsStorage.is_dir(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        hit(&self.faults().open_for_write, path)?;
        let inner = FsStorage.create(path)?;
        Ok(self.wrap(inner, path))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        if writable {
            hit(&self.faults().open_for_write, path)?;
        }
        let inner = FsStorage.open(path, writable)?;
        Ok(self.wrap(inner, path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        hit(&self.faults().remove, path)?;
        FsStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
        FsStorage.lock(path)
    }
    fn lock_dir(&self, dir: &Path, lock_name: &str) -> io::Result<Box<dyn DirLock>> {
        FsStorage.lock_dir(dir, lock_name)
    }
}

impl FaultyFs {
    fn wrap(&self, inner: Box<dyn StorageFile>, path: &Path) -> Box<dyn StorageFile> {
        Box::new(FaultyFile {
            inner,
            path: path.to_path_buf(),
            faults: self.faults.clone(),
        })
    }
}

/// A file of [`FaultyFs`]: its writes fail while a write fault names it.
#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn StorageFile>,
    path: std::path::PathBuf,
    faults: Arc<Mutex<Faults>>,
}

impl StorageFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let fault = self.faults.lock().unwrap().write.clone();
        hit(&fault, &self.path)?;
        self.inner.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        let fault = self.faults.lock().unwrap().sync.clone();
        hit(&fault, &self.path)?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        let fault = self.faults.lock().unwrap().sync.clone();
        hit(&fault, &self.path)?;
        self.inner.sync_all()
    }
    fn is_linked(&self) -> io::Result<bool> {
        self.inner.is_linked()
    }
    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        self.inner.read_cached_at(buf, offset)
    }
}

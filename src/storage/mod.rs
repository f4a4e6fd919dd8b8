//! The storage seam: every byte actix-wal reads or writes goes through [`Storage`] and
//! [`StorageFile`]. The real implementation ([`FsStorage`]) is plain `std::fs` plus
//! `fallocate` and `flock`; a simulated disk can stand in for it in tests. The cost on the
//! real path is one virtual call per system call, which is noise beside the system call.

mod fs;

pub use fs::FsStorage;

use std::any::Any;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A file system as actix-wal needs it.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Creates a directory and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// `Ok(true)` for a directory, `Ok(false)` for anything else that exists.
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// The names of the entries of a directory, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a file for reading and writing, truncating it if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file, for reading and, if `writable`, writing.
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>>;
    /// Renames a file (atomically replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing), held until the returned guard
    /// is dropped. A lock already held, by this process or another, is `WouldBlock`.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>>;
}

/// An open file.
pub trait StorageFile: Send + fmt::Debug {
    /// Writes all of `buf` at `offset` (a positional write: the file offset is not used).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The file's size in bytes.
    fn size_bytes(&self) -> io::Result<u64>;
    /// Sets the file's size.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves blocks up to `len` bytes so that later writes need no metadata update.
    /// Where the file system cannot, this does nothing and succeeds.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: makes the written data durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: makes data and metadata durable.
    fn sync_all(&self) -> io::Result<()>;
}

/// A shared handle to a storage implementation.
pub type SharedStorage = Arc<dyn Storage>;

/// The default storage: the real file system.
pub fn default_storage() -> SharedStorage {
    Arc::new(FsStorage)
}

//! The storage seam: every byte actix-wal reads or writes goes through [`Storage`] and
//! [`StorageFile`]. The real implementation ([`FsStorage`]) is plain `std::fs` plus
//! `fallocate` and `flock`; a simulated disk can stand in for it in tests. The cost on the
//! real path is one virtual call per system call, which is noise beside the system call.
//!
//! What [`FsStorage`] creates only the owner can read (files 0600, directories 0700,
//! whatever the umask); [`GroupReadFsStorage`] lets the owner's group read too.
//!
//! The single-writer lock of a log directory is a [`DirLock`] from [`Storage::lock_dir`]:
//! on the real file system an `flock` on the directory itself, which no file deletion
//! can undo, and which the holder can check still guards the path it writes to.

mod fs;

pub use fs::{FsStorage, GroupReadFsStorage};

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
    /// Creates a file for reading and writing, truncating it if it exists. Only a regular
    /// file: a path that names anything else (a symbolic link included) is refused with
    /// [`not_a_file`], without blocking.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file, for reading and, if `writable`, writing. Only a regular
    /// file: a path that names anything else (a FIFO, a symbolic link, ...) is refused
    /// with [`not_a_file`], without blocking.
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

    /// Takes the single-writer lock of the log directory `dir`, held until the returned
    /// guard is dropped. A lock already held, by this process or another, is `WouldBlock`.
    ///
    /// The exclusion must belong to the directory itself, not to a name inside it that
    /// can be unlinked: [`FsStorage`] `flock`s the directory's own file descriptor (and
    /// also creates and locks the file `lock_name` in it, for operators and for older
    /// versions that lock only that file). The default locks only `dir/lock_name`
    /// through [`Storage::lock`], which deleting that file defeats, and its
    /// [`DirLock::verify`] cannot tell anything; storages that can do better override it.
    fn lock_dir(&self, dir: &Path, lock_name: &str) -> io::Result<Box<dyn DirLock>> {
        let guard = self.lock(&dir.join(lock_name))?;
        Ok(Box::new(FileLockOnly(std::sync::Mutex::new(guard))))
    }

    /// This storage creating files and directories the owner's group may read
    /// (`group_read`), or that only the owner may (see
    /// [`WalConfig::group_read`](crate::WalConfig::group_read)): [`FsStorage`] and
    /// [`GroupReadFsStorage`] answer one another. `None`, the default, where permissions
    /// mean nothing (a simulated disk): the storage is used as it is.
    fn with_group_read(&self, group_read: bool) -> Option<SharedStorage> {
        let _ = group_read;
        None
    }
}

/// A held single-writer lock of a log directory (see [`Storage::lock_dir`]). Dropping it
/// releases the lock.
pub trait DirLock: Send + Sync + fmt::Debug {
    /// Checks that the lock still guards the directory's path: `Ok` while the path names
    /// the directory that was locked. A removed lock file is created and locked again
    /// (the exclusion does not depend on it). Errors:
    /// - `NotFound`: the path no longer names the locked directory (it was removed,
    ///   renamed or replaced); files written through the path now go somewhere else;
    /// - `WouldBlock`: someone else holds a lock file recreated in the directory.
    fn verify(&self) -> io::Result<()>;
}

/// [`Storage::lock_dir`]'s default: a lock on the lock file only, which cannot be checked.
struct FileLockOnly(#[allow(dead_code)] std::sync::Mutex<Box<dyn Any + Send>>);

impl fmt::Debug for FileLockOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileLockOnly")
    }
}

impl DirLock for FileLockOnly {
    fn verify(&self) -> io::Result<()> {
        Ok(())
    }
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

    /// Whether the file still has a name (its link count is above zero). A file removed
    /// while open still takes writes and fsyncs, and they are lost when the last handle
    /// closes: the writer asks this after each fsync, before it acknowledges. It is on the
    /// commit path, so an implementation should not read the file's timestamps (on Linux
    /// 6.13 and later that makes the next write dirty the inode; the real file system asks
    /// `statx` for the link count alone). The default answers `true` (cannot tell).
    fn is_linked(&self) -> io::Result<bool> {
        Ok(true)
    }

    /// When the file's data was last modified, if the storage can tell. Retention by age
    /// (`WalConfig::retention_secs`) reads it of the segments below the checkpoint, off the
    /// commit path. The default answers `Ok(None)` (cannot tell: such a segment counts as
    /// just written, so age alone never removes it).
    fn modified(&self) -> io::Result<Option<std::time::SystemTime>> {
        Ok(None)
    }

    /// Reads exactly `buf.len()` bytes at `offset` only if that needs no wait for the
    /// device (the bytes are in memory: Linux `preadv2` with `RWF_NOWAIT`): `Ok(true)`
    /// when `buf` was filled, `Ok(false)` when it would have waited (what `buf` holds
    /// then is unspecified). Reads of the open log use it to serve a read on the caller's
    /// thread, and hand it to the reader pool otherwise. The default answers `Ok(false)`.
    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        let _ = (buf, offset);
        Ok(false)
    }
}

/// What a path is when it is not a regular file (see [`not_a_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A symbolic link (not followed).
    Symlink,
    /// A FIFO (named pipe): opening one for reading blocks until a writer comes.
    Fifo,
    /// A Unix-domain socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// Something else the operating system reports.
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "directory",
            FileKind::Symlink => "symbolic link",
            FileKind::Fifo => "FIFO",
            FileKind::Socket => "socket",
            FileKind::BlockDevice => "block device",
            FileKind::CharDevice => "character device",
            FileKind::Other => "special file",
        })
    }
}

/// The payload of the `io::Error` a storage returns for a path that is not a regular file.
#[derive(Debug)]
struct NotAFile(FileKind);

impl fmt::Display for NotAFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {}, not a regular file", self.0)
    }
}

impl std::error::Error for NotAFile {}

/// The error [`Storage::open`] and [`Storage::create`] return for a path that is not a
/// regular file; [`crate::WalError::io`] turns it into [`crate::WalError::NotAFile`]. A
/// simulated storage can return it too.
pub fn not_a_file(kind: FileKind) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, NotAFile(kind))
}

/// The kind carried by an error made by [`not_a_file`], if it is one.
pub fn not_a_file_kind(e: &io::Error) -> Option<FileKind> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<NotAFile>())
        .map(|n| n.0)
}

/// A shared handle to a storage implementation.
pub type SharedStorage = Arc<dyn Storage>;

/// The default storage: the real file system.
pub fn default_storage() -> SharedStorage {
    Arc::new(FsStorage)
}

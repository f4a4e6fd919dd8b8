//! `FsStorage`: the real file system through `std::fs`, with `fallocate` and `flock` from
//! rustix (safe wrappers, so the crate stays free of `unsafe`).
//!
//! What it creates is private: files 0600 and directories 0700 whatever the process's
//! umask ([`GroupReadFsStorage`]: 0640 and 0750), as etcd and PostgreSQL do, since a log
//! holds every record and, for Raft, the vote. The mode is given at creation and set again
//! with `fchmod` (`chmod` for a directory) right after, because the umask masks the
//! first. A file renamed into place (`META` from `META.tmp`, a spare segment) keeps the
//! mode it was created with. An existing log directory that others may enter is logged
//! (a `tracing` warning at lock time), not changed and not refused.
//!
//! Files are opened only if they are regular files: `O_NONBLOCK | O_NOFOLLOW` on the
//! `open(2)` (a FIFO then opens at once instead of blocking until a writer comes, and a
//! symbolic link fails with `ELOOP` instead of being followed), then an `fstat` of the open
//! file refuses anything else. Checking the open file, not the path before opening, leaves
//! no window for the path to be swapped in between.

use super::{not_a_file, DirLock, FileKind, SharedStorage, Storage, StorageFile};
use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use std::any::Any;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{
    DirBuilderExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The real file system. What it creates only the owner can read: files 0600,
/// directories 0700, whatever the umask. [`WalConfig::group_read`](crate::WalConfig::group_read)
/// switches a log to [`GroupReadFsStorage`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FsStorage;

/// The real file system, creating what the owner's group may read too: files 0640,
/// directories 0750 (PostgreSQL's group access), whatever the umask. Otherwise the same
/// as [`FsStorage`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupReadFsStorage;

/// The permission bits given to what is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Modes {
    /// Of a file.
    file: u32,
    /// Of a directory.
    dir: u32,
}

/// The owner alone: [`FsStorage`].
const PRIVATE: Modes = Modes {
    file: 0o600,
    dir: 0o700,
};

/// The owner, and the group reading: [`GroupReadFsStorage`].
const GROUP_READ: Modes = Modes {
    file: 0o640,
    dir: 0o750,
};

/// The implementation behind both public types, with the modes it creates with.
#[derive(Debug, Clone, Copy)]
struct Fs(Modes);

/// `impl Storage` for a public type by handing every call to [`Fs`] with its modes.
macro_rules! storage_with_modes {
    ($ty:ty, $modes:expr) => {
        impl Storage for $ty {
            fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
                Fs($modes).create_dir_all(dir)
            }
            fn is_dir(&self, path: &Path) -> io::Result<bool> {
                Fs($modes).is_dir(path)
            }
            fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
                Fs($modes).list(dir)
            }
            fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
                Fs($modes).create(path)
            }
            fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
                Fs($modes).open(path, writable)
            }
            fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
                Fs($modes).rename(from, to)
            }
            fn remove(&self, path: &Path) -> io::Result<()> {
                Fs($modes).remove(path)
            }
            fn sync_dir(&self, dir: &Path) -> io::Result<()> {
                Fs($modes).sync_dir(dir)
            }
            fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
                Fs($modes).lock(path)
            }
            fn lock_dir(&self, dir: &Path, lock_name: &str) -> io::Result<Box<dyn DirLock>> {
                Fs($modes).lock_dir(dir, lock_name)
            }
            fn with_group_read(&self, group_read: bool) -> Option<SharedStorage> {
                Some(if group_read {
                    Arc::new(GroupReadFsStorage)
                } else {
                    Arc::new(FsStorage)
                })
            }
        }
    };
}

storage_with_modes!(FsStorage, PRIVATE);
storage_with_modes!(GroupReadFsStorage, GROUP_READ);

#[derive(Debug)]
struct FsFile(File);

impl Fs {
    /// Creates `dir` and its missing parents, each with the directory mode.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut p = Some(dir);
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            match fs::metadata(d) {
                // A directory, or something else by that name (the creation below then
                // says what).
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(d),
                Err(e) => return Err(e),
            }
            p = d.parent();
        }
        for d in missing.iter().rev() {
            match DirBuilder::new().mode(self.0.dir).create(d) {
                Ok(()) => fs::set_permissions(d, Permissions::from_mode(self.0.dir))?,
                // Created meanwhile by someone else: theirs, with their mode.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        if missing.is_empty() {
            // Nothing was missing: `dir` exists (as a directory, or the error says what).
            DirBuilder::new().recursive(true).create(dir)?;
        }
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(fs::metadata(path)?.is_dir())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = open_regular(
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(self.0.file),
        )?;
        // The umask masked the mode above, and a file that existed kept its own.
        f.set_permissions(Permissions::from_mode(self.0.file))?;
        Ok(Box::new(FsFile(f)))
    }

    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let f = open_regular(path, OpenOptions::new().read(true).write(writable))?;
        Ok(Box::new(FsFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.0.file)
            .open(path)?;
        set_mode_if_other(&f, self.0.file)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
        // The lock lives as long as this open file description.
        Ok(Box::new(f))
    }

    fn lock_dir(&self, dir: &Path, lock_name: &str) -> io::Result<Box<dyn DirLock>> {
        // The directory is opened, then locked, then checked to be still what the path
        // names: if it was renamed or replaced in between, the lock is on the wrong
        // directory and the attempt starts again. A path replaced that often is an error.
        const ATTEMPTS: usize = 8;
        for _ in 0..ATTEMPTS {
            let fd = rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            let dir_file = File::from(fd);
            rustix::fs::flock(&dir_file, FlockOperation::NonBlockingLockExclusive)
                .map_err(errno)?;
            let locked = dir_file.metadata()?;
            if identity(&locked) != identity(&fs::metadata(dir)?) {
                continue;
            }
            warn_if_open(dir, locked.mode(), self.0.dir);
            let lock_file = lock_file_in(&dir_file, lock_name, self.0.file)?;
            return Ok(Box::new(FsDirLock {
                path: dir.to_path_buf(),
                lock_name: lock_name.to_string(),
                file_mode: self.0.file,
                dir: dir_file,
                lock_file: Mutex::new(lock_file),
            }));
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} was replaced {ATTEMPTS} times while being locked",
                dir.display()
            ),
        ))
    }
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// What makes a file the same file: device and inode numbers.
fn identity(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// Permission bits beyond `wanted` that a log directory of mode `mode` gives: what lets
/// others (or the group, beyond reading) in. Zero for a directory as private as wanted.
fn looser_bits(mode: u32, wanted: u32) -> u32 {
    mode & 0o777 & !wanted
}

/// Logs a warning when the existing log directory `dir` lets more users in than `wanted`
/// (made by an older version, by hand, or under a loose umask). The directory is left as
/// it is: an operator may have opened it on purpose, and refusing it would stop a log
/// that worked before. docs/operations.md says how to close it.
fn warn_if_open(dir: &Path, mode: u32, wanted: u32) {
    let extra = looser_bits(mode, wanted);
    if extra != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format_args!("{:o}", mode & 0o7777),
            wanted = format_args!("{wanted:o}"),
            "the log directory is open to other users (its records and Raft vote are readable); chmod it to the wanted mode"
        );
    }
}

/// Sets `f`'s permission bits to `mode` if they differ (a file just created under a
/// umask, or an older version's).
fn set_mode_if_other(f: &File, mode: u32) -> io::Result<()> {
    if f.metadata()?.mode() & 0o7777 != mode {
        f.set_permissions(Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Opens (creating it with `mode`) and locks the lock file inside the locked directory,
/// through the directory's descriptor so that it lands in that directory whatever its
/// path names now.
fn lock_file_in(dir: &File, lock_name: &str, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        lock_name,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(mode),
    )
    .map_err(errno)?;
    let f = File::from(fd);
    set_mode_if_other(&f, mode)?;
    rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).map_err(errno)?;
    Ok(f)
}

/// The lock of a log directory on the real file system: an `flock` on the directory's own
/// descriptor (the exclusion: it lives with the directory's inode, so deleting a file
/// cannot undo it), plus an `flock` on the lock file inside (for operators, who look for
/// it, and for older versions of this crate, which lock only it).
#[derive(Debug)]
struct FsDirLock {
    /// The path the log writes through.
    path: PathBuf,
    /// Name of the lock file in it.
    lock_name: String,
    /// The mode a recreated lock file gets.
    file_mode: u32,
    /// The locked directory; the lock lives as long as this open file description.
    dir: File,
    /// The locked lock file; replaced when it was removed (see [`DirLock::verify`]).
    lock_file: Mutex<File>,
}

impl DirLock for FsDirLock {
    fn verify(&self) -> io::Result<()> {
        let gone = |why: &str| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} {why}", self.path.display()),
            )
        };
        let now = match fs::metadata(&self.path) {
            Ok(m) => identity(&m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(gone("no longer exists (removed or renamed)"))
            }
            Err(e) => return Err(e),
        };
        if now != identity(&self.dir.metadata()?) {
            return Err(gone("now names another directory than the one locked"));
        }
        // A panic while holding this lock cannot leave the file handle half replaced.
        let mut held = self.lock_file.lock().unwrap_or_else(|e| e.into_inner());
        let named = match rustix::fs::statat(
            &self.dir,
            self.lock_name.as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Some((st.st_dev, st.st_ino)),
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => return Err(errno(e)),
        };
        if named != Some(identity(&held.metadata()?)) {
            tracing::warn!(
                dir = %self.path.display(),
                lock_file = %self.lock_name,
                "the lock file was removed or replaced; locking it again (the directory itself stays locked)"
            );
            *held = lock_file_in(&self.dir, &self.lock_name, self.file_mode)?;
        }
        Ok(())
    }
}

/// Opens `path` with `opts` if it is a regular file, without blocking and without
/// following a symbolic link; anything else is [`not_a_file`].
fn open_regular(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    let flags = OFlags::NONBLOCK | OFlags::NOFOLLOW;
    // The flag bits are small positive values (O_NONBLOCK, O_NOFOLLOW), so they fit an i32.
    let f = match opts.custom_flags(flags.bits() as i32).open(path) {
        Ok(f) => f,
        Err(e) => {
            // A symbolic link (ELOOP), a directory opened for writing (EISDIR), a socket
            // (ENXIO): say what the path is. Anything else keeps its own error.
            return Err(match fs::symlink_metadata(path) {
                Ok(m) if !m.file_type().is_file() => not_a_file(kind_of(m.file_type())),
                _ => e,
            });
        }
    };
    let file_type = f.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(not_a_file(kind_of(file_type)));
    }
    // A regular file ignores O_NONBLOCK; it is cleared all the same so the descriptor is
    // exactly what a plain open gives.
    let fl = rustix::fs::fcntl_getfl(&f).map_err(errno)?;
    rustix::fs::fcntl_setfl(&f, fl - OFlags::NONBLOCK).map_err(errno)?;
    Ok(f)
}

fn kind_of(t: fs::FileType) -> FileKind {
    if t.is_dir() {
        FileKind::Directory
    } else if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_fifo() {
        FileKind::Fifo
    } else if t.is_socket() {
        FileKind::Socket
    } else if t.is_block_device() {
        FileKind::BlockDevice
    } else if t.is_char_device() {
        FileKind::CharDevice
    } else {
        FileKind::Other
    }
}

impl StorageFile for FsFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn modified(&self) -> io::Result<Option<std::time::SystemTime>> {
        self.0.metadata()?.modified().map(Some)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        match rustix::fs::fallocate(&self.0, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            // Not every file system can preallocate; the log works without it.
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => Ok(()),
            Err(e) => Err(io::Error::from_raw_os_error(e.raw_os_error())),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn is_linked(&self) -> io::Result<bool> {
        // `statx` asking for the link count alone, not `fstat`: since Linux 6.13 a query
        // of a file's mtime or ctime makes the next write stamp a fine-grained time
        // (multigrain timestamps), so an `fstat` after each batch had every write dirty
        // the inode, and the next `fdatasync` waited for it. Measured on the development
        // VM: one committer's p50 1.29x that of no check at all (docs/performance.md).
        match rustix::fs::statx(
            &self.0,
            "",
            AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::NLINK,
        ) {
            Ok(st) if st.stx_mask & rustix::fs::StatxFlags::NLINK.bits() != 0 => {
                Ok(st.stx_nlink > 0)
            }
            // No `statx` (old kernels, some sandboxes), or no link count in its answer.
            _ => Ok(self.0.metadata()?.nlink() > 0),
        }
    }

    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        use rustix::io::{Errno, ReadWriteFlags};
        if NOWAIT_UNSUPPORTED.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let want = buf.len();
        match rustix::io::preadv2(
            &self.0,
            &mut [io::IoSliceMut::new(buf)],
            offset,
            ReadWriteFlags::NOWAIT,
        ) {
            // A short read: part of the span is not in memory (or past the end); the
            // caller reads it all the ordinary way instead.
            Ok(n) => Ok(n == want),
            Err(Errno::AGAIN) => Ok(false),
            // An old kernel, or a file system without RWF_NOWAIT: never ask again.
            Err(Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL) => {
                NOWAIT_UNSUPPORTED.store(true, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(errno(e)),
        }
    }
}

/// Set once `preadv2(RWF_NOWAIT)` was refused as unsupported: later cached reads answer
/// "would wait" without the system call.
static NOWAIT_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
#[path = "fs_tests.rs"]
mod tests;

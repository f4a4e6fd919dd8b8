//! `FsStorage`: the real file system through `std::fs`, with `fallocate` and `flock` from
//! rustix (safe wrappers, so the crate stays free of `unsafe`).
//!
//! Files are opened only if they are regular files: `O_NONBLOCK | O_NOFOLLOW` on the
//! `open(2)` (a FIFO then opens at once instead of blocking until a writer comes, and a
//! symbolic link fails with `ELOOP` instead of being followed), then an `fstat` of the open
//! file refuses anything else. Checking the open file, not the path before opening, leaves
//! no window for the path to be swapped in between.

use super::{not_a_file, FileKind, Storage, StorageFile};
use rustix::fs::OFlags;
use std::any::Any;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsStorage;

#[derive(Debug)]
struct FsFile(File);

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
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
                .truncate(true),
        )?;
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
            .open(path)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
        // The lock lives as long as this open file description.
        Ok(Box::new(f))
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

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
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
}

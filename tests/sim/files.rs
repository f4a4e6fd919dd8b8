//! `SimStorage` as a [`Storage`]: directories, locks, and its files as
//! [`StorageFile`]s, every operation counted, recorded and open to faults.

use super::ops::{Fault, OpKind};
use super::state::{errno, norm, not_found, split, Change, DirChange, DirNode, Entry, Inode};
use super::{Shared, SimStorage};
use actix_wal::storage::DirLock;
use actix_wal::{Storage, StorageFile};
use std::any::Any;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl SimStorage {
    /// Creates (or truncates) a file; returns its inode.
    fn create_locked(s: &mut Shared, path: &Path) -> io::Result<u64> {
        let (parent, name) = split(path)?;
        s.state.dir_mut(&parent)?;
        SimStorage::begin(s, OpKind::Create, path, 0)?;
        match s.state.lookup(path) {
            Ok(Entry::File(id)) => {
                s.state.file_op(id, Change::SetLen(0));
                Ok(id)
            }
            Ok(Entry::Dir) => Err(errno(rustix::io::Errno::ISDIR)),
            Err(_) => {
                let id = s.state.next_inode;
                s.state.next_inode += 1;
                s.state.inodes.insert(id, Inode::default());
                s.state.dir_op(
                    &parent,
                    DirChange::Link {
                        name,
                        entry: Entry::File(id),
                    },
                )?;
                Ok(id)
            }
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = norm(dir);
        let mut s = self.lock_shared();
        let mut missing = Vec::new();
        let mut p = dir.clone();
        loop {
            match s.state.lookup(&p) {
                Ok(Entry::Dir) => break,
                Ok(Entry::File(_)) => return Err(errno(rustix::io::Errno::NOTDIR)),
                Err(_) => missing.push(p.clone()),
            }
            if !p.pop() {
                break;
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        SimStorage::begin(&mut s, OpKind::MkDir, &dir, 0)?;
        for d in missing.into_iter().rev() {
            let (parent, name) = split(&d)?;
            s.state.dirs.insert(d.clone(), DirNode::default());
            s.state.dir_op(
                &parent,
                DirChange::Link {
                    name,
                    entry: Entry::Dir,
                },
            )?;
        }
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock_shared().state.lookup(path)? == Entry::Dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.lock_shared();
        Ok(s.state.dir_mut(dir)?.current.keys().cloned().collect())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let id = SimStorage::create_locked(&mut self.lock_shared(), path)?;
        Ok(Box::new(SimFile {
            sim: self.clone(),
            id,
            name: path.to_path_buf(),
            writable: true,
        }))
    }

    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        let s = self.lock_shared();
        match s.state.lookup(path)? {
            Entry::File(id) => Ok(Box::new(SimFile {
                sim: self.clone(),
                id,
                name: path.to_path_buf(),
                writable,
            })),
            Entry::Dir => Err(errno(rustix::io::Errno::ISDIR)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock_shared();
        let (dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        if dir != to_dir {
            return Err(errno(rustix::io::Errno::XDEV));
        }
        let entry = s.state.lookup(from)?;
        SimStorage::begin(&mut s, OpKind::Rename, to, 0)?;
        s.state.dir_op(
            &dir,
            DirChange::Rename {
                from: from_name,
                to: to_name,
                entry,
            },
        )
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock_shared();
        let (dir, name) = split(path)?;
        match s.state.lookup(path)? {
            Entry::File(_) => {}
            Entry::Dir => return Err(errno(rustix::io::Errno::ISDIR)),
        }
        SimStorage::begin(&mut s, OpKind::Remove, path, 0)?;
        s.state.dir_op(&dir, DirChange::Unlink { name })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock_shared();
        s.state.dir_mut(dir)?;
        if let Some(f) = SimStorage::begin(&mut s, OpKind::SyncDir, dir, 0)? {
            debug_assert_eq!(f, Fault::DirSyncError);
            return Err(errno(rustix::io::Errno::IO));
        }
        let node = s.state.dir_mut(dir)?;
        node.durable = node.current.clone();
        node.pending.clear();
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
        let p = norm(path);
        let mut s = self.lock_shared();
        if s.locks.contains(&p) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        if s.state.lookup(&p).is_err() {
            SimStorage::create_locked(&mut s, &p)?;
        }
        s.locks.insert(p.clone());
        Ok(Box::new(LockGuard {
            sim: self.clone(),
            path: p,
        }))
    }

    /// The lock belongs to the directory (keyed by its path: simulated directories are
    /// never replaced), so removing the lock file does not undo it; the file is still
    /// created, as on the real file system.
    fn lock_dir(&self, dir: &Path, lock_name: &str) -> io::Result<Box<dyn DirLock>> {
        let d = norm(dir);
        let mut s = self.lock_shared();
        s.state.dir_mut(&d)?;
        if s.locks.contains(&d) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        let file = d.join(lock_name);
        if s.state.lookup(&file).is_err() {
            SimStorage::create_locked(&mut s, &file)?;
        }
        s.locks.insert(d.clone());
        Ok(Box::new(SimDirLock(LockGuard {
            sim: self.clone(),
            path: d,
        })))
    }
}

/// The lock of a simulated directory.
struct SimDirLock(LockGuard);

impl fmt::Debug for SimDirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimDirLock({})", self.0.path.display())
    }
}

impl DirLock for SimDirLock {
    /// The directory must still be there (a renamed directory is not); a removed lock
    /// file is created again.
    fn verify(&self) -> io::Result<()> {
        let mut s = self.0.sim.lock_shared();
        let dir = &self.0.path;
        match s.state.lookup(dir) {
            Ok(Entry::Dir) if s.state.dirs.contains_key(dir) => {}
            _ => return Err(not_found(dir)),
        }
        let file = dir.join(actix_wal::files::LOCK_FILE);
        if s.state.lookup(&file).is_err() {
            SimStorage::create_locked(&mut s, &file)?;
        }
        Ok(())
    }
}

/// An in-memory lock, released when dropped.
struct LockGuard {
    sim: SimStorage,
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.sim.lock_shared().locks.remove(&self.path);
    }
}

/// An open file of a [`SimStorage`]: it names the file's inode, so it keeps working after
/// the file is renamed or removed, as on Unix.
struct SimFile {
    sim: SimStorage,
    id: u64,
    name: PathBuf,
    writable: bool,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimFile({})", self.name.display())
    }
}

impl SimFile {
    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(errno(rustix::io::Errno::BADF))
        }
    }

    fn sync(&self, kind: OpKind) -> io::Result<()> {
        let mut s = self.sim.lock_shared();
        let fault = SimStorage::begin(&mut s, kind, &self.name, 0)?;
        let Some(inode) = s.state.inodes.get_mut(&self.id) else {
            return Ok(());
        };
        match fault {
            Some(f) => {
                debug_assert_eq!(f, Fault::SyncError);
                inode.lose();
                Err(errno(rustix::io::Errno::IO))
            }
            None => {
                inode.sync();
                Ok(())
            }
        }
    }
}

impl StorageFile for SimFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut s = self.sim.lock_shared();
        let fault = SimStorage::begin(&mut s, OpKind::Write, &self.name, offset)?;
        let (keep, err) = match fault {
            None => (buf.len(), None),
            Some(Fault::WriteError) => (0, Some(rustix::io::Errno::IO)),
            Some(Fault::ShortWrite) => (buf.len() / 2, Some(rustix::io::Errno::IO)),
            Some(Fault::NoSpace) => (buf.len() / 3, Some(rustix::io::Errno::NOSPC)),
            Some(f) => unreachable!("{f:?} does not strike writes"),
        };
        if keep > 0 {
            s.state.file_op(
                self.id,
                Change::Write {
                    offset,
                    data: Arc::from(&buf[..keep]),
                },
            );
        }
        match err {
            Some(e) => Err(errno(e)),
            None => Ok(()),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.sim.lock_shared();
        let data = s
            .state
            .inodes
            .get(&self.id)
            .map(Inode::current)
            .unwrap_or_default();
        let end = offset as usize + buf.len();
        if end > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end",
            ));
        }
        buf.copy_from_slice(&data[offset as usize..end]);
        Ok(())
    }

    fn size_bytes(&self) -> io::Result<u64> {
        let s = self.sim.lock_shared();
        Ok(s.state.inodes.get(&self.id).map_or(0, Inode::len))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut s = self.sim.lock_shared();
        SimStorage::begin(&mut s, OpKind::SetLen, &self.name, len)?;
        s.state.file_op(self.id, Change::SetLen(len));
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut s = self.sim.lock_shared();
        SimStorage::begin(&mut s, OpKind::Allocate, &self.name, len)?;
        s.state.file_op(self.id, Change::Allocate(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(OpKind::SyncData)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(OpKind::SyncAll)
    }

    /// Whether some directory entry still names this file's inode.
    fn is_linked(&self) -> io::Result<bool> {
        let s = self.sim.lock_shared();
        let id = Entry::File(self.id);
        Ok(s.state
            .dirs
            .values()
            .any(|d| d.current.values().any(|e| *e == id)))
    }
}

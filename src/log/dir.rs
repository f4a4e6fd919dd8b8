//! `LogDir`: a log directory opened for writing, its lock held, and checkpoint truncation.

use super::meta::SharedMeta;
use super::segment::{list_segments, SegmentFile, LOCK_FILE};
use crate::error::WalError;
use crate::lsn::Lsn;
use crate::storage::{DirLock, SharedStorage};
use std::io;
use std::path::{Path, PathBuf};

/// Name of the marker a poisoned log leaves (see `LogDir::mark_poisoned`).
pub const POISON_MARKER: &str = "POISONED";

/// A log directory held open for writing. The directory is locked (on the real file
/// system an `flock` on the directory itself, plus one on its `LOCK` file; see
/// [`crate::storage::Storage::lock_dir`]) for as long as this value lives, so a second
/// opener, in this process or another, gets [`WalError::Locked`], also after someone
/// deleted `LOCK`. [`LogDir::verify`] tells whether the path still names the locked
/// directory.
#[derive(Debug)]
pub struct LogDir {
    storage: SharedStorage,
    path: PathBuf,
    lock: Box<dyn DirLock>,
    /// The metadata file (`META`), read by recovery, written by the writer side.
    meta: std::sync::Arc<SharedMeta>,
    /// What retention keeps below the checkpoint, and the cursors' cap (`retention.rs`):
    /// set by the queue from `WalConfig`; the default (nothing kept, no cap) for other
    /// owners.
    retention: super::retention_policy::RetentionPolicy,
    /// The durable end as the owner last told it ([`Self::set_durable_end`]); `u64::MAX`
    /// for owners with no batch in flight. A log holding slot frames removes no segment
    /// whose successor starts at or past it: the segment may end in a slot frame of the
    /// batch in flight (slot frames take no LSN).
    durable_end: std::sync::atomic::AtomicU64,
}

/// Directories locked by live `LogDir`s of this process, and how many (more than one only
/// where storages differ, as simulated disks in tests do).
fn held_here() -> std::sync::MutexGuard<'static, std::collections::HashMap<PathBuf, usize>> {
    static HELD: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<PathBuf, usize>>> =
        std::sync::OnceLock::new();
    let m = HELD.get_or_init(Default::default);
    // A panic while holding this lock cannot leave the set inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for LogDir {
    fn drop(&mut self) {
        let mut held = held_here();
        if let Some(n) = held.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.path);
            }
        }
    }
}

impl LogDir {
    /// Opens (creating it if missing) and locks a log directory.
    ///
    /// Errors: [`WalError::Locked`] when a `LogDir` of this process holds it (at once) or
    /// another process does (after 250 ms of trying again: a child process
    /// being started can hold a just-released lock for a moment); [`WalError::NotADirectory`]
    /// when the path names something else or lies under a file; [`WalError::Io`] for the
    /// rest.
    pub fn open(path: impl AsRef<Path>, storage: SharedStorage) -> Result<LogDir, WalError> {
        let path = path.as_ref().to_path_buf();
        match storage.is_dir(&path) {
            Ok(true) => {}
            Ok(false) => return Err(WalError::NotADirectory { path }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir_durably(&storage, &path)?,
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Err(super::segment::not_a_directory(storage.as_ref(), &path))
            }
            Err(e) => return Err(WalError::io("stat", &path, e)),
        }
        let lock = lock_dir(&storage, &path)?;
        *held_here().entry(path.clone()).or_default() += 1;
        let meta = std::sync::Arc::new(SharedMeta::unread(storage.clone(), &path));
        Ok(LogDir {
            storage,
            path,
            lock,
            meta,
            retention: Default::default(),
            durable_end: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    /// Checks that the lock still guards the directory the log writes to (at segment
    /// rollover, in `GetHealth` and at shutdown). A removed `LOCK` file is recreated and
    /// locked again. `op` names the step that checks, for the error.
    ///
    /// Errors: [`WalError::FileRemoved`] when the path no longer names the locked
    /// directory (removed, renamed or replaced: new segments would land elsewhere, and a
    /// second writer may hold the new one); [`WalError::Locked`] when a recreated `LOCK`
    /// is held by someone else.
    pub fn verify(&self, op: &'static str) -> Result<(), WalError> {
        self.lock.verify().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => WalError::FileRemoved {
                op,
                path: self.path.clone(),
            },
            io::ErrorKind::WouldBlock => WalError::Locked {
                path: self.path.clone(),
            },
            _ => WalError::io(op, &self.path, e),
        })
    }

    /// Whether a `LogDir` of this process holds `path` now. A log whose every handle was
    /// dropped without shutdown releases its lock as its actors stop, a moment later; a
    /// reopen in the same process waits for that (see `open_log`).
    pub fn held_in_process(path: &Path) -> bool {
        held_here().contains_key(path)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's metadata file (read by [`LogDir::recover`]; before that, unread). Not
    /// public: the store writes `META`, and a handle to it could outlive this lock.
    pub(crate) fn meta(&self) -> &std::sync::Arc<SharedMeta> {
        &self.meta
    }

    /// `Self::meta` for the crate's own tests (feature `internals`): the store itself,
    /// whose handle may outlive this lock.
    #[cfg(feature = "internals")]
    pub fn meta_store(&self) -> &std::sync::Arc<SharedMeta> {
        &self.meta
    }

    /// Reads both copies of `META` again (under this directory's lock) and returns what was
    /// found, the value the next [`Self::update_meta`] starts from.
    pub fn reload_meta(&self) -> Result<super::meta::MetaRead, WalError> {
        self.meta.reload()
    }

    /// Rewrites `META` (both copies, durably) with `f` applied to its current value, under
    /// this directory's lock: what `walctl repair-meta` does. Reads `META` first if it was
    /// not read yet ([`Self::reload_meta`]).
    pub fn update_meta(
        &self,
        f: impl FnOnce(&mut crate::format::meta::LogMeta),
    ) -> Result<(), WalError> {
        self.meta.update(f)
    }

    /// The retention policy [`Self::retain_with`] applies.
    pub fn retention_policy(&self) -> super::retention_policy::RetentionPolicy {
        self.retention
    }

    /// Sets the retention policy (the queue does, from `WalConfig`, before the log runs).
    pub fn set_retention_policy(&mut self, policy: super::retention_policy::RetentionPolicy) {
        self.retention = policy;
    }

    /// Every LSN below `end` is durable (the queue tells it after each batch and rewind):
    /// see the field's note.
    pub fn set_durable_end(&self, end: u64) {
        self.durable_end
            .store(end, std::sync::atomic::Ordering::Relaxed);
    }

    /// The storage it is reached through.
    pub fn storage(&self) -> &SharedStorage {
        &self.storage
    }

    /// The segments in LSN order, and leftover `.tmp` files.
    pub fn list(&self) -> Result<(Vec<SegmentFile>, Vec<PathBuf>), WalError> {
        list_segments(self.storage.as_ref(), &self.path)
    }

    /// Leaves a `POISONED` marker in the directory (best effort, not fsynced): the log was
    /// poisoned by failed fsyncs, so its page cache may hold bytes the disk never got
    /// (after a failed fsync Linux marks the pages clean). It only needs to be seen by a
    /// reopen in the same boot — after a reboot the disk is the truth — which then moves
    /// the last write batch to a fresh segment before taking appends.
    pub(crate) fn mark_poisoned(&self, reason: &str) {
        let path = self.path.join(POISON_MARKER);
        if let Ok(f) = self.storage.create(&path) {
            let _ = f.write_all_at(reason.as_bytes(), 0);
        }
    }

    /// Whether a `POISONED` marker is present.
    pub(crate) fn poison_marker(&self) -> bool {
        self.storage
            .list(&self.path)
            .map(|names| names.iter().any(|n| n == POISON_MARKER))
            .unwrap_or(false)
    }

    /// Removes the `POISONED` marker, durably.
    pub(crate) fn clear_poison_marker(&self) -> Result<(), WalError> {
        let path = self.path.join(POISON_MARKER);
        match self.storage.remove(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(WalError::io("remove", &path, e)),
            _ => self.sync(),
        }
    }

    /// `fsync`s the directory.
    pub fn sync(&self) -> Result<(), WalError> {
        self.storage
            .sync_dir(&self.path)
            .map_err(|e| WalError::io("fsync dir", &self.path, e))
    }

    /// Checkpoint truncation: records `lsn` durably as the log's checkpoint in `META` (if
    /// it is above the one there: the checkpoint never moves back), moves the first LSN up
    /// to what the checkpoint, the cursors and the retention policy allow
    /// ([`Self::retain_with`]; with neither cursors nor a policy, `lsn` itself), then
    /// removes every whole segment whose records all lie below the first LSN (a segment
    /// qualifies when the next segment starts at or below it). The last segment is never
    /// removed. Returns the removed files, or the removal that failed (the checkpoint
    /// stands). The caller makes sure every record below `lsn` is durable.
    pub fn truncate_before(&self, lsn: Lsn) -> Result<Vec<PathBuf>, WalError> {
        // Step 1 of the protocol (docs/format.md): from here nothing below the new first
        // LSN is returned again, whether or not the removals below happen.
        let r = self.retain_with(|m| m.checkpoint_lsn = m.checkpoint().max(lsn.0))?;
        match r.removal_failed {
            Some(e) => Err(e),
            None => Ok(r.removed),
        }
    }

    /// A directory that never scanned its log (opened without recovery, or `META` read
    /// again since) does not know its slot frames: before a removal that may take the one
    /// holding the slot's newest value, the log is read (`LogReader`, read-only) and that
    /// frame noted, so that `fold_slot` carries it into `META` first.
    fn note_log_slot(&self) -> Result<(), WalError> {
        if self.meta.log_scanned() || self.meta.current().is_none_or(|m| m.slot_gen == 0) {
            return Ok(());
        }
        let mut reader =
            super::LogReader::open_with(&self.path, self.storage.clone(), u64::from(u32::MAX))?;
        if let Some(e) = reader.by_ref().find_map(Result::err) {
            return Err(e);
        }
        if let Some((generation, bytes)) = reader.slot_frame() {
            self.meta.slot_frame_durable(generation, bytes);
        }
        self.meta.set_log_scanned();
        Ok(())
    }

    /// Removes every whole segment below `lsn` (one whose next segment starts at or below
    /// it), oldest first; never the last. Returns the removed files.
    pub(crate) fn remove_below(&self, lsn: u64) -> Result<Vec<PathBuf>, WalError> {
        let (segments, _) = self.list()?;
        // With slot frames: `META` holds the slot's newest value before a segment that may
        // hold its frame goes, and a segment that may end in a slot frame of the batch in
        // flight stays (removed by a later run).
        let lsn = match self.meta.current().is_some_and(|m| m.slot_gen > 0) {
            true => {
                let durable_end = self.durable_end.load(std::sync::atomic::Ordering::Relaxed);
                lsn.min(durable_end.saturating_sub(1))
            }
            false => lsn,
        };
        let doomed: Vec<&SegmentFile> = segments
            .windows(2)
            .take_while(|pair| pair[1].first_lsn <= lsn)
            .map(|pair| &pair[0])
            .collect();
        // Removals not yet synced may survive a power cut in any subset, and a later
        // segment gone while an earlier one stays is a hole recovery must refuse. So the
        // directory is fsynced before the first removal (an earlier removal whose fsync
        // failed is made durable first) and after each one, oldest first: what survives
        // is always a suffix of the log.
        if !doomed.is_empty() {
            self.note_log_slot()?;
            self.meta.fold_slot()?;
            self.sync()?;
        }
        let mut removed = Vec::new();
        for seg in doomed {
            self.storage
                .remove(&seg.path)
                .map_err(|e| WalError::io("remove", &seg.path, e))?;
            self.sync()?;
            removed.push(seg.path.clone());
        }
        if !removed.is_empty() {
            tracing::debug!(below = lsn, removed = removed.len(), "truncated log");
        }
        Ok(removed)
    }
}

/// How long a directory lock found held, while no `LogDir` of this process holds it, is
/// tried again before [`WalError::Locked`] is reported. A child process that another
/// thread of this process is starting holds a copy of every descriptor from its fork to
/// its exec (close-on-exec closes them only at the exec), and an `flock` belongs to the
/// open file description, not to the process: for that moment a lock this process just
/// released still looks held. A lock held by another process is reported after this wait.
const FORK_WINDOW_MS: u64 = 250;

/// Locks `path` through `storage`, waiting out the fork window ([`FORK_WINDOW_MS`]).
fn lock_dir(storage: &SharedStorage, path: &Path) -> Result<Box<dyn DirLock>, WalError> {
    let started = std::time::Instant::now();
    loop {
        match storage.lock_dir(path, LOCK_FILE) {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let waited_ms = started.elapsed().as_millis();
                if LogDir::held_in_process(path) || waited_ms >= u128::from(FORK_WINDOW_MS) {
                    tracing::debug!(path = %path.display(), waited_ms, "log directory locked");
                    return Err(WalError::Locked {
                        path: path.to_path_buf(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => return Err(WalError::io("lock", path, e)),
        }
    }
}

/// Creates `path` (and missing parents) and fsyncs the parent of each directory created:
/// a new directory's entry lives in its parent, and until that is synced a power cut may
/// take the directory, and every segment in it, away.
fn create_dir_durably(storage: &SharedStorage, path: &Path) -> Result<(), WalError> {
    let mut created = Vec::new();
    let mut p = Some(path);
    while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
        match storage.is_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => created.push(dir.to_path_buf()),
            _ => break,
        }
        p = dir.parent();
    }
    storage.create_dir_all(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotADirectory => super::segment::not_a_directory(storage.as_ref(), path),
        _ => WalError::io("create dir", path, e),
    })?;
    for dir in created.iter().rev() {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        storage
            .sync_dir(parent)
            .map_err(|e| WalError::io("fsync dir", parent, e))?;
    }
    Ok(())
}

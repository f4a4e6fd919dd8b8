//! `MetaStore`: the log's metadata file (`META`) on disk, loaded at open and replaced
//! atomically. The encoding lives in [`crate::format::meta`]; `docs/format.md` ("The
//! metadata file") gives the protocols of `truncate_after`, `reset`, `truncate_before` and
//! `set_meta` that write it.
//!
//! A replace never touches the file it replaces: the new content goes to `META.tmp`, which
//! is fsynced, renamed over `META`, and the directory fsynced. A crash at any step leaves
//! the old file or the new one, whole. A failed step is never retried on the same file
//! (after a failed fsync Linux may have dropped the pages and marked them clean): the
//! replace fails, and the next one starts over with a fresh `META.tmp`.

use crate::error::WalError;
use crate::format::meta::{
    LogMeta, MetaFormatError, DEFAULT_MAX_META_BYTES, MAX_META_BYTES_LIMIT, META_OVERHEAD_BYTES,
    META_VERSION,
};
use crate::storage::{SharedStorage, Storage};
use std::io;
use std::path::{Path, PathBuf};

/// Name of the metadata file in a log directory.
pub const META_FILE: &str = "META";
/// Name the next metadata file is built under before it is renamed over [`META_FILE`].
pub const META_TMP_FILE: &str = "META.tmp";

/// Reads a log directory's metadata file, without changing anything (for offline readers
/// too). `Ok(None)` when there is none: a new log, or one written before the file existed.
/// A file that fails its checks is [`WalError::Corruption`] naming `META` (or
/// [`WalError::UnsupportedVersion`] for a newer format). The slot is read up to
/// [`MAX_META_BYTES_LIMIT`], so a log whose `max_meta_bytes` was lowered stays readable.
pub fn read_meta(storage: &dyn Storage, dir: &Path) -> Result<Option<LogMeta>, WalError> {
    let path = dir.join(META_FILE);
    let file = match storage.open(&path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WalError::io("open", &path, e)),
    };
    let size = file
        .size_bytes()
        .map_err(|e| WalError::io("stat", &path, e))?;
    // Bounded before reading: a damaged or foreign file must not take all memory.
    let max_size = META_OVERHEAD_BYTES as u64 + MAX_META_BYTES_LIMIT;
    if size > max_size {
        return Err(WalError::Corruption {
            segment: path,
            offset: 0,
            reason: format!("metadata file of {size} bytes is larger than any ({max_size})"),
        });
    }
    // `size` is bounded just above, so it fits in memory and in a usize.
    let mut bytes = vec![0u8; size as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| WalError::io("read", &path, e))?;
    match LogMeta::decode(&bytes, MAX_META_BYTES_LIMIT) {
        Ok(meta) => Ok(Some(meta)),
        Err(MetaFormatError::Version(found)) => Err(WalError::UnsupportedVersion {
            path,
            found,
            supported: META_VERSION,
        }),
        Err(e) => Err(WalError::Corruption {
            segment: path,
            offset: e.offset(),
            reason: e.to_string(),
        }),
    }
}

/// The metadata file of a log held open for writing. One owner writes it (the log's
/// writer side holds the directory lock); every write is a whole-file [`Self::replace`].
#[derive(Debug)]
pub struct MetaStore {
    storage: SharedStorage,
    dir: PathBuf,
    /// Bound on the application slot for new values (`max_meta_bytes`).
    max_meta_bytes: u64,
    /// The value last made durable (by a replace that succeeded, or found at open).
    current: Option<LogMeta>,
    /// False after a replace failed at or after its rename: the disk may then hold a value
    /// attempted since `current` instead of `current`, until a later replace succeeds.
    settled: bool,
    /// Generation the next attempt gets: one more on every attempt, failed ones included,
    /// so no two values that may reach the disk share a number.
    next_seq: u64,
}

impl MetaStore {
    /// Loads the metadata file of `dir` (none for a new or older log). `max_meta_bytes`
    /// bounds the slot of new values: at most [`MAX_META_BYTES_LIMIT`], else
    /// [`WalError::InvalidConfig`]. Reads only: a leftover `META.tmp` is removed by the
    /// first replace.
    pub fn open(
        storage: SharedStorage,
        dir: impl AsRef<Path>,
        max_meta_bytes: u64,
    ) -> Result<MetaStore, WalError> {
        if max_meta_bytes > MAX_META_BYTES_LIMIT {
            return Err(WalError::InvalidConfig(format!(
                "max_meta_bytes is {max_meta_bytes}; at most {MAX_META_BYTES_LIMIT}"
            )));
        }
        let dir = dir.as_ref().to_path_buf();
        let current = read_meta(storage.as_ref(), &dir)?;
        let next_seq = current.as_ref().map_or(1, |m| m.seq.saturating_add(1));
        Ok(MetaStore {
            storage,
            dir,
            max_meta_bytes,
            current,
            settled: true,
            next_seq,
        })
    }

    /// [`Self::open`] with the default bound, [`DEFAULT_MAX_META_BYTES`].
    pub fn open_default(
        storage: SharedStorage,
        dir: impl AsRef<Path>,
    ) -> Result<MetaStore, WalError> {
        MetaStore::open(storage, dir, DEFAULT_MAX_META_BYTES)
    }

    /// The value last made durable; `None` if the log has no metadata file yet.
    pub fn current(&self) -> Option<&LogMeta> {
        self.current.as_ref()
    }

    /// False after a replace failed at or after its rename: until a later replace
    /// succeeds, a crash may leave a value attempted since [`Self::current`] instead of it.
    /// A caller whose next step depends on which (a rewind's intent) must replace again
    /// first, or stop.
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// The bound on the application slot of new values.
    pub fn max_meta_bytes(&self) -> u64 {
        self.max_meta_bytes
    }

    /// Path of the metadata file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(META_FILE)
    }

    /// Replaces the file with `f` applied to the current value (or to the default for a
    /// log without one). See [`Self::replace`].
    pub fn update(&mut self, f: impl FnOnce(&mut LogMeta)) -> Result<&LogMeta, WalError> {
        let mut next = self.current.clone().unwrap_or_default();
        f(&mut next);
        self.replace(next)
    }

    /// Makes `next` the durable content of the file (its `seq` is set by the store), and
    /// returns it. Steps: remove a leftover `META.tmp`; create `META.tmp`, write, `fsync`;
    /// rename it over `META`; `fsync` the directory. Returns only once all of them have
    /// succeeded. A slot over `max_meta_bytes` is [`WalError::MetaTooLarge`] and changes
    /// nothing. On an I/O error nothing is retried: the error is returned, [`Self::current`]
    /// keeps the previous value and, if the rename was reached, [`Self::is_settled`] turns
    /// false.
    pub fn replace(&mut self, mut next: LogMeta) -> Result<&LogMeta, WalError> {
        let slot_bytes = next.slot.as_ref().map_or(0, Vec::len) as u64;
        if slot_bytes > self.max_meta_bytes {
            return Err(WalError::MetaTooLarge {
                size_bytes: slot_bytes,
                max_bytes: self.max_meta_bytes,
            });
        }
        next.seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let span = tracing::debug_span!("meta replace", seq = next.seq, slot_bytes);
        let _enter = span.enter();
        let bytes = next
            .encode(self.max_meta_bytes)
            .map_err(|e| WalError::InvalidConfig(e.to_string()))?;
        let tmp = self.dir.join(META_TMP_FILE);
        let path = self.dir.join(META_FILE);
        if let Err(e) = self.write_tmp(&tmp, &bytes) {
            // Best effort: the next replace removes it anyway, and never reuses it.
            let _ = self.storage.remove(&tmp);
            return Err(e);
        }
        // From here the disk may hold the new value whatever happens next.
        if let Err(e) = self.storage.rename(&tmp, &path) {
            self.settled = false;
            return Err(WalError::io("rename", &tmp, e));
        }
        if let Err(e) = self.storage.sync_dir(&self.dir) {
            self.settled = false;
            return Err(WalError::io("fsync dir", &self.dir, e));
        }
        self.settled = true;
        tracing::debug!(seq = next.seq, first_lsn = next.first_lsn, newest_lsn = next.newest_lsn, intent = ?next.intent, "replaced metadata file");
        Ok(self.current.insert(next))
    }

    /// Builds a fresh `META.tmp` holding `bytes`, durably. A leftover is removed first, so
    /// the file written is always a new one: never a file whose earlier fsync failed.
    fn write_tmp(&self, tmp: &Path, bytes: &[u8]) -> Result<(), WalError> {
        match self.storage.remove(tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(WalError::io("remove", tmp, e))
            }
            _ => {}
        }
        let file = self
            .storage
            .create(tmp)
            .map_err(|e| WalError::io("create", tmp, e))?;
        file.write_all_at(bytes, 0)
            .map_err(|e| WalError::io("write", tmp, e))?;
        file.sync_all().map_err(|e| WalError::io("fsync", tmp, e))
    }
}

/// The metadata file of an open log, shared by everyone who writes it (the queue's
/// thread, the flusher's thread, the degraded path) and read by the handles: one
/// [`MetaStore`] behind a mutex, one replace at a time, and a published copy of the value
/// last made durable that readers take without waiting for a replace in progress.
#[derive(Debug)]
pub struct SharedMeta {
    store: std::sync::Mutex<MetaStore>,
    published: std::sync::RwLock<Option<std::sync::Arc<LogMeta>>>,
}

impl SharedMeta {
    /// A handle over `dir`'s metadata file, not read yet ([`Self::reload`] reads it). The
    /// store's bound is the largest there can be, so a value found on disk is always
    /// carried forward; `Wal::set_meta` applies `max_meta_bytes` to new values itself.
    pub fn unread(storage: SharedStorage, dir: &Path) -> SharedMeta {
        SharedMeta {
            store: std::sync::Mutex::new(MetaStore {
                storage,
                dir: dir.to_path_buf(),
                max_meta_bytes: MAX_META_BYTES_LIMIT,
                current: None,
                settled: true,
                next_seq: 1,
            }),
            published: std::sync::RwLock::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MetaStore> {
        // A panic in a replace leaves the store as consistent as a failed replace does.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a replace on the locked store and publishes its value before the lock goes:
    /// published in the order the replaces were made. (Published after the unlock, a
    /// raise of N on the spare helper's thread could publish its value after a
    /// checkpoint's newer one, and `truncate_before`, reading the stale first LSN, wrote a
    /// lower checkpoint over a higher one: issue 20.)
    fn publish_from(
        &self,
        mut store: std::sync::MutexGuard<'_, MetaStore>,
        replace: impl FnOnce(&mut MetaStore) -> Result<LogMeta, WalError>,
    ) -> Result<LogMeta, WalError> {
        let meta = replace(&mut store)?;
        self.publish(Some(&meta));
        drop(store);
        Ok(meta)
    }

    fn publish(&self, meta: Option<&LogMeta>) {
        let mut p = self.published.write().unwrap_or_else(|e| e.into_inner());
        *p = meta.cloned().map(std::sync::Arc::new);
    }

    /// Path of the metadata file.
    pub fn path(&self) -> PathBuf {
        self.lock().path()
    }

    /// [`MetaStore::is_settled`]: false after a replace failed at or after its rename.
    pub fn is_settled(&self) -> bool {
        self.lock().is_settled()
    }

    /// Reads the file again (recovery does, once, before anything writes it).
    pub fn reload(&self) -> Result<Option<LogMeta>, WalError> {
        let mut store = self.lock();
        let current = read_meta(store.storage.as_ref(), &store.dir)?;
        store.next_seq = store
            .next_seq
            .max(current.as_ref().map_or(1, |m| m.seq.saturating_add(1)));
        store.current = current.clone();
        store.settled = true;
        // Published before the lock goes, as every replace is (see `publish_from`).
        self.publish(current.as_ref());
        drop(store);
        Ok(current)
    }

    /// The value last made durable (`None`: the log has no metadata file yet).
    pub fn current(&self) -> Option<std::sync::Arc<LogMeta>> {
        self.published
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// [`MetaStore::update`]: one replace, durable before it returns.
    pub fn update(&self, f: impl FnOnce(&mut LogMeta)) -> Result<(), WalError> {
        let store = self.lock();
        self.publish_from(store, |s| s.update(f).cloned())
            .map(|_| ())
    }

    /// Raises the newest-segment LSN (N) to `segment_first_lsn` if it is below: the writer
    /// calls it after the first batch in a segment is durable and before that batch is
    /// acknowledged. Costs nothing (no lock, no I/O) when N is already there, so one
    /// replace per segment. A log without a metadata file is left alone.
    pub fn raise_newest(&self, segment_first_lsn: u64) -> Result<(), WalError> {
        match self.current() {
            Some(m) if m.newest_lsn < segment_first_lsn => {}
            _ => return Ok(()),
        }
        let store = self.lock();
        match store.current() {
            Some(m) if m.newest_lsn < segment_first_lsn => self
                .publish_from(store, |s| {
                    s.update(|m| m.newest_lsn = segment_first_lsn).cloned()
                })
                .map(|_| ()),
            _ => Ok(()),
        }
    }

    /// [`Self::raise_newest`] done later (off the commit path, by the flusher's spare
    /// helper), and only if no replace was attempted since the value whose `seq` is
    /// `seen_seq` was current and the store is settled: a rewind or reset that lowered N
    /// meanwhile is never undone by a stale raise. `Ok(false)`: nothing to do, or skipped
    /// (N stays lower, which is always safe: the log reaches past it).
    pub fn raise_newest_unless_replaced(
        &self,
        segment_first_lsn: u64,
        seen_seq: u64,
    ) -> Result<bool, WalError> {
        let store = self.lock();
        let unchanged = store.settled
            && store.next_seq == seen_seq.saturating_add(1)
            && store
                .current()
                .is_some_and(|m| m.seq == seen_seq && m.newest_lsn < segment_first_lsn);
        if !unchanged {
            return Ok(false);
        }
        self.publish_from(store, |s| {
            s.update(|m| m.newest_lsn = segment_first_lsn).cloned()
        })
        .map(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::meta::MetaIntent;
    use crate::storage::default_storage;

    #[test]
    fn missing_file_is_none_then_replace_round_trips_and_bumps_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetaStore::open_default(default_storage(), dir.path()).unwrap();
        assert!(store.current().is_none());
        store
            .update(|m| {
                m.first_lsn = 5;
                m.slot = Some(b"hello".to_vec());
            })
            .unwrap();
        store
            .update(|m| m.intent = MetaIntent::TruncateAfter(9))
            .unwrap();
        let again = MetaStore::open_default(default_storage(), dir.path()).unwrap();
        let meta = again.current().unwrap();
        assert_eq!(meta.seq, 2);
        assert_eq!(meta.first_lsn, 5);
        assert_eq!(meta.slot.as_deref(), Some(&b"hello"[..]));
        assert_eq!(meta.intent, MetaIntent::TruncateAfter(9));
        assert!(!dir.path().join(META_TMP_FILE).exists());
    }

    #[test]
    fn slot_over_the_bound_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetaStore::open(default_storage(), dir.path(), 4).unwrap();
        store.update(|m| m.slot = Some(vec![1; 4])).unwrap();
        let err = store.update(|m| m.slot = Some(vec![2; 5])).unwrap_err();
        assert!(matches!(
            err,
            WalError::MetaTooLarge {
                size_bytes: 5,
                max_bytes: 4
            }
        ));
        let on_disk = read_meta(&crate::storage::FsStorage, dir.path()).unwrap();
        assert_eq!(on_disk.unwrap().slot, Some(vec![1; 4]));
        assert!(matches!(
            MetaStore::open(default_storage(), dir.path(), MAX_META_BYTES_LIMIT + 1),
            Err(WalError::InvalidConfig(_))
        ));
    }

    #[test]
    fn damaged_or_foreign_file_is_corruption_naming_meta() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetaStore::open_default(default_storage(), dir.path()).unwrap();
        store.update(|m| m.first_lsn = 3).unwrap();
        let path = dir.path().join(META_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        match MetaStore::open_default(default_storage(), dir.path()) {
            Err(WalError::Corruption { segment, .. }) => assert_eq!(segment, path),
            other => panic!("expected corruption, got {other:?}"),
        }
        std::fs::write(&path, vec![0xAB; 1 << 20]).unwrap();
        assert!(MetaStore::open_default(default_storage(), dir.path())
            .unwrap_err()
            .is_corruption());
    }
}

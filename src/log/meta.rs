//! `MetaStore`: the log's metadata, kept in two copies (`META.copy` and `META`), loaded at
//! open and replaced whole. The encoding lives in [`crate::format::meta`];
//! `docs/format.md` ("The metadata file") gives the protocols of `truncate_after`,
//! `reset`, `truncate_before` and `set_meta` that write it.
//!
//! A replace writes the same bytes into `META.copy`, makes them durable, then into
//! `META`: never both at once, so a crash at any step leaves at least one copy whole,
//! holding the old value or the new one, and a reader takes the whole copy with the
//! highest `seq`. Once a replace has returned, both copies hold its value, so a single
//! copy damaged or lost later still opens with the right values. The first replace after
//! open (or after a failed one) builds each copy under `META.tmp` and renames it over;
//! later ones write in place, two `fsync`s (see [`MetaStore::replace`]). A failed step is
//! never retried on the same bytes (after a failed fsync Linux may have dropped the
//! pages and marked them clean): the replace fails, and the next one writes both copies
//! again, whole, by rename. Room for that build is kept in `META.reserve` (see
//! [`META_RESERVE_FILE`]), so that a log whose disk filled up can still take the
//! checkpoint that frees space.

pub use super::meta_read::{read_meta, read_meta_copies, read_meta_copy, CopyState, MetaRead};
pub use super::shared_meta::SharedMeta;
use crate::error::WalError;
use crate::format::meta::{LogMeta, DEFAULT_MAX_META_BYTES, MAX_META_BYTES_LIMIT};
use crate::storage::SharedStorage;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the metadata file's main copy in a log directory, written second.
pub const META_FILE: &str = "META";
/// Name of the metadata file's second copy, written first.
pub const META_COPY_FILE: &str = "META.copy";
/// The copies in the order a replace writes them.
pub const META_COPIES: [&str; 2] = [META_COPY_FILE, META_FILE];
/// Name a copy is built under before it is renamed over the copy (when it is not written
/// in place); a leftover is removed by recovery and by the next such build, and ignored
/// by readers.
pub const META_TMP_FILE: &str = "META.tmp";
/// Name of the room kept for `META.tmp` on a full disk: a file of zeros, removed (freeing
/// its blocks) when building `META.tmp` fails for want of space, and made again once a
/// replace succeeds. Never read; a crash may leave it short or missing, which costs only
/// the room. Without it, the first replace after an open builds `META.tmp` and cannot on
/// a disk that filled up: not even the checkpoint that would free space could run.
pub const META_RESERVE_FILE: &str = "META.reserve";
/// The least room kept in [`META_RESERVE_FILE`], bytes (twice the value's encoded size if
/// that is more).
pub const META_RESERVE_MIN_BYTES: usize = 64 * 1024;
/// The metadata file of a log held open for writing. One owner writes it (the log's
/// writer side holds the directory lock); every write is a whole-value [`Self::replace`].
#[derive(Debug)]
pub struct MetaStore {
    pub(super) storage: SharedStorage,
    pub(super) dir: PathBuf,
    /// Bound on the application slot for new values (`max_meta_bytes`).
    pub(super) max_meta_bytes: u64,
    /// The value last made durable (by a replace that succeeded, or found at open).
    pub(super) current: Option<LogMeta>,
    /// False after a replace failed once `META.copy` may hold its value: the disk may
    /// then hold a value attempted since `current` instead of `current`, until a later
    /// replace succeeds.
    pub(super) settled: bool,
    /// Generation the next attempt gets: one more on every attempt, failed ones included,
    /// so no two values that may reach the disk share a number.
    pub(super) next_seq: u64,
    /// True once a replace of this store succeeded (both copies written and fsynced by
    /// it): the next one may write each copy in place. False at open and after a failed
    /// replace: a copy may then be missing, torn, or whole only in the page cache (an
    /// earlier process's fsync failed in this boot), and a copy written in place must
    /// never be the only whole one, so the next replace builds each copy under
    /// `META.tmp` and renames it over the copy instead.
    pub(super) in_place: bool,
    /// Whether [`META_RESERVE_FILE`] is known to hold room for the value: checked (and
    /// made if need be) after the first replace that succeeds, again after it is used.
    pub(super) reserve_kept: bool,
}

impl MetaStore {
    /// Loads the metadata file of `dir` (none for a new or older log). `max_meta_bytes`
    /// bounds the slot of new values: at most [`MAX_META_BYTES_LIMIT`], else
    /// [`WalError::InvalidConfig`]. Reads only.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // the crate's tests only
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
        let read = read_meta_copies(storage.as_ref(), &dir)?;
        let next_seq = read.meta.as_ref().map_or(1, |m| m.seq.saturating_add(1));
        Ok(MetaStore {
            storage,
            dir,
            max_meta_bytes,
            in_place: false,
            reserve_kept: false,
            current: read.meta,
            settled: true,
            next_seq,
        })
    }

    /// [`Self::open`] with the default bound, [`DEFAULT_MAX_META_BYTES`].
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // the crate's tests only
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

    /// False after a replace failed once `META.copy` may hold its value: until a later
    /// replace succeeds, a crash may leave a value attempted since [`Self::current`]
    /// instead of it. A caller whose next step depends on which (a rewind's intent) must
    /// replace again first, or stop.
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// The bound on the application slot of new values.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // the crate's tests only
    pub fn max_meta_bytes(&self) -> u64 {
        self.max_meta_bytes
    }

    /// Path of the metadata file's main copy (`META`).
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

    /// Makes `next` the durable content of both copies (its `seq` is set by the store),
    /// and returns it. Refused, changing nothing: a slot over `max_meta_bytes`
    /// ([`WalError::MetaTooLarge`]) and a value whose fields conflict
    /// ([`WalError::MetaConflict`], see [`LogMeta::conflict`]).
    ///
    /// In place, once a replace of this store succeeded: for `META.copy` and then `META`,
    /// write the whole value at offset 0, cut the file to its length, `fsync` it. Two
    /// `fsync`s; `META` is touched only once `META.copy` is durable, so a crash leaves
    /// one of them whole. Else (the first replace after open, or after a failed one),
    /// for `META.copy` and then `META`: build the value under `META.tmp` (a leftover
    /// removed first), `fsync` it, rename it over the copy; then `fsync` the directory.
    /// Each copy is then always whole, old or new (or still missing). Three `fsync`s.
    ///
    /// On an I/O error nothing is retried: the error is returned, [`Self::current`] keeps
    /// the previous value and, once `META.copy` may hold the new value (its write went
    /// through, or its rename was attempted), [`Self::is_settled`] turns false.
    pub fn replace(&mut self, mut next: LogMeta) -> Result<&LogMeta, WalError> {
        let slot_bytes = next.slot.as_ref().map_or(0, Vec::len) as u64;
        if slot_bytes > self.max_meta_bytes {
            return Err(WalError::MetaTooLarge {
                size_bytes: slot_bytes,
                max_bytes: self.max_meta_bytes,
            });
        }
        if let Some(reason) = next.conflict() {
            return Err(WalError::MetaConflict { reason });
        }
        next.seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let span = tracing::debug_span!(
            "meta replace",
            seq = next.seq,
            slot_bytes,
            in_place = self.in_place
        );
        let _enter = span.enter();
        let bytes = next
            .encode(self.max_meta_bytes)
            .map_err(|e| WalError::InvalidConfig(e.to_string()))?;
        let written = match self.in_place {
            true => self.write_in_place(&bytes),
            false => self.write_renamed(&bytes),
        };
        if let Err((e, maybe_new)) = written {
            self.in_place = false;
            if maybe_new {
                self.settled = false;
            }
            return Err(e);
        }
        self.in_place = true;
        self.settled = true;
        if !self.reserve_kept {
            self.reserve_kept = self.keep_reserve(bytes.len());
        }
        tracing::debug!(seq = next.seq, first_lsn = next.first_lsn, newest_lsn = next.newest_lsn, intent = ?next.intent, "replaced metadata file");
        Ok(self.current.insert(next))
    }

    /// Both copies written in place, `META.copy` first. On an error, also whether the
    /// disk may hold the new value (`META.copy`'s whole write went through).
    fn write_in_place(&self, bytes: &[u8]) -> Result<(), (WalError, bool)> {
        for name in META_COPIES {
            let path = self.dir.join(name);
            let second = name == META_FILE;
            let file = self
                .storage
                .open(&path, true)
                .map_err(|e| (WalError::io("open", &path, e), second))?;
            file.write_all_at(bytes, 0)
                .map_err(|e| (WalError::io("write", &path, e), second))?;
            file.set_len(bytes.len() as u64)
                .map_err(|e| (WalError::io("truncate", &path, e), true))?;
            file.sync_all()
                .map_err(|e| (WalError::io("fsync", &path, e), true))?;
        }
        Ok(())
    }

    /// Both copies built under `META.tmp` and renamed over, `META.copy` first, then the
    /// directory fsynced. On an error, also whether the disk may hold the new value (a
    /// rename was attempted).
    fn write_renamed(&mut self, bytes: &[u8]) -> Result<(), (WalError, bool)> {
        let tmp = self.dir.join(META_TMP_FILE);
        for name in META_COPIES {
            let renamed_one = name == META_FILE;
            let mut built = self.write_tmp(&tmp, bytes);
            if matches!(built, Err(WalError::DiskFull { .. })) && self.release_reserve() {
                // A new file, built again whole: no step of the failed build is trusted.
                let _ = self.storage.remove(&tmp);
                built = self.write_tmp(&tmp, bytes);
            }
            if let Err(e) = built {
                // Best effort: the next replace removes it anyway, and never reuses it.
                let _ = self.storage.remove(&tmp);
                return Err((e, renamed_one));
            }
            let path = self.dir.join(name);
            self.storage
                .rename(&tmp, &path)
                .map_err(|e| (WalError::io("rename", &tmp, e), true))?;
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| (WalError::io("fsync dir", &self.dir, e), true))
    }

    /// Removes [`META_RESERVE_FILE`] to free its blocks; whether there was one.
    fn release_reserve(&mut self) -> bool {
        self.reserve_kept = false;
        let released = self
            .storage
            .remove(&self.dir.join(META_RESERVE_FILE))
            .is_ok();
        if released {
            tracing::warn!(dir = %self.dir.display(), "disk full: the room kept for META.tmp released");
        }
        released
    }

    /// Makes sure [`META_RESERVE_FILE`] holds at least twice `value_bytes` (and
    /// [`META_RESERVE_MIN_BYTES`]) of zeros: best effort (no fsync; on a full disk there
    /// is no room for it yet). Whether it does.
    fn keep_reserve(&self, value_bytes: usize) -> bool {
        let path = self.dir.join(META_RESERVE_FILE);
        let want = (2 * value_bytes).max(META_RESERVE_MIN_BYTES);
        let held = self.storage.open(&path, false).and_then(|f| f.size_bytes());
        if held.is_ok_and(|n| n >= want as u64) {
            return true;
        }
        let made = self
            .storage
            .create(&path)
            .and_then(|f| f.write_all_at(&vec![0; want], 0));
        if made.is_err() {
            let _ = self.storage.remove(&path);
        }
        made.is_ok()
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
}

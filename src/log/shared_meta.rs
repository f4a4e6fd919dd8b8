//! `SharedMeta`: the metadata file of an open log as its writers share it (one
//! [`MetaStore`] behind a mutex), with the value last made durable published for readers,
//! and the newest durable slot frame (`format/slot_frame.rs`) that every replace carries
//! into the file.

use super::meta::MetaStore;
use super::meta_read::{read_meta_copies, MetaRead};
use crate::error::WalError;
use crate::format::meta::{LogMeta, MAX_META_BYTES_LIMIT};
use crate::storage::SharedStorage;
use std::path::{Path, PathBuf};

/// The metadata file of an open log, shared by everyone who writes it (the queue's
/// thread, the flusher's thread, the degraded path) and read by the handles: one
/// [`MetaStore`] behind a mutex, one replace at a time, and a published copy of the value
/// last made durable that readers take without waiting for a replace in progress.
#[derive(Debug)]
pub struct SharedMeta {
    store: std::sync::Mutex<MetaStore>,
    published: std::sync::RwLock<Option<std::sync::Arc<LogMeta>>>,
    /// The slot frame of highest generation made durable in the log (or found there at
    /// open) whose generation is above the file's: the slot's value until a replace
    /// carries it into the file (every replace does). Its own lock, so that the queue's
    /// thread noting a durable slot frame never waits for a replace in progress.
    log_slot: std::sync::Mutex<Option<(u64, Vec<u8>)>>,
    /// The slot generation of the file as last read or replaced: above 0 once it is
    /// version 3 (read without the store's lock, which a replace holds for its fsyncs).
    file_slot_gen: std::sync::atomic::AtomicU64,
    /// Whether the file was read ([`Self::reload`], even if that failed): a change to an
    /// unread store reads it first ([`Self::ensure_read`]), so that it changes the value on
    /// disk, never a default one written over it.
    read: std::sync::atomic::AtomicBool,
    /// Whether the slot frames in the log are known: recovery scanned it (and noted the
    /// newest, if newer than the file's) since the file was last read. A removal by a
    /// directory that never scanned its log looks for them first (`LogDir::remove_below`).
    log_scanned: std::sync::atomic::AtomicBool,
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
                in_place: false,
                reserve_kept: false,
            }),
            published: std::sync::RwLock::new(None),
            log_slot: std::sync::Mutex::new(None),
            file_slot_gen: std::sync::atomic::AtomicU64::new(0),
            read: std::sync::atomic::AtomicBool::new(false),
            log_scanned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the log's slot frames are known (see the field).
    pub fn log_scanned(&self) -> bool {
        self.log_scanned.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The log was scanned: its newest slot frame, if newer than the file's, was given to
    /// [`Self::slot_frame_durable`].
    pub fn set_log_scanned(&self) {
        self.log_scanned
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Reads the file unless it was read already (a directory opened without recovery,
    /// `LogDir::open`, leaves it unread): before anything changes it or decides from it.
    pub fn ensure_read(&self) -> Result<(), WalError> {
        match self.read.load(std::sync::atomic::Ordering::Acquire) {
            true => Ok(()),
            false => self.reload().map(drop),
        }
    }

    fn log_slot(&self) -> std::sync::MutexGuard<'_, Option<(u64, Vec<u8>)>> {
        self.log_slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot frame of generation `generation` holding `bytes` is durable in the log (or
    /// was found there by recovery): it is the slot's value from now on unless a value of
    /// a higher generation is (in the file, or an earlier call). Published at once, before
    /// its `set_meta` is answered; the file gets it at its next replace.
    pub fn slot_frame_durable(&self, generation: u64, bytes: &[u8]) {
        {
            let mut log_slot = self.log_slot();
            if log_slot.as_ref().is_some_and(|(g, _)| *g >= generation) {
                return;
            }
            *log_slot = Some((generation, bytes.to_vec()));
        }
        let mut p = self.published.write().unwrap_or_else(|e| e.into_inner());
        // A log with slot frames has a metadata file (version 3): nothing else to merge into.
        let Some(mut m) = p.as_deref().cloned() else {
            return;
        };
        if m.take_newer_slot(Some(&(generation, bytes.to_vec()))) {
            *p = Some(std::sync::Arc::new(m));
        }
    }

    /// Whether the file itself is of version 3 (a slot generation above 0): only then may
    /// slot values go into the log as frames, since older builds refuse such a file and so
    /// never read a log holding frames they would take for damage.
    pub fn file_takes_slot_frames(&self) -> bool {
        self.file_slot_gen
            .load(std::sync::atomic::Ordering::Acquire)
            > 0
    }

    /// The highest slot generation known: the file's or a durable slot frame's.
    pub fn slot_gen(&self) -> u64 {
        let file = self.current().map_or(0, |m| m.slot_gen);
        file.max(self.log_slot().as_ref().map_or(0, |(g, _)| *g))
    }

    /// Makes the file hold the slot's newest durable value if only a slot frame holds it
    /// (one replace; nothing when the file has it already): before anything removes or
    /// abandons segments that may hold that frame (a checkpoint's removals, a rewrite
    /// after a failed fsync). A rewind and a reset need not call it: their first replace
    /// carries it.
    pub fn fold_slot(&self) -> Result<(), WalError> {
        let store = self.lock();
        let behind = {
            let log_slot = self.log_slot();
            let file = store.current().map_or(0, |m| m.slot_gen);
            log_slot.as_ref().is_some_and(|(g, _)| *g > file)
        };
        if !behind || store.current().is_none() {
            return Ok(());
        }
        self.publish_from(store, |_| {}).map(|_| ())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MetaStore> {
        // A panic in a replace leaves the store as consistent as a failed replace does.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the file with `change` applied to the current value (and the newest durable
    /// slot frame's slot, if newer: every replace carries it) on the locked store, and
    /// publishes the value before the lock goes:
    /// published in the order the replaces were made. (Published after the unlock, a
    /// raise of N on the spare helper's thread could publish its value after a
    /// checkpoint's newer one, and `truncate_before`, reading the stale first LSN, wrote a
    /// lower checkpoint over a higher one: issue 20.)
    fn publish_from(
        &self,
        mut store: std::sync::MutexGuard<'_, MetaStore>,
        change: impl FnOnce(&mut LogMeta),
    ) -> Result<LogMeta, WalError> {
        let log_slot = self.log_slot().clone();
        let meta = store
            .update(|m| {
                change(m);
                m.take_newer_slot(log_slot.as_ref());
            })?
            .clone();
        self.file_slot_gen
            .store(meta.slot_gen, std::sync::atomic::Ordering::Release);
        self.publish(Some(&meta));
        drop(store);
        Ok(meta)
    }

    /// Publishes `meta`, with the slot of the newest durable slot frame when that is newer
    /// (a value read or written before the frame was durable never hides it).
    fn publish(&self, meta: Option<&LogMeta>) {
        let mut p = self.published.write().unwrap_or_else(|e| e.into_inner());
        let mut meta = meta.cloned();
        if let Some(m) = meta.as_mut() {
            m.take_newer_slot(self.log_slot().as_ref());
        }
        *p = meta.map(std::sync::Arc::new);
    }

    /// Path of the metadata file.
    pub fn path(&self) -> PathBuf {
        self.lock().path()
    }

    /// [`MetaStore::is_settled`]: false after a replace failed at or after its rename.
    pub fn is_settled(&self) -> bool {
        self.lock().is_settled()
    }

    /// Reads both copies again (recovery does, before anything writes them), and takes
    /// the value [`read_meta_copies`] takes. What each copy held is returned: recovery
    /// writes both back when they are not both whole.
    pub fn reload(&self) -> Result<MetaRead, WalError> {
        let mut store = self.lock();
        // Read, whatever the outcome: after a failed read, a change is an explicit
        // replace (what `walctl repair-meta --without-slot` makes).
        self.read.store(true, std::sync::atomic::Ordering::Release);
        // The log slot is forgotten below: known again only after a scan.
        self.log_scanned
            .store(false, std::sync::atomic::Ordering::Release);
        *self.log_slot() = None;
        let read = read_meta_copies(store.storage.as_ref(), &store.dir)?;
        let current = read.meta.clone();
        store.next_seq = store
            .next_seq
            .max(current.as_ref().map_or(1, |m| m.seq.saturating_add(1)));
        store.current = current.clone();
        store.settled = true;
        store.in_place = false;
        self.file_slot_gen.store(
            current.as_ref().map_or(0, |m| m.slot_gen),
            std::sync::atomic::Ordering::Release,
        );
        self.publish(current.as_ref());
        drop(store);
        Ok(read)
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
        self.ensure_read()?;
        let store = self.lock();
        self.publish_from(store, f).map(|_| ())
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
                .publish_from(store, |m| m.newest_lsn = segment_first_lsn)
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
        self.publish_from(store, |m| m.newest_lsn = segment_first_lsn)
            .map(|_| true)
    }
}

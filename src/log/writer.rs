//! `SegmentWriter`: writes a planned [`Batch`] (one positional write per segment it
//! touches) and `fdatasync`s it. Used by the flusher thread and by the queue's degraded
//! (synchronous) path alike; each holds its own writer and file handles.
//!
//! Failure handling, in one place:
//! - A failed *write* (ENOSPC, EIO, ...) cuts every segment the batch touched back to where
//!   the batch began (or removes a segment the batch created), so no partial frame stays
//!   and the batch's LSNs can be given out again.
//! - A failed *fsync* is reported as such and the file is never synced again: after a
//!   failed `fdatasync` the kernel may have dropped the dirty pages and marked them clean,
//!   so a second fsync would "succeed" with the data gone (PostgreSQL's fsyncgate). The
//!   caller rewrites the batch into a fresh segment instead ([`Batch::as_rewrite`]).
//! - A segment *removed* behind the log's back (its link count, checked after each fsync,
//!   is 0) fails the batch with [`WalError::FileRemoved`]: its bytes went into a file
//!   that no longer has a name, so nothing of it may be acknowledged, and the log stops.
//!   One `statx` of the link count alone per fsync ([`crate::storage::StorageFile::is_linked`]):
//!   an `fstat` there, which also reads the timestamps, made every later write stamp a
//!   fine-grained mtime on Linux 6.13 and later, and cost one committer 1.29x its p50.

use super::batch::Batch;
use super::segment::{create_segment_with, list_segments, segment_name};
use crate::error::WalError;
use crate::format::SEGMENT_FLAG_REWRITE;
use crate::storage::{SharedStorage, StorageFile};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[path = "writer_undo.rs"]
mod undo;

/// How writing a batch failed.
#[derive(Debug, Clone)]
pub enum BatchFailure {
    /// A write failed; the segments were cut back to where the batch began. Nothing of the
    /// batch is on disk; its LSNs may be reused.
    Write(WalError),
    /// A step of the batch failed and cutting back failed too: the tail of the log may
    /// hold a partial batch. The log must not be written again before recovery.
    Unrepaired {
        /// The step that failed: `"create segment"`, `"write"`, `"remove later
        /// segments"` (a rewrite clearing the segments after it) or `"raise META"` (the
        /// newest-segment LSN, after the fsync; nothing is cut back then).
        step: &'static str,
        /// How it failed.
        error: WalError,
        /// How cutting back failed (boxed: it is rare, and keeps the failure small).
        repair: Box<WalError>,
    },
    /// `fdatasync` failed: the batch's bytes may or may not be on disk, and that file must
    /// never be synced again.
    Sync(WalError),
    /// A segment the batch was written to was removed while open (see
    /// [`WalError::FileRemoved`]): nothing of the batch may be acknowledged, and the log
    /// must stop.
    Removed(WalError),
    /// The writer was fenced off (another writer took over): it stopped and repaired nothing.
    Fenced,
}

impl std::fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchFailure::Write(e) | BatchFailure::Sync(e) | BatchFailure::Removed(e) => e.fmt(f),
            BatchFailure::Unrepaired {
                step,
                error,
                repair,
            } => write!(
                f,
                "{step} failed ({error}), and cutting the batch back failed too ({repair})"
            ),
            BatchFailure::Fenced => f.write_str("writer fenced off: another writer took over"),
        }
    }
}

/// Writes batches into the segments of one log directory.
#[derive(Debug)]
pub struct SegmentWriter {
    pub(super) storage: SharedStorage,
    pub(super) dir: PathBuf,
    /// The segment a rollover batch left, written by this batch and not yet synced: synced
    /// beside the new segment, at the batch's end ([`Self::sync_batch_end`]).
    pub(super) leaving: Option<(u64, Box<dyn StorageFile>)>,
    pub(super) segment_size_bytes: u64,
    pub(super) preallocate: bool,
    pub(super) active: Option<(u64, Box<dyn StorageFile>)>,
    /// Spares prepared ahead of rollovers ([`super::spare`]); `None`: every rollover
    /// creates its segment on the commit path (the queue's degraded path).
    pub spares: Option<super::spare::Spares>,
    /// The active segment is still under this spare name: it gets its segment name after
    /// its `fdatasync` ([`Self::name_spare`]).
    pub(super) unnamed: Option<PathBuf>,
    /// Whether the named `flusher::*` failpoints fire in this writer: true for the flusher
    /// thread's writer, false for the queue's degraded path (so a fault injected into "the
    /// flusher" does not also strike the path that stands in for it).
    pub failpoints: bool,
    /// `(current, mine)`: when `current` no longer holds `mine`, this writer has been
    /// replaced and must not write, sync or repair anything (a stalled flusher waking up).
    pub fence: Option<(Arc<AtomicU64>, u64)>,
    /// The log's metadata file: after a batch is durable and before it is acknowledged,
    /// its newest-segment LSN is raised to the segment the batch ends in (one replace per
    /// segment; nothing when it is already there), so that recovery can tell a lost
    /// newest segment from a log that ends there. `None`: not kept (a bare writer).
    pub meta: Option<Arc<super::meta::SharedMeta>>,
    /// The [`Planner::files_epoch`](super::batch::Planner::files_epoch) of the last batch
    /// written: a batch of another epoch follows a rewind or reset, and the file handles
    /// held are dropped before it is written.
    files_epoch: u64,
    /// Header flags the segments this writer creates carry, besides their own:
    /// [`SEGMENT_FLAG_COMPRESSED`](crate::format::SEGMENT_FLAG_COMPRESSED) when the log
    /// compresses. An existing segment without them that it is about to write its first
    /// frame into (an empty tail: a new log's first segment, after a reset or a rewind to
    /// a segment's start) is created again with them first (`active_file`); one
    /// that holds frames is left as it is, and the queue writes only plain frames into it
    /// until the log rolls over.
    pub segment_flags: u32,
}

impl SegmentWriter {
    /// A writer for the log in `dir`.
    pub fn new(
        storage: SharedStorage,
        dir: &Path,
        segment_size_bytes: u64,
        preallocate: bool,
    ) -> SegmentWriter {
        SegmentWriter {
            storage,
            dir: dir.to_path_buf(),
            segment_size_bytes,
            preallocate,
            active: None,
            leaving: None,
            spares: None,
            unnamed: None,
            failpoints: false,
            fence: None,
            meta: None,
            files_epoch: 0,
            segment_flags: 0,
        }
    }

    pub(super) fn path_of(&self, first_lsn: u64) -> PathBuf {
        self.dir.join(segment_name(first_lsn))
    }

    /// The segment `first_lsn` open for writing; `empty`: the write goes right after its
    /// header (it holds no frame the log keeps).
    fn active_file(&mut self, first_lsn: u64, empty: bool) -> Result<&dyn StorageFile, WalError> {
        if self.active.as_ref().map(|(l, _)| *l) != Some(first_lsn) {
            let path = self.path_of(first_lsn);
            let mut f = self
                .storage
                .open(&path, true)
                .map_err(|e| WalError::io("open", &path, e))?;
            if self.segment_flags != 0 && empty {
                let header = super::segment::header_of(f.as_ref(), &path, first_lsn)?;
                if header.flags & self.segment_flags == self.segment_flags {
                    // It may be the one an earlier attempt created again, renamed over the
                    // old one, and whose directory fsync then failed: the rename must be
                    // durable before frames go in, or a crash brings back the old, empty
                    // segment and loses them (the torture test found it). Rare: the first
                    // frame into an empty segment only.
                    self.storage
                        .sync_dir(&self.dir)
                        .map_err(|e| WalError::io("fsync dir", &self.dir, e))?;
                } else {
                    // Created again (under `.tmp`, renamed over it: old or new after a
                    // crash, both empty) rather than its header written in place, which a
                    // crash could tear.
                    drop(f);
                    f = create_segment_with(
                        self.storage.as_ref(),
                        &self.dir,
                        first_lsn,
                        self.segment_size_bytes,
                        self.preallocate,
                        header.flags | self.segment_flags,
                        &mut |_, _| Ok(()),
                    )?
                    .1;
                }
            }
            self.active = Some((first_lsn, f));
        }
        match &self.active {
            Some((_, f)) => Ok(f.as_ref()),
            None => unreachable!("active was set just above"),
        }
    }

    /// Forgets open file handles (after a failed fsync, the file must not be synced again
    /// through this writer; a later write reopens what it needs).
    pub fn forget_files(&mut self) {
        self.drop_unnamed();
        self.active = None;
        self.leaving = None;
    }

    pub(super) fn fenced(&self) -> bool {
        self.fence
            .as_ref()
            .is_some_and(|(cur, mine)| cur.load(Ordering::Acquire) != *mine)
    }

    pub(super) fn sync_active(&mut self) -> Result<(), BatchFailure> {
        if self.fenced() {
            return Err(BatchFailure::Fenced);
        }
        #[cfg(feature = "failpoints")]
        fail::fail_point!("flusher::before_sync", self.failpoints, |arg| {
            self.active = None;
            Err(BatchFailure::Sync(WalError::io(
                "fdatasync",
                &self.dir,
                crate::failpoint::injected_error("flusher::before_sync", arg),
            )))
        });
        if let Some((lsn, f)) = &self.active {
            let Err(failure) = super::rollover::sync_file(f.as_ref(), || self.path_of(*lsn)) else {
                return Ok(());
            };
            self.active = None;
            return Err(failure);
        }
        Ok(())
    }

    /// Writes `batch` and makes it durable.
    pub fn write_batch(&mut self, batch: &Batch) -> Result<(), BatchFailure> {
        // Made only for a `tracing` subscriber that wants it: with tracing's `log` feature
        // on (actix-web turns it on) a span costs about 200 instructions per batch even
        // when nothing records it, which one committer pays on every commit.
        let _span = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            tracing::debug_span!(
                "flush",
                first_lsn = batch.first_lsn,
                end_lsn = batch.end_lsn,
                records = batch.records,
                bytes = batch.buf.len(),
                rewrite = batch.rewrite,
            )
            .entered()
        });
        let started = std::time::Instant::now();
        // A spare left unnamed by a batch that failed before its rename.
        self.drop_unnamed();
        self.leaving = None;
        if batch.start.files_epoch != self.files_epoch {
            // A rewind or reset removed, cut or recreated segments since the last batch:
            // a handle held may name a file that is gone (or another file by that name).
            self.active = None;
            self.files_epoch = batch.start.files_epoch;
        }
        for (done, chunk) in batch.chunks.iter().enumerate() {
            if chunk.creates_segment {
                // The previous segment must be durable before a later one can exist, so a
                // crash never leaves a gap before a segment that survived. Only this
                // batch's own earlier chunk can be unsynced there (the batch before it was
                // fsynced before this one was written); the planner moves a batch that
                // fits into the new segment whole, so a rollover batch usually has none.
                if !batch.rewrite {
                    if done > 0 && !self.leave_unsynced() {
                        // A segment left unsynced by an earlier chunk first (a batch
                        // spanning three segments): it comes before this one's name.
                        self.sync_leaving()?;
                        self.sync_and_name(batch, done)?;
                    }
                } else {
                    self.active = None;
                    // The segments from here on, and the tail of the one before, may hold
                    // durable slot frames (they take no LSN, so they may lie at the batch's
                    // first LSN): `META` holds the slot's newest value before they go.
                    // Failed, nothing of the batch is written and nothing removed: the
                    // segments stay as they are (a cut-back would remove the one named by
                    // the batch's first LSN, slot frames and all), and the rewrite is
                    // tried again as after any failed fsync.
                    if let Some(Err(e)) = self.meta.as_ref().map(|m| m.fold_slot()) {
                        return Err(BatchFailure::Sync(e));
                    }
                    if let Err(e) = self.remove_from(chunk.segment_first_lsn) {
                        return Err(self.undo(batch, done, "remove later segments", e));
                    }
                }
                // And the last rollover's name (renamed without a directory fsync) must be
                // durable before a later name can be.
                if let Err(e) = self.settle_spare_dir() {
                    return Err(self.undo(batch, done, "create segment", e));
                }
                #[cfg(feature = "failpoints")]
                fail::fail_point!("segment::before_create", self.failpoints, |arg| {
                    let e = WalError::io(
                        "create segment",
                        self.path_of(chunk.segment_first_lsn),
                        crate::failpoint::injected_error("segment::before_create", arg),
                    );
                    Err(self.undo(batch, done, "create segment", e))
                });
                // A rewrite's segment replaces the frames from its first LSN on in the
                // segment before it; its header says so, or readers would call them an overlap.
                let flags = if batch.rewrite && chunk.segment_first_lsn == batch.first_lsn {
                    SEGMENT_FLAG_REWRITE
                } else {
                    0
                };
                // A prepared spare, when there is one, saves the creation (not for a
                // rewrite: it replaces a segment, and is rare).
                let from_spare = flags == 0
                    && match self.segment_from_spare(chunk.segment_first_lsn) {
                        Ok(used) => used,
                        Err(e) => return Err(self.undo(batch, done, "create segment", e)),
                    };
                if !from_spare {
                    // Named at once: the segment left must be durable before it exists.
                    self.sync_leaving()?;
                    self.create_segment(batch, done, flags | self.segment_flags)?;
                }
            }
            #[cfg(feature = "failpoints")]
            fail::fail_point!("flusher::before_write", self.failpoints, |arg| {
                let e = WalError::io(
                    "write",
                    self.path_of(chunk.segment_first_lsn),
                    crate::failpoint::injected_error("flusher::before_write", arg),
                );
                Err(self.undo(batch, done, "write", e))
            });
            // A flusher replaced while it stalled writes nothing: since it was fenced, the
            // degraded path may have written this batch, a rewind cut it, and these
            // offsets gone to acknowledged records (checked here, not only before the
            // batch and its fsync: a write after the fence would put the stale frames,
            // whose CRCs check, over them). What this check cannot fence is a thread
            // stalled inside the `pwrite` itself (docs/architecture.md).
            if self.fenced() {
                return Err(BatchFailure::Fenced);
            }
            let empty = chunk.offset == crate::format::SEGMENT_HEADER_BYTES as u64;
            let res = self
                .active_file(chunk.segment_first_lsn, empty)
                .and_then(|f| {
                    f.write_all_at(&batch.buf[chunk.start..chunk.end], chunk.offset)
                        .map_err(|e| WalError::io("write", PathBuf::new(), e))
                });
            if let Err(e) = res {
                let e = with_path(e, self.path_of(chunk.segment_first_lsn));
                return Err(self.undo(batch, done, "write", e));
            }
        }
        self.sync_batch_end(batch)?;
        #[cfg(feature = "failpoints")]
        fail::fail_point!("flusher::after_sync", self.failpoints, |arg| {
            // Reported as an fsync failure: the bytes may be on disk, so the batch is
            // rewritten to a fresh segment rather than its LSNs given out again.
            self.active = None;
            Err(BatchFailure::Sync(WalError::io(
                "fdatasync",
                &self.dir,
                crate::failpoint::injected_error("flusher::after_sync", arg),
            )))
        });
        self.raise_newest(batch)?;
        // The next rollover's spare, if there is none: a helper thread for the flusher,
        // here for a `LogWriter` (after this batch is durable, before its acknowledgement).
        if let Some(spares) = &mut self.spares {
            spares.prepare();
        }
        tracing::debug!(
            duration_us = started.elapsed().as_micros() as u64,
            "flushed"
        );
        Ok(())
    }

    /// Makes the active segment durable (`fdatasync`), then gives a segment built in a
    /// spare its name. `done`: the chunk being written, for cutting back on a failure.
    pub(super) fn sync_and_name(&mut self, batch: &Batch, done: usize) -> Result<(), BatchFailure> {
        self.sync_active()?;
        self.name_synced(batch, done)
    }

    /// After the active segment's `fdatasync`: names it if it is still a spare.
    pub(super) fn name_synced(&mut self, batch: &Batch, done: usize) -> Result<(), BatchFailure> {
        if self.unnamed.is_none() {
            return Ok(());
        }
        if self.fenced() {
            return Err(BatchFailure::Fenced);
        }
        self.name_spare()
            .map_err(|e| self.undo(batch, done, "create segment", e))
    }

    /// Creates the segment of chunk `done` the usual way (under `.tmp`, preallocated,
    /// fsynced, renamed, directory fsynced) and makes it the active one.
    fn create_segment(
        &mut self,
        batch: &Batch,
        done: usize,
        flags: u32,
    ) -> Result<(), BatchFailure> {
        let chunk = &batch.chunks[done];
        let (_, f) = match create_segment_with(
            self.storage.as_ref(),
            &self.dir,
            chunk.segment_first_lsn,
            self.segment_size_bytes,
            self.preallocate,
            flags,
            &mut |_, _| Ok(()),
        ) {
            Ok(x) => x,
            Err(e) => {
                if let Some(gone) = self.dir_gone("create segment") {
                    // Nothing to cut back in a directory that is no longer there.
                    self.active = None;
                    return Err(BatchFailure::Removed(gone));
                }
                return Err(self.undo(batch, done, "create segment", e));
            }
        };
        self.active = Some((chunk.segment_first_lsn, f));
        if let Some(spares) = &mut self.spares {
            spares.creation_succeeded();
        }
        Ok(())
    }

    /// After a failed segment creation: [`WalError::FileRemoved`] if the log directory's
    /// path names no directory any more (removed or renamed while the log was open).
    fn dir_gone(&self, op: &'static str) -> Option<WalError> {
        match self.storage.is_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(WalError::FileRemoved {
                op,
                path: self.dir.clone(),
            }),
            _ => None,
        }
    }

    /// Removes every segment whose first LSN is at or after `first_lsn` (they hold only
    /// unacknowledged records) and fsyncs the directory.
    fn remove_from(&self, first_lsn: u64) -> Result<(), WalError> {
        let (segments, _) = list_segments(self.storage.as_ref(), &self.dir)?;
        let mut removed = false;
        for s in segments.iter().filter(|s| s.first_lsn >= first_lsn) {
            self.storage
                .remove(&s.path)
                .map_err(|e| WalError::io("remove", &s.path, e))?;
            removed = true;
        }
        if removed {
            self.storage
                .sync_dir(&self.dir)
                .map_err(|e| WalError::io("fsync dir", &self.dir, e))?;
        }
        Ok(())
    }
}

fn with_path(e: WalError, path: PathBuf) -> WalError {
    match e {
        WalError::Io { op, source, .. } => WalError::Io { op, path, source },
        WalError::DiskFull { op, source, .. } => WalError::DiskFull { op, path, source },
        WalError::PermissionDenied { op, source, .. } => {
            WalError::PermissionDenied { op, path, source }
        }
        other => other,
    }
}

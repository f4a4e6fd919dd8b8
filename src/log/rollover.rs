//! The `fdatasync`s of a rollover batch that spans two segments (one too large to move
//! whole into the new segment, see `Batch::move_whole`): the flusher's writer syncs the
//! segment it leaves and the new one at the same time, on a scoped thread, so the batch
//! waits for one sync's time, not two. Neither file needs to be durable before the other:
//! the new segment is only a spare until both are (its rename comes after both; with no
//! spare ready the writer syncs the segment it leaves before it creates the new one), and
//! recovery never adopts a written spare that the segment before does not reach
//! (docs/format.md, "Recovery adopts a written spare"). That holds only while the new
//! segment is a spare: when it is created under its name at once (no spare ready), or a
//! batch moves on to a third segment, the segment left is synced first
//! ([`SegmentWriter::sync_leaving`]). `LogWriter` (deterministic, for the simulated disk)
//! syncs the two in turn, the segment it leaves first.

use super::batch::Batch;
use super::spare::Spares;
use super::writer::{BatchFailure, SegmentWriter};
use crate::error::WalError;
use crate::storage::StorageFile;
use std::path::PathBuf;

/// `fdatasync`s `f`, then checks that it still has a name: a removal before this point
/// fails the batch ([`BatchFailure::Removed`]); a later one is the remover's.
pub(super) fn sync_file(
    f: &dyn StorageFile,
    path: impl Fn() -> PathBuf,
) -> Result<(), BatchFailure> {
    match f.sync_data() {
        Err(e) => Err(BatchFailure::Sync(WalError::io("fdatasync", path(), e))),
        Ok(()) => match f.is_linked() {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::error!(path = %path().display(), "active segment was removed while open");
                Err(BatchFailure::Removed(WalError::FileRemoved {
                    op: "fdatasync",
                    path: path(),
                }))
            }
            // Not knowing whether the file still has a name: the bytes may be lost, so
            // the batch is rewritten to a fresh segment.
            Err(e) => Err(BatchFailure::Sync(WalError::io("fstat", path(), e))),
        },
    }
}

impl SegmentWriter {
    /// At a rollover chunk of a batch that wrote frames into the segment it leaves: the
    /// flusher's writer keeps that segment to sync at the batch's end beside the new one;
    /// `true` if it did (else the caller syncs it now).
    pub(super) fn leave_unsynced(&mut self) -> bool {
        let threaded = self.spares.as_ref().is_some_and(Spares::threaded);
        if !threaded || self.leaving.is_some() || self.unnamed.is_some() || self.fenced() {
            return false;
        }
        self.leaving = self.active.take();
        self.leaving.is_some()
    }

    /// Syncs the segment this batch left unsynced ([`Self::leave_unsynced`]), if any,
    /// before any later segment gets its name: one created under its name at once (no
    /// spare to build it in: none was ready, its preparation failed, or spares were
    /// closed), or the spare of a batch that spans three segments, named when the batch
    /// moves past it. A crash must never keep a named segment after frames of the segment
    /// before it that are not durable: a torn or missing frame there is a hole recovery
    /// must refuse (issue 20, item 4: "segment ends at LSN 306 but the next segment starts
    /// at 307"). On a failure the active segment is dropped as after any failed sync (a
    /// spare it was built in stays unnamed, removed before the next batch).
    pub(super) fn sync_leaving(&mut self) -> Result<(), BatchFailure> {
        let Some((lsn, left)) = self.leaving.take() else {
            return Ok(());
        };
        if self.fenced() {
            return Err(BatchFailure::Fenced);
        }
        sync_file(left.as_ref(), || self.path_of(lsn)).inspect_err(|_| self.active = None)
    }

    /// The batch's own `fdatasync`s: the active segment, and the segment it left if that
    /// is still unsynced (both at once); then the active segment gets its name if it was
    /// built in a spare. Nothing is named unless both syncs succeeded.
    pub(super) fn sync_batch_end(&mut self, batch: &Batch) -> Result<(), BatchFailure> {
        let last = batch.chunks.len().saturating_sub(1);
        let Some((lsn, old)) = self.leaving.take() else {
            return self.sync_and_name(batch, last);
        };
        let path = self.path_of(lsn);
        // Behind a lock only to be shared with the scoped thread (a file handle is `Send`,
        // not `Sync`); nothing else takes it.
        let old = std::sync::Mutex::new(old);
        let sync_old = || match old.lock() {
            Ok(f) => sync_file(f.as_ref(), || path.clone()),
            Err(_) => Err(BatchFailure::Sync(WalError::io(
                "fdatasync",
                &path,
                std::io::Error::other("the sync thread panicked"),
            ))),
        };
        let (mine, theirs) = std::thread::scope(|s| {
            let spawned = std::thread::Builder::new()
                .name("actix-wal-sync".into())
                .spawn_scoped(s, sync_old);
            match spawned {
                Ok(theirs) => {
                    let mine = self.sync_active();
                    let theirs = theirs.join().unwrap_or_else(|_| {
                        Err(BatchFailure::Sync(WalError::io(
                            "fdatasync",
                            &path,
                            std::io::Error::other("the sync thread panicked"),
                        )))
                    });
                    (mine, theirs)
                }
                // No thread to be had: one after the other, the segment left first.
                Err(_) => {
                    let theirs = sync_old();
                    let mine = match theirs {
                        Ok(()) => self.sync_active(),
                        Err(_) => Ok(()),
                    };
                    (mine, theirs)
                }
            }
        });
        match (mine, theirs) {
            (_, Err(e @ BatchFailure::Removed(_))) | (Err(e), _) | (_, Err(e)) => {
                // The spare (if the new segment is one) stays unnamed: it is removed
                // before the next batch.
                self.active = None;
                Err(e)
            }
            (Ok(()), Ok(())) => self.name_synced(batch, last),
        }
    }
}

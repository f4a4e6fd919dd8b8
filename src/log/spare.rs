//! Spare segments: the next segment's file, prepared ahead of the rollover that needs it.
//!
//! Creating a segment costs a create, a `fallocate`, an `fsync` of the new file and its
//! allocation, a rename and a directory `fsync`. Paid by the batch that crosses into the
//! segment, that put every rollover on the commit path of every record in that batch
//! (issue 14: p99 of 256 actors x 1 KiB was about 2x worse with 4 MiB segments than with
//! 1 GiB ones). A [`Spares`] prepares the file ahead, under a name that is not a
//! segment name (`spare-N.wal.tmp`, see docs/format.md), created, preallocated, `fsync`ed
//! and its directory entry made durable. At rollover the batch writes the header (with
//! the real first LSN) and its frames into the spare, `fdatasync`s it, and only then
//! renames it to the segment name: a file under a segment name still always has a
//! complete, durable header, as "Creating a segment" promises.
//!
//! A spare is never read as data unless its header is valid and it continues the log
//! exactly (recovery's adoption, below): its name ends in `.wal.tmp`, which readers and
//! `walctl` skip and recovery removes, like a segment whose creation was interrupted. A spare
//! whose preparation failed is dropped and the rollover creates the segment the old way.
//!
//! The rollover's rename is not followed by a directory `fsync` on the commit path: the
//! batch is acknowledged once its frames are durable (`fdatasync`) and the spare has its
//! segment name, and the directory `fsync` that makes the name durable is left to the
//! helper that prepares the next spare (the raise of `META`'s N, a replace, fsyncs the
//! directory too, and covers it). Until then a crash may bring the segment back under its
//! spare name: recovery adopts such a spare (docs/format.md, "Recovery adopts a written
//! spare"). Every new segment name waits for that `fsync` ([`Spares::settle_dir`]), so at
//! most one spare, the newest segment, is ever waiting for it. Except in a log whose spare
//! older builds could not adopt (compressing, or `META` of version 3): there the rename is
//! made durable before the acknowledgement (`spare_rollover.rs`, docs/format.md, "Older
//! builds and a lost rename").
//!
//! Who prepares: [`SpareMode::Thread`] (the flusher) on a short-lived helper thread, so
//! the flusher's thread never waits for it unless a rollover comes before the spare is
//! ready (then it waits for the preparation under way, which costs no more than creating
//! the segment itself); [`SpareMode::Inline`] ([`crate::LogWriter`]) on the caller's
//! thread after a batch, so the simulated-disk tests stay deterministic. The queue's
//! degraded path uses none.

pub use super::raise::Raise;
use crate::error::WalError;
use crate::storage::{SharedStorage, StorageFile};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Suffix of a spare's file name (a `.wal.tmp` file: skipped by readers, removed by
/// recovery).
pub const SPARE_SUFFIX: &str = ".wal.tmp";
/// Prefix of a spare's file name.
pub const SPARE_PREFIX: &str = "spare-";

/// Numbers spares within the process, so two writers of one directory (a flusher being
/// replaced and its successor) never share a spare's name.
static NEXT_SPARE: AtomicU64 = AtomicU64::new(1);

/// The file name of spare number `n`: `spare-` and `n` zero-padded to 20 digits, then
/// `.wal.tmp`.
pub fn spare_name(n: u64) -> String {
    format!("{SPARE_PREFIX}{n:020}{SPARE_SUFFIX}")
}

/// Whether `name` is a spare's file name.
pub fn is_spare_name(name: &str) -> bool {
    name.strip_prefix(SPARE_PREFIX)
        .and_then(|s| s.strip_suffix(SPARE_SUFFIX))
        .is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Who prepares spares for a [`crate::log::SegmentWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpareMode {
    /// A helper thread, started after each rollover (the flusher).
    Thread,
    /// The writer's own thread, after the batch that used the last spare
    /// ([`crate::LogWriter`]: deterministic, for the simulated disk).
    Inline,
}

/// A prepared spare: durable, preallocated, empty, under its spare name.
#[derive(Debug)]
pub struct SpareFile {
    /// Where it is (its spare name).
    pub path: PathBuf,
    /// Open for writing.
    pub file: Box<dyn StorageFile>,
}

/// What the writer needs to build spares.
#[derive(Debug, Clone)]
struct Recipe {
    storage: SharedStorage,
    dir: PathBuf,
    segment_size_bytes: u64,
    preallocate: bool,
}

impl Recipe {
    fn sync_dir(&self) -> Result<(), WalError> {
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| WalError::io("fsync dir", &self.dir, e))
    }

    /// Creates, preallocates and `fsync`s a spare, then `fsync`s the directory if
    /// `sync_dir` (else the caller does). On an error the file is removed (best effort;
    /// recovery removes it too).
    fn make(&self, sync_dir: bool) -> Result<SpareFile, WalError> {
        let path = self
            .dir
            .join(spare_name(NEXT_SPARE.fetch_add(1, Ordering::Relaxed)));
        let build = || -> Result<Box<dyn StorageFile>, WalError> {
            let file = self
                .storage
                .create(&path)
                .map_err(|e| WalError::io("create spare", &path, e))?;
            if self.preallocate {
                file.allocate(self.segment_size_bytes)
                    .map_err(|e| WalError::io("fallocate", &path, e))?;
            }
            file.sync_all()
                .map_err(|e| WalError::io("fsync", &path, e))?;
            if sync_dir {
                self.sync_dir()?;
            }
            Ok(file)
        };
        match build() {
            Ok(file) => {
                tracing::debug!(path = %path.display(), "spare segment ready");
                Ok(SpareFile { path, file })
            }
            Err(e) => {
                let _ = self.storage.remove(&path);
                Err(e)
            }
        }
    }
}

impl Recipe {
    /// A spare whose directory entry the helper's `fsync` did not make durable is never
    /// used: a crash could take its creation and the rollover's rename both, and the
    /// acknowledged records in it with them (the rollover before may have left no rename
    /// waiting, so nothing else would `fsync` the directory first). It is removed (best
    /// effort; recovery removes it too) and counts as a failed preparation.
    fn unless_dir_failed(
        &self,
        spare: Result<SpareFile, WalError>,
        dir_error: Option<WalError>,
    ) -> Result<SpareFile, WalError> {
        match (spare, dir_error) {
            (Ok(s), Some(e)) => {
                drop(s.file);
                let _ = self.storage.remove(&s.path);
                Err(e)
            }
            (spare, _) => spare,
        }
    }
}

/// What a helper thread did: the directory `fsync` a rollover left to it, and the spare.
#[derive(Debug)]
struct Helped {
    /// The directory was `fsync`ed (by the raise's replace, by itself, or by the spare's
    /// preparation) after the helper started, so every rename before that is durable.
    dir_synced: bool,
    spare: Result<SpareFile, WalError>,
}

#[derive(Debug)]
enum Pending {
    Ready(SpareFile),
    Making(JoinHandle<Helped>),
}

/// At most one spare, prepared or being prepared, for one writer. Dropping it waits for
/// a preparation under way and removes the unused spare.
#[derive(Debug)]
pub struct Spares {
    recipe: Recipe,
    mode: SpareMode,
    pending: Option<Pending>,
    /// A raise of `META`'s newest-segment LSN for the helper to make before it prepares
    /// the next spare (see [`Spares::raise_later`]).
    raise: Option<Raise>,
    /// The highest segment whose raise was handed to a helper: while that helper runs,
    /// later batches of the segment need not raise again.
    raise_handed: u64,
    /// Preparations that failed in a row; at [`MAX_FAILED_SPARES`] the writer stops
    /// trying (every rollover then creates its segment the old way) until one succeeds.
    failed_in_row: u32,
    /// A spare was renamed to its segment name and no directory `fsync` has followed yet:
    /// the name may not survive a crash (recovery then adopts the spare). Cleared by the
    /// helper's `fsync`s or by [`Spares::settle_dir`].
    dir_sync_pending: bool,
}

/// Failed preparations in a row after which a writer stops preparing spares until a
/// segment creation of its own succeeds (a full or read-only disk: no file per rollover).
pub const MAX_FAILED_SPARES: u32 = 3;

impl Spares {
    /// Spares for the log in `dir`, prepared as `mode` says.
    pub fn new(
        storage: SharedStorage,
        dir: &Path,
        segment_size_bytes: u64,
        preallocate: bool,
        mode: SpareMode,
    ) -> Spares {
        Spares {
            recipe: Recipe {
                storage,
                dir: dir.to_path_buf(),
                segment_size_bytes,
                preallocate,
            },
            mode,
            pending: None,
            raise: None,
            raise_handed: 0,
            failed_in_row: 0,
            // Another writer of this directory (a flusher this one replaces) may have
            // left a rename not yet durable: this one's first new name waits for an
            // fsync of the directory too (its first helper makes one).
            dir_sync_pending: true,
        }
    }

    /// Starts preparing a spare if there is none (on a helper thread, or here).
    pub fn prepare(&mut self) {
        if self.pending.is_some() || self.failed_in_row >= MAX_FAILED_SPARES {
            return;
        }
        match self.mode {
            SpareMode::Inline => match self.recipe.make(true) {
                Ok(s) => {
                    // Its preparation ended with a directory fsync.
                    self.dir_sync_pending = false;
                    self.pending = Some(Pending::Ready(s))
                }
                Err(e) => self.failed(e),
            },
            SpareMode::Thread => {
                let recipe = self.recipe.clone();
                let raise = self.raise.take();
                let spawned = std::thread::Builder::new()
                    .name("actix-wal-spare".into())
                    .spawn(move || {
                        // One directory fsync for the new spare's entry and the last
                        // rollover's rename, before the raise: N must never name a
                        // segment whose name a crash could still take (a replace of
                        // META writes its copies in place and fsyncs no directory).
                        let spare = recipe.make(false);
                        let dir_error = recipe.sync_dir().err();
                        if dir_error.is_none() && !skip_raise() {
                            if let Some(raise) = raise {
                                raise.run();
                            }
                        }
                        Helped {
                            dir_synced: dir_error.is_none(),
                            spare: recipe.unless_dir_failed(spare, dir_error),
                        }
                    });
                match spawned {
                    Ok(h) => self.pending = Some(Pending::Making(h)),
                    Err(e) => self.failed(WalError::io("spawn", &self.recipe.dir, e)),
                }
            }
        }
    }

    fn failed(&mut self, e: WalError) {
        self.failed_in_row += 1;
        tracing::warn!(error = %e, failed_in_row = self.failed_in_row, "preparing a spare segment failed");
    }

    /// Hands the raise of `META`'s newest-segment LSN to the helper that prepares the
    /// next spare, if this writer has one that is idle; `false`: the caller raises it now.
    pub fn raise_later(&mut self, raise: Raise) -> bool {
        if let Some(Pending::Making(h)) = &self.pending {
            if raise.segment_first_lsn <= self.raise_handed && !h.is_finished() {
                // The helper under way raises it. One that has finished did not (else N
                // would be there already): the caller raises it now.
                return true;
            }
        }
        if self.mode != SpareMode::Thread
            || self.pending.is_some()
            || self.failed_in_row >= MAX_FAILED_SPARES
        {
            return false;
        }
        self.raise_handed = self.raise_handed.max(raise.segment_first_lsn);
        self.raise = Some(raise);
        true
    }

    /// A segment was created without a spare and succeeded: try spares again.
    pub fn creation_succeeded(&mut self) {
        self.failed_in_row = 0;
    }

    /// Whether spares are prepared on a helper thread (the flusher's writer).
    pub fn threaded(&self) -> bool {
        self.mode == SpareMode::Thread
    }

    /// A rollover renamed a spare to its segment name without a directory `fsync`; the
    /// next helper (or [`Self::settle_dir`]) makes it.
    pub fn renamed(&mut self) {
        self.dir_sync_pending = true;
    }

    /// Waits for a helper under way, then `fsync`s the directory if a rollover's rename
    /// is still not durable. Before any new segment name (the next rollover, a segment
    /// created the usual way), so that a crash never keeps a later segment's name
    /// without this one's (a gap recovery must refuse).
    pub fn settle_dir(&mut self) -> Result<(), WalError> {
        if let Some(Pending::Making(_)) = self.pending {
            self.pending = self.take().map(Pending::Ready);
        }
        self.settle_rename()
    }

    /// Makes the last rollover's rename durable now, on the writer's thread: for a log
    /// whose spare a build from before its features could not adopt (see
    /// `SegmentWriter::name_spare` in `spare_rollover.rs`). Joins no helper.
    pub fn settle_rename(&mut self) -> Result<(), WalError> {
        if self.dir_sync_pending {
            self.recipe.sync_dir()?;
            self.dir_sync_pending = false;
        }
        Ok(())
    }

    /// The prepared spare, waiting for a preparation under way; `None` if there is none
    /// or it failed.
    pub fn take(&mut self) -> Option<SpareFile> {
        match self.pending.take()? {
            Pending::Ready(s) => Some(s),
            Pending::Making(h) => match h.join() {
                Ok(helped) => {
                    if helped.dir_synced {
                        self.dir_sync_pending = false;
                    }
                    match helped.spare {
                        Ok(s) => Some(s),
                        Err(e) => {
                            self.failed(e);
                            None
                        }
                    }
                }
                Err(_) => {
                    self.failed(WalError::io(
                        "prepare spare",
                        &self.recipe.dir,
                        std::io::Error::other("the spare's helper thread panicked"),
                    ));
                    None
                }
            },
        }
    }

    /// Removes a spare that will not be used (best effort: recovery removes it too).
    pub fn discard(&self, spare: SpareFile) {
        drop(spare.file);
        let _ = self.recipe.storage.remove(&spare.path);
    }
}

/// The failpoint `spare::before_raise` (the helper, between its spare and its raise):
/// `sleep(N)` stalls it, `return` skips the raise as a failed one would.
fn skip_raise() -> bool {
    fail::fail_point!("spare::before_raise", |_| true);
    false
}

impl Drop for Spares {
    fn drop(&mut self) {
        if let Some(s) = self.take() {
            self.discard(s);
        }
        // A clean shutdown leaves the newest segment's name durable (best effort: recovery
        // adopts the spare if this fails and the machine then crashes).
        if self.dir_sync_pending {
            let _ = self.recipe.sync_dir();
        }
    }
}

impl super::writer::SegmentWriter {
    /// Stops preparing spares: joins the helper under way (its raise of N and directory
    /// `fsync` done, unless the writer was fenced off), removes the prepared spare, and
    /// makes a rollover's rename durable if it is not yet. Rollovers from now on create
    /// their segment the usual way. The flusher's last I/O before a shutdown.
    pub fn close_spares(&mut self) {
        self.spares = None;
    }

    /// [`Self::close_spares`] for a writer that may have been fenced off (a dead flusher
    /// dropped): joins the helper under way first; then, if the writer is fenced off, its
    /// directory may belong to another opener already: nothing is done in it, and the
    /// spare left is returned (its file closed) for the holder of the directory to remove
    /// (recovery removes it otherwise, a `.wal.tmp` leftover).
    pub fn close_spares_unless_fenced(&mut self) -> Option<PathBuf> {
        let mut spares = self.spares.take()?;
        let spare = spares.take();
        if self.fenced() {
            spares.dir_sync_pending = false;
            return spare.map(|s| s.path);
        }
        if let Some(s) = spare {
            spares.discard(s);
        }
        None
    }

    /// Prepares spares for this writer from now on (see [`Spares`]).
    pub fn enable_spares(&mut self, mode: SpareMode) {
        self.spares = Some(Spares::new(
            self.storage.clone(),
            &self.dir,
            self.segment_size_bytes,
            self.preallocate,
            mode,
        ));
    }
}

#[cfg(test)]
#[path = "spare_tests.rs"]
mod tests;

//! The writer's side of spares: a rollover into the prepared spare (its header written,
//! the batch's frames after it), its rename to the segment name after the `fdatasync`,
//! the directory `fsync` that makes that name durable (left to the spare helper, or made
//! at once for a log older builds could not adopt a spare of), and the removal of a spare
//! whose batch failed before its rename. See `spare.rs` for why spares exist.

use super::spare::Spares;
use crate::error::WalError;

impl super::writer::SegmentWriter {
    /// The segment `first_lsn` from the prepared spare, if there is one: its header is
    /// written (the batch's frames follow), and it stays under the spare's name until
    /// [`Self::name_spare`], after its `fdatasync`. `Ok(false)`: no spare, create the
    /// segment the usual way.
    pub(super) fn segment_from_spare(&mut self, first_lsn: u64) -> Result<bool, WalError> {
        let Some(spare) = self.spares.as_mut().and_then(Spares::take) else {
            return Ok(false);
        };
        let header = crate::format::SegmentHeader::encode_full(
            first_lsn,
            self.segment_flags,
            crate::format::SEGMENT_LOG_KEEPS_META,
        );
        if let Err(e) = spare.file.write_all_at(&header, 0) {
            let e = WalError::io("write header", &spare.path, e);
            if let Some(s) = &self.spares {
                s.discard(spare);
            }
            return Err(e);
        }
        tracing::debug!(first_lsn, spare = %spare.path.display(), "rollover into a spare");
        self.unnamed = Some(spare.path);
        self.active = Some((first_lsn, spare.file));
        Ok(true)
    }

    /// After the active segment's `fdatasync`: a segment still under its spare name gets
    /// its segment name (a rename; the directory `fsync` is left to the spare helper, see
    /// the module's docs). Nothing when it has its name.
    ///
    /// Except in a log that builds from before compression or slot frames cannot adopt a
    /// spare of: its segments carry `COMPRESSED`, or its `META` is of version 3 (slot
    /// frames). Those builds refuse such a log, but first remove the spares they cannot
    /// adopt, so a crash that lost the rename, followed by an open with such a build,
    /// would lose the acknowledged records in the spare. There the directory is
    /// `fsync`ed here, before the acknowledgement (one more `fsync` per rollover). If it
    /// fails, the batch fails and is cut back like one whose segment creation failed.
    pub(super) fn name_spare(&mut self) -> Result<(), WalError> {
        let (Some(from), Some((first_lsn, _))) = (&self.unnamed, &self.active) else {
            return Ok(());
        };
        let to = self.dir.join(super::segment::segment_name(*first_lsn));
        self.storage
            .rename(from, &to)
            .map_err(|e| WalError::io("rename", from, e))?;
        self.unnamed = None;
        let now = self.older_builds_cannot_adopt();
        if let Some(spares) = &mut self.spares {
            spares.renamed();
            if now {
                spares.settle_rename()?;
            }
        }
        Ok(())
    }

    /// Whether a build from before compression and slot frames could not adopt this log's
    /// spare (see [`Self::name_spare`]).
    fn older_builds_cannot_adopt(&self) -> bool {
        self.segment_flags != 0
            || self
                .meta
                .as_ref()
                .is_some_and(|m| m.file_takes_slot_frames())
    }

    /// Before a new segment name: the last rollover's rename is durable (see
    /// [`Spares::settle_dir`]). A writer without spares (the queue's degraded path)
    /// `fsync`s the directory: the flusher it stands in for may have left a rename whose
    /// `fsync` its helper had not made yet (one more `fsync` beside a creation's own).
    pub(super) fn settle_spare_dir(&mut self) -> Result<(), WalError> {
        match &mut self.spares {
            Some(spares) => spares.settle_dir(),
            None => self
                .storage
                .sync_dir(&self.dir)
                .map_err(|e| WalError::io("fsync dir", &self.dir, e)),
        }
    }

    /// Removes a spare the active segment was being built in when its batch failed
    /// before the rename, and `fsync`s the directory: it holds a valid header, and a
    /// crash must not leave it for recovery to adopt once the batch's LSNs are given out
    /// again (best effort: recovery adopts it only right after the segment it follows,
    /// where its frames are the ones that batch wrote).
    pub(super) fn drop_unnamed(&mut self) {
        if let Some(path) = self.unnamed.take() {
            // The active file is the spare (they are set together).
            self.active = None;
            let _ = self.storage.remove(&path);
            let _ = self.storage.sync_dir(&self.dir);
        }
    }
}

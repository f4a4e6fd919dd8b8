//! The cut-back of a batch that failed (`SegmentWriter::undo`): each segment it wrote cut
//! back to where the batch began in it, each segment it created removed, newest first,
//! each step durable before the next.

use super::SegmentWriter;
use crate::error::WalError;
use crate::format::SEGMENT_FLAG_REWRITE;
use crate::log::batch::Batch;
use crate::log::segment::create_segment_with;
use crate::log::writer::BatchFailure;
use std::path::Path;

impl SegmentWriter {
    /// Undoes the chunks written so far (and the one that failed): cuts each segment back
    /// to the chunk's offset, or removes a segment the batch created.
    ///
    /// Newest first, each step durable before the next: a created segment's removal is
    /// fsynced before the segment before it is cut back, or a power cut in between could
    /// keep the later segment after a cut one, a hole recovery must refuse. A rewrite's
    /// frames were first written where the batch began, in the segment whose fsync failed,
    /// and may be on disk there: that segment is cut back too, or a power cut could bring
    /// back records whose callers were told they failed.
    /// `step` names what failed, for the error when the cut-back fails too.
    pub(super) fn undo(
        &mut self,
        batch: &Batch,
        written: usize,
        step: &'static str,
        error: WalError,
    ) -> BatchFailure {
        if self.fenced() {
            return BatchFailure::Fenced;
        }
        tracing::warn!(%error, step, first_lsn = batch.first_lsn, "batch failed; cutting back");
        self.drop_unnamed();
        self.active = None;
        self.leaving = None;
        let touched = (written + 1).min(batch.chunks.len());
        let mut repair = batch.chunks[..touched].iter().rev().try_for_each(|chunk| {
            let path = self.path_of(chunk.segment_first_lsn);
            if chunk.creates_segment {
                match self.storage.remove(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(WalError::io("remove", &path, e));
                    }
                    _ => {}
                }
                self.storage
                    .sync_dir(&self.dir)
                    .map_err(|e| WalError::io("fsync dir", &self.dir, e))
            } else {
                self.cut(&path, chunk.offset)
            }
        });
        if repair.is_ok() && batch.rewrite && batch.start.segment_first_lsn < batch.first_lsn {
            repair = self.cut(
                &self.path_of(batch.start.segment_first_lsn),
                batch.start.offset,
            );
        }
        if repair.is_ok() && batch.rewrite && batch.start.segment_first_lsn == batch.first_lsn {
            // The rewrite replaced the very segment the log goes on in (it held no record
            // before the batch; slot frames perhaps, folded into `META` before the
            // removal): with its replacement gone too, the log would go on in a segment
            // that no longer exists. It comes back empty, as a rewrite (an abandoned tail
            // before it stays abandoned), and the queue goes on at its start.
            repair = create_segment_with(
                self.storage.as_ref(),
                &self.dir,
                batch.first_lsn,
                self.segment_size_bytes,
                self.preallocate,
                SEGMENT_FLAG_REWRITE | self.segment_flags,
                &mut |_, _| Ok(()),
            )
            .map(|_| ());
        }
        match repair {
            Ok(()) => BatchFailure::Write(error),
            Err(repair) => {
                tracing::error!(error = %repair, step, "cutting back a failed batch failed");
                BatchFailure::Unrepaired {
                    step,
                    error,
                    repair: Box::new(repair),
                }
            }
        }
    }

    fn cut(&self, path: &Path, offset: u64) -> Result<(), WalError> {
        let f = self
            .storage
            .open(path, true)
            .map_err(|e| WalError::io("open", path, e))?;
        f.set_len(offset)
            .map_err(|e| WalError::io("truncate", path, e))?;
        if self.preallocate {
            // Best effort: the blocks come back at the next rollover if this fails.
            let _ = f.allocate(self.segment_size_bytes);
        }
        f.sync_all().map_err(|e| WalError::io("fsync", path, e))
    }
}

//! Raising `META`'s newest-segment LSN (N) after a batch in a new segment is durable: on
//! the commit path, before the batch is acknowledged, or handed as a [`Raise`] to the
//! flusher's spare helper, which makes it off the commit path. docs/format.md says what
//! N promises and what the later raise gives up.

use super::batch::Batch;
use super::meta::SharedMeta;
use super::writer::{BatchFailure, SegmentWriter};
use crate::error::WalError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A raise of `META`'s newest-segment LSN (N) made off the commit path: after the first
/// batch in a segment is durable, and possibly after it is acknowledged. Skipped when a
/// replace was attempted since the batch (a rewind lowering N) or the writer was fenced
/// off; a failure is logged and leaves N lower. N lower than it could be is always safe
/// (the log reaches past it); docs/format.md says what the later raise gives up.
#[derive(Debug)]
pub struct Raise {
    /// The log's metadata file.
    pub meta: Arc<SharedMeta>,
    /// The segment N is raised to.
    pub segment_first_lsn: u64,
    /// `seq` of the metadata value current when the batch was durable.
    pub seen_seq: u64,
    /// The writer's fence (see [`SegmentWriter::fence`]).
    pub fence: Option<(Arc<AtomicU64>, u64)>,
}

impl Raise {
    /// Makes the raise (the helper has `fsync`ed the directory first); true if it
    /// replaced `META`.
    pub(super) fn run(self) -> bool {
        if let Some((current, mine)) = &self.fence {
            if current.load(Ordering::Acquire) != *mine {
                return false;
            }
        }
        match self
            .meta
            .raise_newest_unless_replaced(self.segment_first_lsn, self.seen_seq)
        {
            Ok(raised) => {
                tracing::debug!(
                    raised,
                    newest_lsn = self.segment_first_lsn,
                    "newest-segment LSN raised off the commit path"
                );
                raised
            }
            Err(e) => {
                tracing::warn!(error = %e, "raising the newest-segment LSN failed; it stays lower");
                false
            }
        }
    }
}

impl SegmentWriter {
    /// After the batch's fsync, before any of it is acknowledged: `META`'s newest-segment
    /// LSN reaches the segment the batch ends in. The batch is on disk but may not be
    /// acknowledged if this fails. Failed before its rename (settled), the disk holds the
    /// old value: reported as a failed fsync, the batch is rewritten to a fresh segment
    /// (whose first batch raises it again). Failed after (unsettled), the disk may hold the
    /// raised value, and a rewrite, which removes the batch's segments, would leave a log
    /// short of it: the log is poisoned instead, nothing removed, and the reopen finds the
    /// batch where it is.
    pub(super) fn raise_newest(&mut self, batch: &Batch) -> Result<(), BatchFailure> {
        // The last segment the batch wrote a record into: a segment holding slot frames
        // alone (they take no LSN) must not become N, which the log must reach past.
        let last = batch
            .chunks
            .iter()
            .rev()
            .find(|c| c.segment_first_lsn < batch.end_lsn);
        let (Some(meta), Some(last)) = (&self.meta, last) else {
            return Ok(());
        };
        if self.fenced() {
            return Err(BatchFailure::Fenced);
        }
        let meta = meta.clone();
        if let Some(raised) = self.raise_later(meta.clone(), last.segment_first_lsn) {
            return raised;
        }
        // N must never name a segment whose name a crash could still take: a rollover
        // into a spare leaves its rename to a later directory fsync, made here first (a
        // replace of META fsyncs no directory). A failure is handled as a failed fsync.
        let raising = meta
            .current()
            .is_some_and(|m| m.newest_lsn < last.segment_first_lsn);
        if raising {
            if let Some(spares) = &mut self.spares {
                if let Err(e) = spares.settle_dir() {
                    self.active = None;
                    return Err(BatchFailure::Sync(e));
                }
            }
        }
        let Err(error) = meta.raise_newest(last.segment_first_lsn) else {
            return Ok(());
        };
        self.active = None;
        if meta.is_settled() {
            return Err(BatchFailure::Sync(error));
        }
        let repair = WalError::io(
            "raise META",
            meta.path(),
            std::io::Error::other(
                "META may hold the raised value: the batch is kept, not rewritten",
            ),
        );
        Err(BatchFailure::Unrepaired {
            step: "raise META",
            error,
            repair: Box::new(repair),
        })
    }

    /// Hands the raise of N to `segment_first_lsn` to the spare helper (the flusher:
    /// [`SpareMode::Thread`]); `None`: the caller raises it now, before acknowledging.
    fn raise_later(
        &mut self,
        meta: Arc<SharedMeta>,
        segment_first_lsn: u64,
    ) -> Option<Result<(), BatchFailure>> {
        let current = meta.current()?;
        if current.newest_lsn >= segment_first_lsn {
            return Some(Ok(()));
        }
        let raise = Raise {
            meta,
            segment_first_lsn,
            seen_seq: current.seq,
            fence: self.fence.clone(),
        };
        self.spares
            .as_mut()
            .is_some_and(|s| s.raise_later(raise))
            .then_some(Ok(()))
    }
}

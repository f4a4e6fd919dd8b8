//! Keeping the read index (`log/index.rs`) in step with the log: the frames of each
//! durable batch are noted (sparsely), a rewrite or a failed write cuts it back, a
//! checkpoint makes it forget removed segments, and shutdown closes it. The reads
//! themselves run on the reader pool (`actors/reader.rs`), never here.

use super::Queue;
use crate::log::{Batch, LogIndex};
use std::path::PathBuf;
use std::sync::{Arc, RwLockWriteGuard};

impl Queue {
    fn index_mut(&self) -> RwLockWriteGuard<'_, LogIndex> {
        // A poisoned lock means a reader panicked holding it; readers never write, so the
        // index is whole.
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the frames of a batch that is now durable, from the marks it kept while
    /// encoding (one entry per stride is kept), then moves the durable end (and hands the
    /// batch to live subscribers, if any). A rewrite first
    /// cuts away what the index held from the batch's first LSN (nothing durable, but the
    /// segment it replaces goes).
    pub(super) fn index_written(&self, batch: &Arc<Batch>) {
        let mut idx = self.index_mut();
        if batch.rewrite {
            idx.cut(batch.first_lsn);
        }
        // The frames as the batch noted them while encoding (no header read back), each
        // chunk's together (one segment lookup per chunk, not per frame).
        let mut spans = batch.frame_spans().peekable();
        for c in &batch.chunks {
            let frames = std::iter::from_fn(|| spans.next_if(|&(start, _, _)| start < c.end)).map(
                |(start, end, mark)| {
                    (
                        mark.lsn,
                        u64::from(mark.count),
                        c.offset + (start - c.start) as u64,
                        (end - start) as u64,
                    )
                },
            );
            idx.note_frames(c.segment_first_lsn, frames);
        }
        debug_assert!(spans.next().is_none(), "a batch frame outside its chunks");
        idx.set_durable_end(batch.end_lsn);
        drop(idx);
        if batch.rewrite {
            crate::progress::cut(&self.progress, batch.first_lsn);
        }
        crate::progress::durable_batch(&self.progress, batch);
    }

    /// A write was cut back at `lsn`: nothing from there on is readable.
    pub(super) fn index_cut(&self, lsn: u64) {
        self.index_mut().cut(lsn);
        crate::progress::cut(&self.progress, lsn);
    }

    /// A rewind cut segment `segment_first_lsn` at `offset`, the frame of `lsn`: nothing
    /// from there on is readable.
    pub(super) fn index_cut_at(&self, lsn: u64, segment_first_lsn: u64, offset: u64) {
        self.index_mut().cut_at(lsn, segment_first_lsn, offset);
        crate::progress::cut(&self.progress, lsn);
    }

    /// A reset: the log holds nothing, and goes on at `next_lsn`.
    pub(super) fn index_reset(&self, next_lsn: u64) {
        let mut idx = self.index_mut();
        let removed_from = idx.first_lsn();
        // Through `cut`, as every removal goes: nothing indexed before stays readable.
        idx.cut(0);
        idx.set_first_lsn(next_lsn);
        idx.set_durable_end(next_lsn);
        drop(idx);
        crate::progress::cut(&self.progress, removed_from.min(next_lsn));
        crate::progress::durable(&self.progress, next_lsn);
    }

    /// Where to start walking to the frame of `lsn` (a frame at or below it), if the
    /// index knows.
    pub(super) fn index_hint(&self, lsn: u64) -> Option<(u64, u64, u64)> {
        let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
        let span = idx.locate(lsn, lsn.saturating_add(1)).ok()?;
        Some((span.segment_first_lsn, span.start_lsn, span.start_offset))
    }

    /// A checkpoint at `checkpoint` removed `removed`: the index forgets those segments,
    /// and the log's first readable LSN becomes the checkpoint (or the first segment kept,
    /// if that is higher).
    pub(super) fn index_truncated(&self, removed: &[PathBuf], checkpoint: u64) {
        let Some(dir) = &self.dir else {
            return;
        };
        let mut idx = self.index_mut();
        // The persisted checkpoint is the log's start, even inside a kept segment.
        let first = idx.first_lsn().max(checkpoint).min(idx.durable_end());
        idx.set_first_lsn(first);
        let gone = |first: u64| removed.contains(&dir.path().join(crate::log::segment_name(first)));
        let first_kept = idx
            .segment_first_lsns()
            .find(|&f| !gone(f))
            .unwrap_or(idx.durable_end());
        if idx.segment_first_lsns().next().is_some_and(gone) {
            idx.forget_before(first_kept);
        }
        drop(idx);
        crate::progress::checkpoint(&self.progress, first);
    }

    /// The log shut down: reads get `ShutDown`.
    pub(super) fn index_close(&self) {
        self.index_mut().close();
        crate::progress::close(&self.progress);
    }
}

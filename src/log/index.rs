//! The read index: a sparse, in-memory map from LSN to where its frame sits, so a read of
//! one record on the open log costs one positional read of a short span, never a scan.
//!
//! For each segment (by first LSN) it keeps one `(lsn, offset)` entry per
//! [`INDEX_STRIDE_BYTES`] of frames (the first frame of the segment always has one), and
//! where the segment's durable frames end. Recovery builds it while it scans every frame
//! (`recovery.rs`); the queue adds the frames of each batch once it is durable, cuts it
//! back when a batch is rewritten, and forgets the segments a checkpoint removes.
//!
//! Memory: 16 bytes per entry, one entry per 16 KiB of frames (or per frame, for frames
//! larger than that), plus about 100 bytes per segment: about 1/1024 of the log's bytes
//! (1 MiB of index for 1 GiB of log), and the exact place of the newest
//! [`RECENT_FRAMES`] frames (96 KiB at most). `docs/architecture.md` states the same bound.
//!
//! No actix here: the queue shares it with the readers behind a [`SharedIndex`]
//! (`std::sync::RwLock`), held only for a lookup or an update. It also holds the segment
//! files readers keep open (`handles.rs`) and a generation that changes, closing them,
//! whenever a cut, a removal or a new first LSN may change what a segment name stands for;
//! a read is kept only if its generation is still current after the `pread`.

use super::handles::{fresh_generation, SegmentHandles};
use crate::error::WalError;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};

/// Bytes of frames between two index entries of a segment. A read walks at most this many
/// bytes of frames (plus the frame it wants) from the nearest entry.
pub const INDEX_STRIDE_BYTES: u64 = 16 * 1024;

/// The newest frames whose exact place the index keeps (besides the sparse entries), so
/// that a read of a recent record reads its frame alone, not a stride of frames before it
/// (8 KiB on average: it made a read in place 4 us beside a 1 us bare `pread`). 24 bytes
/// each: 96 KiB at most.
pub const RECENT_FRAMES: usize = 4096;

/// The index shared by the queue (the writer) and the reader threads.
pub type SharedIndex = Arc<RwLock<LogIndex>>;

/// What the index knows of one segment.
#[derive(Debug, Clone, Default)]
struct SegmentEntries {
    /// `(lsn, offset)` of frames, one per stride, in order; the first is the segment's
    /// first durable frame.
    entries: Vec<(u64, u64)>,
    /// LSN after the last durable record indexed in this segment.
    end_lsn: u64,
    /// Offset where the last durable frame indexed in this segment ends (an upper bound
    /// once `cut` moved `end_lsn` back).
    end_offset: u64,
}

/// Where to read: a span of one segment that starts at a frame boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The segment, by first LSN.
    pub segment_first_lsn: u64,
    /// LSN of the frame at `start_offset`.
    pub start_lsn: u64,
    /// Offset of a frame at or below the LSN looked up.
    pub start_offset: u64,
    /// The frame holding the LSN looked up ends at or before this offset.
    pub min_end_offset: u64,
    /// The frames of LSNs below the `until` asked for end at or before this offset.
    pub want_end_offset: u64,
    /// Offset where this segment's durable frames end.
    pub segment_end_offset: u64,
    /// LSN after the last durable, readable record of this segment.
    pub end_lsn: u64,
}

/// The sparse read index of a log (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct LogIndex {
    segments: BTreeMap<u64, SegmentEntries>,
    /// The lowest LSN a read may return (the first record of the log).
    first_lsn: u64,
    /// Every LSN below this is durable; reads at or above it are `NotFound`.
    durable_end: u64,
    /// Set at shutdown: reads get [`WalError::ShutDown`].
    closed: bool,
    /// Changes (to a value never used before) whenever a segment name may stop naming the
    /// file a reader looked up: a cut, a removal, a new first LSN, shutdown. A read is
    /// good only if the generation it looked up in is still current after it read.
    generation: u64,
    /// Open segment files kept for readers of this generation (`log/handles.rs`).
    handles: SegmentHandles,
    /// `(segment first LSN, frame LSN, offset)` of the newest [`RECENT_FRAMES`] frames
    /// noted, every one of them, in order.
    recent: VecDeque<(u64, u64, u64)>,
}

impl LogIndex {
    /// An empty index of a log whose records start at `first_lsn`.
    pub fn new(first_lsn: u64) -> LogIndex {
        LogIndex {
            first_lsn,
            durable_end: first_lsn,
            generation: fresh_generation(),
            ..LogIndex::default()
        }
    }

    /// A new generation: readers holding the old one read again, and the cached segment
    /// handles are closed (a removed segment's space is freed, a recreated one reopened).
    fn new_generation(&mut self) {
        self.generation = fresh_generation();
        self.handles.clear();
    }

    /// The current generation (see the field's docs).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The open segment files readers share in this generation.
    pub fn handles(&self) -> &SegmentHandles {
        &self.handles
    }

    /// Notes a durable frame of `count` records at `lsn`, at `offset` in segment
    /// `segment_first_lsn`, `frame_bytes` long. Frames come in LSN order; an entry is kept
    /// only for the first frame of a segment and then once per [`INDEX_STRIDE_BYTES`].
    pub fn note_frame(
        &mut self,
        segment_first_lsn: u64,
        lsn: u64,
        count: u64,
        offset: u64,
        frame_bytes: u64,
    ) {
        self.note_frames(
            segment_first_lsn,
            std::iter::once((lsn, count, offset, frame_bytes)),
        );
    }

    /// [`Self::note_frame`] for consecutive frames of one segment, each `(lsn, count,
    /// offset, frame_bytes)`: the segment is looked up once, not per frame. No frame, no
    /// change.
    pub fn note_frames(
        &mut self,
        segment_first_lsn: u64,
        frames: impl IntoIterator<Item = (u64, u64, u64, u64)>,
    ) {
        let mut frames = frames.into_iter().peekable();
        if frames.peek().is_none() {
            return;
        }
        let seg = self.segments.entry(segment_first_lsn).or_default();
        let recent = &mut self.recent;
        for (lsn, count, offset, frame_bytes) in frames {
            let due = seg
                .entries
                .last()
                .is_none_or(|&(_, last)| offset >= last + INDEX_STRIDE_BYTES);
            if due {
                seg.entries.push((lsn, offset));
            }
            debug_assert!(
                seg.end_lsn == 0 || seg.end_lsn == lsn,
                "frames noted in order"
            );
            seg.end_lsn = lsn + count;
            seg.end_offset = offset + frame_bytes;
            if recent.len() == RECENT_FRAMES {
                recent.pop_front();
            }
            recent.push_back((segment_first_lsn, lsn, offset));
        }
    }

    /// Every LSN below `end` is durable (and noted).
    pub fn set_durable_end(&mut self, end: u64) {
        self.durable_end = end;
    }

    /// Every LSN below this is durable.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// The lowest LSN a read may return.
    pub fn first_lsn(&self) -> u64 {
        self.first_lsn
    }

    /// Sets the lowest LSN a read may return (at open: the log's first record).
    pub fn set_first_lsn(&mut self, lsn: u64) {
        self.new_generation();
        self.first_lsn = lsn;
    }

    /// Forgets every LSN at or after `lsn` (a batch rewritten, a log cut back): segments
    /// starting there go, entries at or after it go, and nothing from `lsn` on is readable.
    pub fn cut(&mut self, lsn: u64) {
        self.new_generation();
        self.segments.retain(|&first, _| first < lsn);
        if let Some((_, seg)) = self.segments.iter_mut().next_back() {
            seg.entries.retain(|&(l, _)| l < lsn);
            seg.end_lsn = seg.end_lsn.min(lsn);
        }
        self.durable_end = self.durable_end.min(lsn);
        self.first_lsn = self.first_lsn.min(lsn);
        while let Some(&(s, _, o)) = self.recent.back().filter(|&&(_, l, _)| l >= lsn) {
            self.recent.pop_back();
            // The first frame cut away starts where the kept frames of its segment end.
            if let Some(seg) = self.segments.get_mut(&s) {
                seg.end_offset = seg.end_offset.min(o);
            }
        }
    }

    /// [`Self::cut`] for a rewind that cut segment `segment_first_lsn` at `offset` (the
    /// frame of `lsn`): that segment's frames now end there.
    pub fn cut_at(&mut self, lsn: u64, segment_first_lsn: u64, offset: u64) {
        self.cut(lsn);
        if let Some(seg) = self.segments.get_mut(&segment_first_lsn) {
            seg.end_offset = seg.end_offset.min(offset);
        }
    }

    /// Forgets the segments below `first_kept` (removed by a checkpoint): the log's first
    /// readable LSN becomes `first_kept`, or stays if already higher.
    pub fn forget_before(&mut self, first_kept: u64) {
        self.new_generation();
        self.segments.retain(|&first, _| first >= first_kept);
        self.first_lsn = self.first_lsn.max(first_kept);
        while self.recent.front().is_some_and(|&(s, _, _)| s < first_kept) {
            self.recent.pop_front();
        }
    }

    /// First LSNs of the indexed segments, in order.
    pub fn segment_first_lsns(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.keys().copied()
    }

    /// Entries held, over all segments (for tests and stats).
    pub fn entries(&self) -> usize {
        self.segments.values().map(|s| s.entries.len()).sum()
    }

    /// Marks the log shut down: every later lookup is [`WalError::ShutDown`].
    pub fn close(&mut self) {
        self.new_generation();
        self.closed = true;
    }

    /// Where to read `lsn` from, and how far the frames of LSNs below `until` reach in
    /// the same segment. `NotFound` when `lsn` is below the log's first LSN, was removed,
    /// or is not durable (never written, or not yet fsynced).
    pub fn locate(&self, lsn: u64, until: u64) -> Result<Span, WalError> {
        if self.closed {
            return Err(WalError::ShutDown);
        }
        let not_found = WalError::NotFound { lsn: lsn.into() };
        if lsn < self.first_lsn || lsn >= self.durable_end {
            return Err(not_found);
        }
        let Some((&first, seg)) = self.segments.range(..=lsn).next_back() else {
            return Err(not_found);
        };
        let end_lsn = seg.end_lsn.min(self.durable_end);
        if lsn >= end_lsn {
            return Err(not_found);
        }
        // The last entry at or below `lsn`: entries are in LSN order.
        let i = seg.entries.partition_point(|&(l, _)| l <= lsn);
        let Some(&(start_lsn, start_offset)) = i.checked_sub(1).and_then(|i| seg.entries.get(i))
        else {
            return Err(not_found);
        };
        let offset_from = |from: usize, bound: u64| {
            seg.entries[from..]
                .iter()
                .find(|&&(l, _)| l >= bound)
                .map_or(seg.end_offset, |&(_, o)| o)
        };
        // A recent frame: its exact place, and where the frames wanted end (the offset of
        // the frame after the last one wanted, or the segment's end). The recent frames
        // are every frame noted lately, in order, so neighbours are neighbours on disk.
        let frame_end = |k: usize| match (self.recent.get(k), self.recent.get(k + 1)) {
            (Some(&(s, _, _)), Some(&(next_s, _, next_offset)))
                if s == first && next_s == first =>
            {
                next_offset
            }
            _ => seg.end_offset,
        };
        let holding = |x: u64| {
            self.recent
                .partition_point(|&(_, l, _)| l <= x)
                .checked_sub(1)
        };
        let exact =
            holding(lsn).filter(|&j| self.recent[j].0 == first && self.recent[j].1 >= start_lsn);
        let (start_lsn, start_offset, min_end_offset, want_end_offset) = match exact {
            Some(j) => {
                // `until - 1` is at or past `lsn`, so its frame is at `j` or later.
                let k = holding(until.max(lsn + 1) - 1).unwrap_or(j);
                let (_, l, o) = self.recent[j];
                (l, o, frame_end(j), frame_end(k))
            }
            None => (
                start_lsn,
                start_offset,
                offset_from(i, lsn + 1),
                offset_from(i, until.max(lsn + 1)),
            ),
        };
        Ok(Span {
            segment_first_lsn: first,
            start_lsn,
            start_offset,
            min_end_offset,
            want_end_offset,
            segment_end_offset: seg.end_offset,
            end_lsn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(frames: u64, frame_bytes: u64) -> LogIndex {
        let mut idx = LogIndex::new(1);
        for i in 0..frames {
            idx.note_frame(1, 1 + i, 1, 32 + i * frame_bytes, frame_bytes);
        }
        idx.set_durable_end(1 + frames);
        idx
    }

    #[test]
    fn entries_are_sparse_and_bounded() {
        let idx = index_of(10_000, 280);
        let bytes = 10_000 * 280;
        assert!(idx.entries() as u64 <= bytes / INDEX_STRIDE_BYTES + 1);
        assert!(idx.entries() > 1);
    }

    #[test]
    fn locate_starts_at_or_below_and_ends_after_the_frame() {
        let idx = index_of(10_000, 280);
        for lsn in [1, 2, 58, 59, 60, 5_000, 10_000] {
            let s = idx.locate(lsn, lsn + 1).unwrap();
            assert!(s.start_lsn <= lsn);
            let frame_end = 32 + lsn * 280;
            assert!(s.min_end_offset >= frame_end, "lsn {lsn}: {s:?}");
            assert!(s.min_end_offset - s.start_offset <= INDEX_STRIDE_BYTES + 280);
        }
    }

    #[test]
    fn a_recent_frame_is_located_exactly_and_an_old_one_by_stride() {
        let mut idx = index_of(10_000, 280);
        let frame_at = |lsn: u64| 32 + (lsn - 1) * 280;
        for lsn in [10_000 - RECENT_FRAMES as u64 + 1, 9_990, 10_000] {
            let s = idx.locate(lsn, lsn + 1).unwrap();
            assert_eq!((s.start_lsn, s.start_offset), (lsn, frame_at(lsn)));
            assert_eq!(s.min_end_offset, frame_at(lsn) + 280, "lsn {lsn}");
            assert_eq!(s.want_end_offset, s.min_end_offset, "lsn {lsn}");
        }
        let s = idx.locate(9_000, 9_010).unwrap();
        assert_eq!(s.want_end_offset, frame_at(9_010));
        let s = idx.locate(10, 11).unwrap();
        assert!(s.start_lsn <= 10 && s.min_end_offset >= frame_at(11));
        idx.cut(9_995);
        let s = idx.locate(9_994, 9_995).unwrap();
        assert_eq!(s.min_end_offset, frame_at(9_995));
        // Frames noted after a cut sit where the cut left off.
        idx.note_frame(1, 9_995, 1, frame_at(9_995), 100);
        idx.set_durable_end(9_996);
        let s = idx.locate(9_995, 9_996).unwrap();
        assert_eq!(
            (s.start_offset, s.min_end_offset),
            (frame_at(9_995), frame_at(9_995) + 100)
        );
    }

    #[test]
    fn not_found_outside_the_durable_log() {
        let mut idx = index_of(100, 100);
        assert!(matches!(
            idx.locate(101, 102),
            Err(WalError::NotFound { .. })
        ));
        assert!(matches!(idx.locate(0, 1), Err(WalError::NotFound { .. })));
        idx.cut(50);
        assert!(matches!(idx.locate(50, 51), Err(WalError::NotFound { .. })));
        assert!(idx.locate(49, 50).is_ok());
        idx.forget_before(40);
        assert!(matches!(idx.locate(39, 40), Err(WalError::NotFound { .. })));
    }
}

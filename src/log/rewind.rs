//! Rewind (`truncate_after`) and reset on the files of a locked log directory: steps 1 to
//! 4 of their protocols in `docs/format.md` ("The metadata file / Protocols"). The queue
//! runs them with appends held, after its own checks; recovery completes an intent a crash
//! left in `META` before it scans. No actix here.

use super::dir::LogDir;
use super::intent_check::{check_intent, SegmentSpan};
use super::recovery::RecoveryOptions;
use super::recovery_plan::kept_by_intent;
use super::scan::{NextSegment, SegmentCursor, SegmentData};
use super::segment::{create_segment_with, SegmentFile};
use crate::error::WalError;
use crate::format::meta::MetaIntent;
use crate::format::SEGMENT_HEADER_BYTES;
use crate::lsn::Lsn;

/// Where appends continue after a rewind to `x`: the frame of `x + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutPoint {
    /// First LSN of S, the last segment whose first LSN is at or below `x + 1`.
    pub segment_first_lsn: u64,
    /// Offset of the frame of `x + 1` in S (32 when S starts at `x + 1`).
    pub offset: u64,
}

/// How a rewind or reset failed.
#[derive(Debug)]
pub enum RewindFailure {
    /// Refused or failed before it was decided: the log on disk is as it was.
    Unchanged(WalError),
    /// Failed after it was decided (or while `META` may hold either value): the log
    /// must stop, and the reopen's recovery yields the log before or after it.
    InDoubt(WalError),
}

/// A frame position inside a segment to start the walk to `x + 1` from (from the read
/// index): `(segment first LSN, frame LSN, frame offset)`.
pub type WalkHint = (u64, u64, u64);

impl LogDir {
    /// Finds S and the offset of the frame of `target` in it, walking S's frames (from
    /// `hint` when it lies in S at or below `target`, else from the first). Read only.
    /// A frame that holds `target` but does not start at it is
    /// [`WalError::SplitsTransaction`]; frames of S that end before `target` (neither it
    /// nor the end of the log) are corruption.
    pub(crate) fn locate_cut(
        &self,
        target: u64,
        hint: Option<WalkHint>,
        opts: &RecoveryOptions,
    ) -> Result<CutPoint, WalError> {
        let (segments, _) = self.list()?;
        let i = segments
            .partition_point(|s| s.first_lsn <= target)
            .checked_sub(1)
            .ok_or_else(|| corrupt_at(self, target, "no segment holds it"))?;
        let s: &SegmentFile = &segments[i];
        let header = SEGMENT_HEADER_BYTES as u64;
        if s.first_lsn == target {
            return Ok(CutPoint {
                segment_first_lsn: target,
                offset: header,
            });
        }
        let storage = self.storage().as_ref();
        let limit = NextSegment::after(storage, &segments, i);
        let mut data = SegmentData::load(storage, s)?;
        let mut cursor = SegmentCursor::new(s.first_lsn, limit, opts.max_record_bytes);
        if let Some((seg, lsn, offset)) = hint {
            if seg == s.first_lsn && lsn <= target && offset >= header {
                cursor.pos = offset as usize;
                cursor.next_lsn = lsn;
            }
        }
        while let Some(frame) = cursor.next_frame(&mut data)? {
            let (lsn, count) = (frame.header.lsn, u64::from(frame.header.count));
            if lsn == target {
                return Ok(CutPoint {
                    segment_first_lsn: s.first_lsn,
                    offset: frame.offset as u64,
                });
            }
            if lsn < target && target < lsn + count {
                return Err(WalError::SplitsTransaction {
                    lsn: Lsn(target - 1),
                });
            }
        }
        if cursor.next_lsn == target {
            // S's frames end exactly there: a rewind completed up to step 3 before a crash.
            return Ok(CutPoint {
                segment_first_lsn: s.first_lsn,
                offset: cursor.pos as u64,
            });
        }
        Err(corrupt_at(
            self,
            target,
            "the frames of its segment end before it",
        ))
    }

    /// `truncate_after(x)`, steps 1 to 4: the intent, the later segments removed, S cut
    /// at the frame of `x + 1`, the intent cleared. The caller checked `x` against the
    /// log (at or above its first LSN minus one, below its next LSN) and holds appends;
    /// every record up to `x` is durable. `decided` runs once step 1 is durable, before
    /// any file changes (the queue cuts its read index there). Returns where appends
    /// continue.
    pub(crate) fn truncate_after(
        &self,
        x: u64,
        hint: Option<WalkHint>,
        opts: &RecoveryOptions,
        decided: &mut dyn FnMut(),
    ) -> Result<CutPoint, RewindFailure> {
        let before = self.meta().current();
        let (first, newest) = before
            .as_ref()
            .map_or((0, 0), |m| (m.first_lsn, m.newest_lsn));
        let cut = self
            .locate_cut(x + 1, hint, opts)
            .map_err(RewindFailure::Unchanged)?;
        let (segments, _) = self.list().map_err(RewindFailure::Unchanged)?;
        // N' (docs/format.md): no segment above x holds a record any more.
        let lowered = if newest <= x {
            newest
        } else if x < first {
            0
        } else {
            segments
                .iter()
                .rev()
                .find(|s| s.first_lsn <= x)
                .map_or(0, |s| s.first_lsn)
        };
        self.decide(
            |m| {
                m.intent = MetaIntent::TruncateAfter(x);
                m.newest_lsn = lowered;
                // A cursor past the cut goes back to it: the records it had passed are
                // gone, and the next ones will be new (docs/architecture.md).
                for c in m.cursors.iter_mut().filter(|c| c.lsn > x + 1) {
                    c.lsn = x + 1;
                }
            },
            |m| {
                m.intent = MetaIntent::None;
                m.newest_lsn = newest;
            },
        )?;
        decided();
        self.finish_truncate_after(x, cut, None)
            .map_err(RewindFailure::InDoubt)?;
        tracing::debug!(
            after = x,
            segment = cut.segment_first_lsn,
            offset = cut.offset,
            "rewound log"
        );
        Ok(cut)
    }

    /// `reset(n)`, steps 1 to 4: the intent (with the first LSN `n`), every segment
    /// removed, the segment `n` created, the intent cleared. The caller checked `n` and
    /// holds appends. Cursors at or past `caught_up` (the log's next LSN) move to `n`,
    /// the others are invalidated, in step 1's replace. `decided` as for [`Self::truncate_after`].
    pub(crate) fn reset(
        &self,
        n: u64,
        caught_up: u64,
        opts: &RecoveryOptions,
        decided: &mut dyn FnMut(),
    ) -> Result<(), RewindFailure> {
        let before = self.meta().current();
        let (first, newest) = before
            .as_ref()
            .map_or((0, 0), |m| (m.first_lsn, m.newest_lsn));
        self.decide(
            |m| {
                m.intent = MetaIntent::Reset(n);
                m.first_lsn = n;
                m.checkpoint_lsn = n;
                m.newest_lsn = 0;
                // A cursor that had passed every record (at the old next LSN) goes on at
                // `n`; one that had not lost records it needed: invalidated.
                for c in m.cursors.iter_mut().filter(|c| !c.invalidated) {
                    if c.lsn >= caught_up {
                        c.lsn = n;
                    } else {
                        c.invalidated = true;
                    }
                }
            },
            |m| {
                m.intent = MetaIntent::None;
                m.first_lsn = first;
                m.newest_lsn = newest;
            },
        )?;
        decided();
        self.finish_reset(n, opts).map_err(RewindFailure::InDoubt)?;
        tracing::debug!(next_lsn = n, "reset log");
        Ok(())
    }

    /// Step 1: writes the intent. Failed before its rename (settled), nothing happened.
    /// Failed at or after it, the old value is written back (a fresh file); if that fails
    /// too, the disk may hold the intent: in doubt.
    fn decide(
        &self,
        intent: impl FnOnce(&mut crate::format::meta::LogMeta),
        undo: impl FnOnce(&mut crate::format::meta::LogMeta),
    ) -> Result<(), RewindFailure> {
        let Err(e) = self.meta().update(intent) else {
            return Ok(());
        };
        if self.meta().is_settled() {
            return Err(RewindFailure::Unchanged(e));
        }
        match self.meta().update(undo) {
            Ok(()) => Err(RewindFailure::Unchanged(e)),
            Err(again) => {
                tracing::error!(error = %e, undo = %again, "rewind intent in doubt");
                Err(RewindFailure::InDoubt(e))
            }
        }
    }

    /// Steps 2 to 4 of `truncate_after(x)` (also for recovery completing an intent): the
    /// segments above `x + 1` removed and the directory fsynced, S cut at `cut.offset`
    /// (or rebuilt from its bytes below it, given the CRC of its frames from offset 32,
    /// when the page cache is in doubt), the intent cleared.
    pub(super) fn finish_truncate_after(
        &self,
        x: u64,
        cut: CutPoint,
        rebuild: Option<(u32, &RecoveryOptions)>,
    ) -> Result<(), WalError> {
        let (segments, _) = self.list()?;
        let intent = MetaIntent::TruncateAfter(x);
        for s in segments.iter().filter(|s| !kept_by_intent(intent, s)) {
            self.storage()
                .remove(&s.path)
                .map_err(|e| WalError::io("remove", &s.path, e))?;
        }
        self.sync()?;
        let s = SegmentFile {
            first_lsn: cut.segment_first_lsn,
            path: self
                .path()
                .join(super::segment::segment_name(cut.segment_first_lsn)),
        };
        match rebuild {
            Some((frames_crc, opts)) => {
                self.rebuild_last_segment(&s, cut.offset, frames_crc, opts)?;
            }
            None => self.cut_segment(&s, cut.offset)?,
        }
        self.meta().update(|m| m.intent = MetaIntent::None)
    }

    /// Steps 2 to 4 of `reset(n)` (also for recovery completing an intent).
    pub(super) fn finish_reset(&self, n: u64, opts: &RecoveryOptions) -> Result<(), WalError> {
        let (segments, _) = self.list()?;
        let intent = MetaIntent::Reset(n);
        for s in segments.iter().filter(|s| !kept_by_intent(intent, s)) {
            self.storage()
                .remove(&s.path)
                .map_err(|e| WalError::io("remove", &s.path, e))?;
        }
        self.sync()?;
        create_segment_with(
            self.storage().as_ref(),
            self.path(),
            n,
            opts.preallocate_bytes,
            opts.preallocate_bytes > 0,
            0,
            &mut |_, _| Ok(()),
        )?;
        self.meta().update(|m| m.intent = MetaIntent::None)
    }

    /// Cuts S at `offset` in place and fsyncs it.
    fn cut_segment(&self, s: &SegmentFile, offset: u64) -> Result<(), WalError> {
        let f = self
            .storage()
            .open(&s.path, true)
            .map_err(|e| WalError::io("open", &s.path, e))?;
        f.set_len(offset)
            .map_err(|e| WalError::io("truncate", &s.path, e))?;
        f.sync_all().map_err(|e| WalError::io("fsync", &s.path, e))
    }
}

impl LogDir {
    /// Recovery's step 3: completes a rewind or reset whose intent a crash left in
    /// `META` (steps 2 to 4 again: each is idempotent). With a `POISONED` marker present
    /// S is rebuilt rather than cut in place, and the marker goes. Returns whether there
    /// was one to complete.
    /// The intent was checked first ([`Self::check_pending_intent`]).
    pub(super) fn finish_intent(&self, opts: &RecoveryOptions) -> Result<bool, WalError> {
        let Some(m) = self.meta().current() else {
            return Ok(false);
        };
        let poisoned = self.poison_marker();
        match m.intent {
            MetaIntent::None => return Ok(false),
            MetaIntent::TruncateAfter(x) => {
                tracing::warn!(after = x, "completing a rewind a crash interrupted");
                let cut = self.locate_cut(x.saturating_add(1), None, opts)?;
                let rebuild = match poisoned {
                    true => Some((self.frames_crc(cut)?, opts)),
                    false => None,
                };
                self.finish_truncate_after(x, cut, rebuild)?;
            }
            MetaIntent::Reset(n) => {
                tracing::warn!(next_lsn = n, "completing a reset a crash interrupted");
                self.finish_reset(n, opts)?;
            }
        }
        if poisoned && self.poison_marker() {
            self.clear_poison_marker()?;
        }
        Ok(true)
    }

    /// Recovery's check of an intent found in `META` against the segments, before any
    /// segment is touched ([`check_intent`], then for a rewind the walk to its cut, which
    /// reads only): an intent the live API would refuse, or that the files contradict,
    /// is corruption naming `META`, under every policy.
    pub(super) fn check_pending_intent(&self, opts: &RecoveryOptions) -> Result<(), WalError> {
        let Some(m) = self.meta().current() else {
            return Ok(());
        };
        if m.intent == MetaIntent::None {
            return Ok(());
        }
        let corrupt = |reason: String| WalError::Corruption {
            segment: self.meta().path(),
            offset: 40,
            reason: format!("{reason}: refused before anything was removed"),
        };
        let (segments, _) = self.list()?;
        let spans: Vec<SegmentSpan> = segments
            .iter()
            .map(|s| SegmentSpan {
                first_lsn: s.first_lsn,
                end_lsn: None,
            })
            .collect();
        check_intent(&m, &spans).map_err(|c| corrupt(c.reason))?;
        if let MetaIntent::TruncateAfter(x) = m.intent {
            self.locate_cut(x + 1, None, opts).map_err(|e| {
                if e.is_corruption() || matches!(e, WalError::SplitsTransaction { .. }) {
                    corrupt(format!("truncate after LSN {x} pending: {e}"))
                } else {
                    e
                }
            })?;
        }
        Ok(())
    }

    /// CRC of S's bytes from offset 32 to `cut.offset` (what a rebuild copies).
    fn frames_crc(&self, cut: CutPoint) -> Result<u32, WalError> {
        let s = SegmentFile {
            first_lsn: cut.segment_first_lsn,
            path: self
                .path()
                .join(super::segment::segment_name(cut.segment_first_lsn)),
        };
        let mut data = SegmentData::load(self.storage().as_ref(), &s)?;
        let mut crc = crc32fast::Hasher::new();
        let mut offset = SEGMENT_HEADER_BYTES as u64;
        while offset < cut.offset {
            let n = (cut.offset - offset).min(super::scan::READ_WINDOW_BYTES as u64);
            crc.update(data.bytes(offset, n as usize)?);
            offset += n;
        }
        Ok(crc.finalize())
    }
}

fn corrupt_at(dir: &LogDir, target: u64, why: &str) -> WalError {
    WalError::Corruption {
        segment: dir.path().to_path_buf(),
        offset: 0,
        reason: format!("rewind to LSN {}: {why}", target.saturating_sub(1)),
    }
}

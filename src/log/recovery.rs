//! The recovery core: scan the log, cut a torn tail, refuse (or salvage) mid-log
//! corruption, and say where the log goes on. Each policy is one branch, here.

use super::dir::LogDir;
use super::index::LogIndex;
use super::scan::{NextSegment, SegmentCursor, SegmentData, SegmentEnd};
use super::segment::{create_segment_with, read_header, SegmentFile};
use crate::error::WalError;
use crate::lsn::Lsn;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What recovery does with damage, named as RocksDB and raft-engine name theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RecoveryPolicy {
    /// Default. A torn tail of the last segment (a partial frame, a bad CRC, garbage that a
    /// crash in the last write batch explains) is cut off; any damage before it is an error
    /// and the log is not opened. (RocksDB `kTolerateCorruptedTailRecords`, raft-engine
    /// `TolerateTailCorruption`.)
    #[default]
    TolerateTornTail,
    /// Any damage, a torn tail included, is an error; nothing is cut. For logs whose last
    /// write is known to have completed. (RocksDB `kAbsoluteConsistency`.)
    AbsoluteConsistency,
    /// Salvage: keep every record up to the first damage, cut the log there (later
    /// segments are removed) and go on. Records after the damage are lost; the report says
    /// where. (RocksDB `kPointInTimeRecovery`.)
    SkipToLastGood,
}

/// Bounds recovery needs.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryOptions {
    /// The policy.
    pub policy: RecoveryPolicy,
    /// Largest frame payload accepted.
    pub max_record_bytes: u64,
    /// Size to preallocate a segment to again after cutting its tail (0: no preallocation).
    pub preallocate_bytes: u64,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default)]
pub struct RecoveryOutcome {
    /// Records found intact.
    pub records: u64,
    /// Segment files in the log after recovery.
    pub segments: usize,
    /// Bytes read.
    pub bytes_scanned: u64,
    /// LSN of the first intact record, if any.
    pub first_lsn: Option<Lsn>,
    /// LSN of the last intact record, if any.
    pub last_lsn: Option<Lsn>,
    /// The LSN the next append gets.
    pub next_lsn: Lsn,
    /// The segment appends continue in (`None` for a log with no segment yet).
    pub tail_segment: Option<SegmentFile>,
    /// The offset in `tail_segment` where the next frame goes.
    pub tail_offset: u64,
    /// Bytes of torn tail cut off the last segment.
    pub bytes_cut: u64,
    /// Files removed: leftovers of an interrupted segment creation, and under
    /// `SkipToLastGood` the segments after the damage.
    pub removed: Vec<PathBuf>,
    /// A written spare adopted as the last segment (its rename lost in a crash; see
    /// docs/format.md, "Recovery adopts a written spare"): its segment path.
    pub adopted_spare: Option<PathBuf>,
    /// Under `SkipToLastGood`, the damage that was skipped.
    pub salvaged_from: Option<WalError>,
    /// The sparse read index of the recovered log, built during the scan (see
    /// `LogIndex`): every intact record up to `next_lsn`, readable from `first_lsn`.
    pub index: LogIndex,
    /// The log's first LSN as persisted in `META` (the checkpoint; for a new log,
    /// `first_lsn` of the options once `open_log` has created it). Records below it are
    /// not counted, replayed or read, even where their segment is kept.
    pub start_lsn: Lsn,
    /// The application's metadata slot (`Wal::meta`): `META`'s, or the newest slot frame's
    /// when its generation is higher (see `slot_frame`).
    pub meta: Option<Vec<u8>>,
    /// The slot frame of highest generation the scan read (generation, bytes), if any:
    /// `Wal::set_meta` writes the slot's values into the log (`format/slot_frame.rs`).
    pub slot_frame: Option<(u64, Vec<u8>)>,
    /// What was wrong with the copies of `META` and was repaired (a copy damaged,
    /// missing, or older than the other: both were written back from the newest whole
    /// one), or that a log without `META` got one. `None` when nothing was.
    pub meta_repair: Option<String>,
}

impl RecoveryOutcome {
    /// A slot frame read: kept if its generation is the highest so far.
    fn saw_slot(&mut self, payload: &[u8]) -> Result<(), String> {
        crate::format::slot_frame::keep_newest(&mut self.slot_frame, payload)
    }

    /// Counts a frame's records unless they all lie below the log's first LSN (a
    /// transaction that reaches it counts whole: transactions are never split).
    fn saw_frame(&mut self, lsn: u64, count: u16) {
        let end = lsn.saturating_add(u64::from(count));
        if end > self.start_lsn.0 {
            if self.first_lsn.is_none() {
                self.first_lsn = Some(Lsn(lsn));
            }
            self.records += u64::from(count);
        }
    }
}

/// What `SkipToLastGood` may do with damage a segment's scan stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Salvage {
    /// Cut the segment at this offset (after its last good frame), the log going on at
    /// this LSN, and drop every later segment.
    CutAt(u64, u64),
    /// Drop this segment (its header is bad) and every later one.
    DropSegment,
    /// Nothing: the damage is refused under every policy (LSNs out of range).
    Refuse,
}

impl LogDir {
    /// Runs recovery on this (locked) log directory.
    pub fn recover(&self, opts: &RecoveryOptions) -> Result<RecoveryOutcome, WalError> {
        let span =
            tracing::debug_span!("recovery", dir = %self.path().display(), policy = ?opts.policy);
        let _enter = span.enter();
        let storage = self.storage();
        let (mut segments, mut temps) = self.list()?;
        // A leftover name that is not a regular file is refused before anything changes.
        super::recovery_plan::refuse_non_files(storage.as_ref(), self.path(), &temps)?;
        // A segment named for an LSN outside `1..=MAX_LSN` is refused under every policy,
        // before anything is changed: no salvage makes its LSNs (or the next one) valid.
        if let Some((file, reason)) = segments
            .iter()
            .find_map(|s| super::segment::first_lsn_out_of_range(s.first_lsn).map(|r| (s, r)))
        {
            return Err(WalError::Corruption {
                segment: file.path.clone(),
                offset: 0,
                reason,
            });
        }
        let mut out = RecoveryOutcome {
            next_lsn: Lsn::FIRST,
            ..Default::default()
        };
        // A spare that holds the newest segment, its rename lost in a crash, comes back
        // first; every other leftover is removed.
        self.adopt_spare(&mut segments, &mut temps, opts, &mut out)?;
        for tmp in temps {
            // Gone already is as good as removed: the lock keeps every other writer of
            // this log out, but a leftover is no reason to refuse the log either way.
            match storage.remove(&tmp) {
                Ok(()) => out.removed.push(tmp),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(WalError::io("remove", &tmp, e)),
            }
        }
        self.remove_meta_leftover(&mut out)?;
        if !out.removed.is_empty() {
            self.sync()?;
        }
        // Both copies of META; an intent is checked against the segments before a
        // segment is touched, then completed before anything is scanned.
        let read = self.meta().reload()?;
        out.meta_repair = read.problem();
        self.check_pending_intent(opts)?;
        let finished = self.finish_intent(opts)?;
        let segments = match finished {
            true => self.list()?.0,
            false => segments,
        };
        let found_meta = self.load_meta(&segments, &mut out)?;
        let poisoned_before = self.poison_marker();
        if poisoned_before {
            // What the directory shows now is what the log becomes.
            self.sync()?;
        }
        let mut expected: Option<u64> = None;
        for (i, file) in segments.iter().enumerate() {
            let limit = NextSegment::after(storage.as_ref(), &segments, i);
            let scanned = self.scan_one(file, limit, expected, opts, &mut out, poisoned_before);
            match scanned {
                Ok((cursor, len, tail_crc)) => {
                    out.bytes_scanned += len;
                    expected = Some(cursor.next_lsn);
                    out.next_lsn = Lsn(cursor.next_lsn);
                    out.tail_segment = Some(file.clone());
                    out.tail_offset = cursor.pos as u64;
                    let rewrites = tail_crc.is_some()
                        || matches!(cursor.end, Some(SegmentEnd::TornTail { .. }));
                    if rewrites {
                        let found = found_meta.as_ref();
                        self.refuse_breach_before_cutting(found, &segments, cursor.next_lsn, opts)?;
                    }
                    if let Some(SegmentEnd::TornTail { garbage_bytes }) = cursor.end {
                        if opts.policy == RecoveryPolicy::AbsoluteConsistency {
                            return Err(WalError::Corruption {
                                segment: file.path.clone(),
                                offset: cursor.pos as u64,
                                reason: format!(
                                    "torn tail of {garbage_bytes} bytes (AbsoluteConsistency)"
                                ),
                            });
                        }
                        self.cut(file, cursor.pos as u64, opts)?;
                        out.bytes_cut = garbage_bytes;
                        tracing::warn!(segment = %file.path.display(), offset = cursor.pos, garbage_bytes, "cut torn tail");
                    }
                    if let Some(frames_crc) = tail_crc {
                        let frames_end = cursor.pos as u64;
                        let (seg, offset) =
                            self.rebuild_last_segment(file, frames_end, frames_crc, opts)?;
                        out.tail_segment = Some(seg);
                        out.tail_offset = offset;
                    }
                }
                Err((err, salvage_at)) => {
                    if opts.policy != RecoveryPolicy::SkipToLastGood
                        || salvage_at == Salvage::Refuse
                    {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "salvaging: cutting the log at the first damage");
                    // Keep this segment up to the damage (or drop it if its header is bad),
                    // drop every later segment.
                    let first_removed = match salvage_at {
                        Salvage::Refuse => return Err(err),
                        Salvage::CutAt(pos, next_lsn) => {
                            self.cut(file, pos, opts)?;
                            out.tail_segment = Some(file.clone());
                            out.tail_offset = pos;
                            out.next_lsn = Lsn(next_lsn);
                            i + 1
                        }
                        Salvage::DropSegment => {
                            if let Some(prev) = out.tail_segment.clone() {
                                self.cut(&prev, out.tail_offset, opts)?;
                            } else {
                                // No record survives; the log goes on where it began (its
                                // first segment's name), not at LSN 1, so a truncated log
                                // never gives out LSNs below its checkpoint.
                                out.next_lsn = Lsn(file.first_lsn);
                            }
                            i
                        }
                    };
                    for later in &segments[first_removed..] {
                        storage
                            .remove(&later.path)
                            .map_err(|e| WalError::io("remove", &later.path, e))?;
                        out.removed.push(later.path.clone());
                    }
                    self.sync()?;
                    out.salvaged_from = Some(err);
                    break;
                }
            }
        }
        // Completing an intent wrote both copies whole; else damaged, stale or missing
        // copies are written back here (and nothing is written when nothing changed).
        let repair = !read.is_whole() && !finished;
        // The slot's value is the newest among META's and the log's slot frames; a replace
        // made from here on (a repair, a salvage) carries it into the file.
        let newer_frame = out
            .slot_frame
            .clone()
            .filter(|(g, _)| *g > self.meta().current().map_or(0, |m| m.slot_gen));
        if let Some((generation, bytes)) = &newer_frame {
            self.meta().slot_frame_durable(*generation, bytes);
        }
        self.meta().set_log_scanned();
        self.settle_meta(found_meta, repair, opts, &mut out)?;
        if let Some((_, bytes)) = newer_frame {
            out.meta = Some(bytes);
        }
        // Nothing at or past where the log goes on is readable (a salvage cut it away), and
        // nothing below its persisted start (the checkpoint).
        out.index.cut(out.next_lsn.0);
        let first = out.first_lsn.map_or(out.next_lsn.0, |l| l.0);
        out.index
            .set_first_lsn(first.max(out.start_lsn.0).min(out.next_lsn.0));
        out.index.set_durable_end(out.next_lsn.0);
        out.segments = self.list()?.0.len();
        // Only now, with nothing left to refuse the log: a refused open keeps the marker
        // (the page cache may still hold bytes the disk never got).
        if poisoned_before && self.poison_marker() {
            self.clear_poison_marker()?;
        }
        if out.records > 0 {
            out.last_lsn = Some(Lsn(out.next_lsn.0 - 1));
        }
        tracing::debug!(records = out.records, next_lsn = %out.next_lsn, bytes_cut = out.bytes_cut, "recovery scanned the log");
        Ok(out)
    }

    /// Scans one segment. On damage returns the error and what salvage may do with it
    /// ([`Salvage`]: if the header was good, cut after the last good frame). With `want_tail`, for the
    /// last segment, also the CRC of its frames (header excluded) as they were read, for
    /// [`Self::rebuild_last_segment`].
    #[allow(clippy::type_complexity)]
    fn scan_one(
        &self,
        file: &SegmentFile,
        limit: Option<NextSegment>,
        expected: Option<u64>,
        opts: &RecoveryOptions,
        out: &mut RecoveryOutcome,
        want_tail: bool,
    ) -> Result<(SegmentCursor, u64, Option<u32>), (WalError, Salvage)> {
        if let Some(expected) = expected {
            if file.first_lsn != expected {
                let err = WalError::Corruption {
                    segment: file.path.clone(),
                    offset: 0,
                    reason: format!(
                        "segment starts at LSN {} but the log continues at {expected}",
                        file.first_lsn
                    ),
                };
                return Err((err, Salvage::DropSegment));
            }
        }
        let mut seg = SegmentData::load(self.storage().as_ref(), file)
            .map_err(|e| (e, Salvage::DropSegment))?;
        let mut frames_crc = (limit.is_none() && want_tail).then(crc32fast::Hasher::new);
        let mut cursor = SegmentCursor::new(file.first_lsn, limit, opts.max_record_bytes);
        loop {
            // Where salvage can cut: after the last good frame, for damage. A read that
            // fails is treated as a failed load was before reads moved into the walk.
            let salvage = |c: &SegmentCursor, e: WalError| {
                let at = match (c.past_max_lsn, e.is_corruption()) {
                    (true, _) => Salvage::Refuse,
                    (false, true) => Salvage::CutAt(c.pos as u64, c.next_lsn),
                    (false, false) => Salvage::DropSegment,
                };
                (e, at)
            };
            match cursor.next_frame(&mut seg) {
                Ok(Some(frame)) => {
                    let h = frame.header;
                    if h.kind == crate::format::FrameKind::Slot {
                        let payload = seg.payload(&frame).map_err(|e| salvage(&cursor, e))?;
                        out.saw_slot(payload).map_err(|reason| {
                            let err = WalError::Corruption {
                                segment: file.path.clone(),
                                offset: frame.offset as u64,
                                reason,
                            };
                            salvage(&cursor, err)
                        })?;
                    } else {
                        out.saw_frame(h.lsn, h.count);
                    }
                    out.index.note_frame(
                        file.first_lsn,
                        h.lsn,
                        u64::from(h.count),
                        frame.offset as u64,
                        h.frame_bytes() as u64,
                    );
                    if let Some(h) = frames_crc.as_mut() {
                        // Still in the window: this reads nothing.
                        let bytes = seg
                            .bytes(frame.offset as u64, frame.header.frame_bytes())
                            .map_err(|e| salvage(&cursor, e))?;
                        h.update(bytes);
                    }
                }
                Ok(None) => {
                    let tail = frames_crc.map(crc32fast::Hasher::finalize);
                    return Ok((cursor, seg.size_bytes(), tail));
                }
                Err(e) => return Err(salvage(&cursor, e)),
            }
        }
    }

    /// Rebuilds the last segment of a log poisoned by failed fsyncs (reopened in the same
    /// boot) from the frames just read, under a temporary name, fsynced, renamed over the
    /// old file, the directory fsynced; then removes the marker. After a failed fsync
    /// Linux marks the pages clean and may never write them, so what was just read may
    /// differ from the disk both ways: bytes only the page cache holds (a batch whose
    /// fsync failed), and bytes only the disk holds (a cut whose fsync failed). Appends
    /// acknowledged after either would sit behind a hole, or beside a record that comes
    /// back, after a power cut. The rebuilt file makes the disk hold exactly what was read,
    /// and the atomic rename means a crash meanwhile leaves the old file whole.
    pub(super) fn rebuild_last_segment(
        &self,
        file: &SegmentFile,
        frames_end: u64,
        frames_crc: u32,
        opts: &RecoveryOptions,
    ) -> Result<(SegmentFile, u64), WalError> {
        let header = crate::format::SEGMENT_HEADER_BYTES as u64;
        let size = opts.preallocate_bytes.max(frames_end);
        // A rewrite segment stays one: the segment before it still holds the abandoned
        // frames it replaces, which only its REWRITE flag lets a reader skip.
        let flags = read_header(self.storage().as_ref(), file)?.flags;
        // The frames are copied a window at a time; the CRC of what is copied must be the
        // CRC of what was read, or the page cache changed in between (pages whose writeback
        // failed were evicted): then nothing is renamed and the open fails, to be retried.
        let mut src = SegmentData::load(self.storage().as_ref(), file)?;
        let mut copy = |dst: &dyn crate::storage::StorageFile, tmp: &std::path::Path| {
            let mut crc = crc32fast::Hasher::new();
            let mut offset = header;
            while offset < frames_end {
                let n = (frames_end - offset).min(super::scan::READ_WINDOW_BYTES as u64);
                let bytes = src.bytes(offset, n as usize)?;
                crc.update(bytes);
                dst.write_all_at(bytes, offset)
                    .map_err(|e| WalError::io("write", tmp, e))?;
                offset += n;
            }
            if crc.finalize() != frames_crc {
                return Err(WalError::Corruption {
                    segment: file.path.clone(),
                    offset: header,
                    reason:
                        "frames changed between reading and copying them into the rebuilt segment"
                            .into(),
                });
            }
            Ok(())
        };
        let (seg, _) = create_segment_with(
            self.storage().as_ref(),
            self.path(),
            file.first_lsn,
            size,
            opts.preallocate_bytes > 0,
            flags,
            &mut copy,
        )?;
        self.clear_poison_marker()?;
        tracing::warn!(
            first_lsn = file.first_lsn,
            bytes = frames_end - header,
            "log was poisoned: rebuilt its last segment from what was read"
        );
        Ok((seg, frames_end))
    }

    /// Cuts a segment at `offset`: everything after it reads as zeros, durably.
    fn cut(&self, file: &SegmentFile, offset: u64, opts: &RecoveryOptions) -> Result<(), WalError> {
        let f = self
            .storage()
            .open(&file.path, true)
            .map_err(|e| WalError::io("open", &file.path, e))?;
        f.set_len(offset)
            .map_err(|e| WalError::io("truncate", &file.path, e))?;
        if opts.preallocate_bytes > offset {
            f.allocate(opts.preallocate_bytes)
                .map_err(|e| WalError::io("fallocate", &file.path, e))?;
        }
        f.sync_all()
            .map_err(|e| WalError::io("fsync", &file.path, e))
    }
}

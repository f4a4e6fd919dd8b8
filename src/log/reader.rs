//! `LogReader`: iterates the records of a log in LSN order across its segments.
//!
//! It reads one segment at a time through a window of `scan::READ_WINDOW_BYTES` (or one
//! frame, if larger), never a whole segment; yields every intact record, ends cleanly at a
//! torn tail of the last segment, and yields an `Err` naming segment and offset for any
//! damage before it. After an `Err` it yields nothing.
//!
//! It reads the log as recovery will leave it (`log/recovery_plan.rs`, read-only): a written
//! spare that recovery adopts (a rollover's rename lost in a crash) is read as the last
//! segment, under its spare name; a rewind or reset a crash left unfinished in `META` is
//! read as done (nothing past the rewind's LSN, nothing at all after a reset, and a log
//! whose reset removed every segment reads as empty, not as no log). A log that breaks
//! `META`'s promises, which recovery refuses, is corruption here too (at open: `META`
//! lost, the first segment above the first LSN; at the end of the scan: a lost newest
//! segment, a log ending below its first LSN). So an application that rebuilds its state
//! with a `LogReader` before it opens the log, or an operator reading `walctl`, sees the
//! records `Wal::open` will hold, and no log `Wal::open` will refuse reads as sound.
//!
//! [`LogReader::open_from`] starts at an LSN: it picks the segment by name (the last whose
//! first LSN is at or below it) and skips the frames below it inside that segment.
//!
//! # Beside a live writer
//!
//! A `LogReader` takes no lock, so it can read a log a [`Wal`](crate::Wal) is writing (in
//! this process or another). What it yields then is a **prefix** of the log, in LSN order
//! with no gap, and every record it yields passed its frame's CRC: a frame the writer is
//! still writing is never yielded as data, and it is never reported as damage either: the
//! reader ends there cleanly, as at a torn tail ([`LogReader::tail_end`] may say
//! `TornTail`). Damage followed by a whole frame of a later write batch is read again from
//! the file once before it is called corruption, because the reader may have held the
//! first bytes from before the writer finished that batch (the writer starts a batch only
//! once the one before it is whole and fsynced).
//!
//! What the prefix holds, honestly:
//! - The segments are listed at open: segments created later are not read, so the prefix
//!   ends at most where the last listed segment ends. A spare the writer is filling
//!   (header written, rename to come) reads as the last segment when its header continues
//!   the log, exactly as recovery would adopt it; renamed meanwhile, it is read under its
//!   new name.
//! - It is a prefix of the log *as written to the file system*, which runs ahead of the
//!   durable log by the batch being fsynced (and by `Buffered` appends not yet flushed).
//!   Those records become durable when that fsync succeeds. If a write fails, the log
//!   cuts the batch back and gives its LSNs out again, so a reader that read the batch
//!   in that moment may have yielded records that are then not in the log. After a failed
//!   fsync the batch is written again, byte for byte, into a fresh segment.
//! - It can end with an error beside a live writer when a checkpoint
//!   (`truncate_before`) removed a segment it listed but had not opened yet (an I/O error,
//!   not found), when a failed write cut the segment it reads back below the size it saw
//!   at open (an I/O error, unexpected end of file), and on real damage.

use super::recovery_plan::{kept_by_intent, Adoption, MetaBreach, RecoveryPlan};
use super::scan::{NextSegment, SegmentCursor, SegmentData, SegmentEnd};
use super::segment::SegmentFile;
use crate::error::WalError;
use crate::format::compress::frame_payload;
use crate::format::frame::split_transaction;
use crate::format::meta::MetaIntent;
use crate::format::FrameKind;
use crate::lsn::Lsn;
use crate::storage::{default_storage, SharedStorage};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Default bound on a frame's payload, used when no config says otherwise.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 4 * 1024 * 1024;

/// Where a record sits in its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnPosition {
    /// Index of this record in the transaction, from 0.
    pub index: u16,
    /// Number of records in the transaction.
    pub count: u16,
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's LSN.
    pub lsn: Lsn,
    /// The bytes appended.
    pub payload: Vec<u8>,
    /// First LSN of the segment holding it.
    pub segment_first_lsn: Lsn,
    /// Offset of its frame in that segment.
    pub frame_offset: u64,
    /// The CRC32 stored in its frame.
    pub frame_crc: u32,
    /// Set when the record was appended as part of a transaction.
    pub txn: Option<TxnPosition>,
}

impl Record {
    /// Decodes the payload as a `T` written by `Append::encode` or `Commit::encode` (the
    /// [codec](crate::format::codec): bincode 2, standard configuration).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, WalError> {
        crate::format::codec::decode(&self.payload)
    }
}

/// Iterates `Result<Record, WalError>` over a log directory in LSN order.
///
/// It reads as the calling process's user: a log is private to the user that wrote it
/// (files 0600 in a 0700 directory; 0640 and 0750 with
/// [`WalConfig::group_read`](crate::WalConfig::group_read)), so another user gets
/// [`WalError::PermissionDenied`].
#[derive(Debug)]
pub struct LogReader {
    storage: SharedStorage,
    segments: Vec<SegmentFile>,
    next_segment: usize,
    current: Option<(SegmentData, SegmentCursor)>,
    pending: VecDeque<Record>,
    expected_lsn: Option<u64>,
    /// Records below this LSN are skipped (`open_from`); 0 reads everything.
    from_lsn: u64,
    max_record_bytes: u64,
    done: bool,
    tail_end: Option<SegmentEnd>,
    /// The log's first LSN from its `META` (0 without one): records below it are skipped.
    start_lsn: u64,
    /// Records at or past this LSN are not yielded: a rewind or reset a crash left
    /// unfinished in `META` removes them (`u64::MAX` when there is none).
    end_lsn: u64,
    /// That rewind or reset.
    intent: MetaIntent,
    /// A written spare read as the last segment (recovery adopts it).
    adoption: Option<Adoption>,
    /// Whether the directory holds a log (segments or `META`); false for a first start.
    found_log: bool,
    /// The slot frame of highest generation read so far (generation, bytes), before the
    /// end a rewind left unfinished: see [`LogReader::slot_frame`].
    newest_slot: Option<(u64, Vec<u8>)>,
    /// The directory and recovery's plan as read at open, for the checks of `META`'s
    /// promises once the scan ends (taken then).
    plan: Option<(PathBuf, RecoveryPlan)>,
    /// Each segment read to its end: (its first LSN, the offset after its last whole
    /// frame), in order ([`LogReader::frames_end`]).
    frames_ends: Vec<(u64, u64)>,
}

impl LogReader {
    /// Opens the log in `dir` on the real file system. A missing directory, or one with
    /// neither segments nor `META` (a log not yet written: a first start), reads as an
    /// empty log ([`LogReader::found_log`] tells it apart). A path that is not a directory
    /// is [`WalError::NotADirectory`]; a `META` whose segments are gone is
    /// [`WalError::NoLog`]. Otherwise the log reads as recovery will leave it
    /// (a written spare it adopts, an unfinished rewind or reset completed), read-only.
    pub fn open(dir: impl AsRef<Path>) -> Result<LogReader, WalError> {
        LogReader::open_with(dir, default_storage(), DEFAULT_MAX_RECORD_BYTES)
    }

    /// Opens a log through the given storage with a bound on frame payloads.
    pub fn open_with(
        dir: impl AsRef<Path>,
        storage: SharedStorage,
        max_record_bytes: u64,
    ) -> Result<LogReader, WalError> {
        LogReader::open_from_with(dir, Lsn(0), storage, max_record_bytes)
    }

    /// Opens the log in `dir` on the real file system, to read the records from `lsn` on.
    ///
    /// The segment is found by name (the last whose first LSN is at or below `lsn`); inside
    /// it the frames below `lsn` are read (their CRCs checked) but not yielded. A
    /// transaction holding `lsn` yields its records from `lsn` on, each with its
    /// [`TxnPosition`] in the whole transaction. An `lsn` below the log's first record
    /// reads from the start; one past its end yields nothing (damage on the way is still
    /// reported). Errors at open as [`LogReader::open`].
    ///
    /// This is replay without an actor: an iterator of the records from a given LSN, for a
    /// closed log or beside a live writer (see the `log::reader` module docs for what holds then).
    pub fn open_from(dir: impl AsRef<Path>, lsn: Lsn) -> Result<LogReader, WalError> {
        LogReader::open_from_with(dir, lsn, default_storage(), DEFAULT_MAX_RECORD_BYTES)
    }

    /// [`LogReader::open_from`] through the given storage with a bound on frame payloads.
    pub fn open_from_with(
        dir: impl AsRef<Path>,
        lsn: Lsn,
        storage: SharedStorage,
        max_record_bytes: u64,
    ) -> Result<LogReader, WalError> {
        let dir = dir.as_ref();
        // The log as recovery will leave it: a written spare it adopts is read (under its
        // spare name), an unfinished rewind or reset is as good as done. A first start (no
        // directory yet, or one with neither a segment nor `META`) is an empty log.
        let plan = match RecoveryPlan::read(storage.as_ref(), dir, max_record_bytes) {
            Err(WalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                None
            }
            read => Some(read?).filter(RecoveryPlan::is_log),
        };
        let Some(plan) = plan else {
            return Ok(LogReader::empty(storage, lsn.0, max_record_bytes));
        };
        let segments = plan.segments();
        let intent = plan.intent();
        // A `META` without segments is a log whose segments are gone, unless a reset a
        // crash interrupted removed them (recovery then completes it: an empty log).
        if segments.is_empty() && !matches!(intent, MetaIntent::Reset(_)) {
            return Err(WalError::NoLog {
                path: dir.to_path_buf(),
            });
        }
        // What recovery refuses before it scans, the reader refuses at open: a log whose
        // `META` is lost, or whose first segment starts above its first LSN.
        let corrupt = |reason: String| WalError::Corruption {
            segment: dir.join(super::meta::META_FILE),
            offset: 0,
            reason,
        };
        if let Some(reason) = plan.lost_meta(storage.as_ref()) {
            return Err(corrupt(reason));
        }
        if let Some(reason) = plan.meta_conflict() {
            return Err(corrupt(reason));
        }
        if let Some(b @ MetaBreach::FirstSegmentAbove { .. }) = plan.breach_at_end(u64::MAX) {
            return Err(corrupt(b.reason()));
        }
        // Segment `i` holds the LSNs from its name up to the next segment's: the one to
        // start in is the last whose first LSN is at or below `lsn` (the first if none is).
        let start = segments
            .partition_point(|s| s.first_lsn <= lsn.0)
            .saturating_sub(1);
        Ok(LogReader {
            segments,
            next_segment: start,
            done: false,
            start_lsn: plan.start_lsn(),
            end_lsn: plan.end_lsn(),
            intent,
            adoption: plan
                .adoption
                .clone()
                .filter(|a| kept_by_intent(intent, &a.segment)),
            found_log: true,
            newest_slot: None,
            plan: Some((dir.to_path_buf(), plan)),
            ..LogReader::empty(storage, lsn.0, max_record_bytes)
        })
    }

    /// A reader of an empty log: a first start, where the directory holds no log yet.
    fn empty(storage: SharedStorage, from_lsn: u64, max_record_bytes: u64) -> LogReader {
        LogReader {
            storage,
            segments: Vec::new(),
            next_segment: 0,
            current: None,
            pending: VecDeque::new(),
            expected_lsn: None,
            from_lsn,
            max_record_bytes,
            done: true,
            tail_end: None,
            start_lsn: 0,
            end_lsn: u64::MAX,
            intent: MetaIntent::None,
            adoption: None,
            found_log: false,
            newest_slot: None,
            plan: None,
            frames_ends: Vec::new(),
        }
    }

    /// Where the frames of the segment starting at `segment_first_lsn` end on disk (the
    /// offset after its last whole frame: records, transactions, slot frames, compressed
    /// or not), once this reader has read that segment to its end; `None` before.
    pub fn frames_end(&self, segment_first_lsn: Lsn) -> Option<u64> {
        self.frames_ends
            .iter()
            .find(|&&(first, _)| first == segment_first_lsn.0)
            .map(|&(_, end)| end)
    }

    /// Whether the directory holds a log (segments or `META`). False when it is missing or
    /// holds neither (a first start: the reader then reads nothing); walctl uses it to say
    /// there is no log where it was asked to look.
    pub fn found_log(&self) -> bool {
        self.found_log
    }

    /// The segment files of the log, in LSN order (an adopted spare under its spare name).
    pub fn segments(&self) -> impl Iterator<Item = &PathBuf> {
        self.segments.iter().map(|s| &s.path)
    }

    /// The segments of the log, in LSN order, with their first LSNs: the log as recovery
    /// will leave it (recovery's plan), each where it can be read now.
    pub fn segment_files(&self) -> &[SegmentFile] {
        &self.segments
    }

    /// The written spare this reader reads as the last segment, because recovery will
    /// adopt it (its rename was lost in a crash; docs/format.md, "Recovery adopts a
    /// written spare").
    pub fn adopted_spare(&self) -> Option<&Adoption> {
        self.adoption.as_ref()
    }

    /// The rewind or reset a crash left unfinished in `META`, which this reader reads as
    /// done (as recovery will complete it): [`MetaIntent::None`] when there is none.
    pub fn pending_intent(&self) -> MetaIntent {
        self.intent
    }

    /// How the last segment ended, once the iteration has reached it
    /// (a torn tail shows here; the iteration itself ends cleanly).
    pub fn tail_end(&self) -> Option<SegmentEnd> {
        self.tail_end
    }

    fn open_next_segment(&mut self) -> Result<bool, WalError> {
        let Some(file) = self.segments.get(self.next_segment).cloned() else {
            return Ok(false);
        };
        let limit = NextSegment::after(self.storage.as_ref(), &self.segments, self.next_segment);
        self.next_segment += 1;
        if let Some(expected) = self.expected_lsn {
            if file.first_lsn != expected {
                return Err(WalError::Corruption {
                    segment: file.path.clone(),
                    offset: 0,
                    reason: format!(
                        "segment starts at LSN {} but the log continues at {expected}",
                        file.first_lsn
                    ),
                });
            }
        }
        let data = match SegmentData::load(self.storage.as_ref(), &file) {
            // A spare read as the last segment, renamed to its segment name since it was
            // listed (a live writer's rollover, or a recovery adopting it): read it there.
            Err(WalError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && self.adoption.as_ref().is_some_and(|a| a.spare == file.path) =>
            {
                let named = self.adoption.as_ref().map(|a| a.segment.clone());
                SegmentData::load(
                    self.storage.as_ref(),
                    &named.unwrap_or_else(|| file.clone()),
                )?
            }
            other => other?,
        };
        let cursor = SegmentCursor::new(file.first_lsn, limit, self.max_record_bytes);
        self.current = Some((data, cursor));
        Ok(true)
    }

    fn fill(&mut self) -> Result<bool, WalError> {
        loop {
            if self.current.is_none() && !self.open_next_segment()? {
                return Ok(false);
            }
            let Some((seg, cursor)) = self.current.as_mut() else {
                return Ok(false);
            };
            match cursor.next_frame(seg)? {
                Some(frame) => {
                    let h = frame.header;
                    if h.kind == FrameKind::Slot {
                        self.note_slot(&frame)?;
                        continue; // a slot value, no record
                    }
                    if h.lsn + u64::from(h.count) <= self.from_lsn {
                        continue; // wholly below the start: checked, not yielded
                    }
                    let base = Record {
                        lsn: Lsn(h.lsn),
                        payload: Vec::new(),
                        segment_first_lsn: Lsn(seg.file.first_lsn),
                        frame_offset: frame.offset as u64,
                        frame_crc: h.crc,
                        txn: None,
                    };
                    let payload =
                        match frame_payload(&h, seg.payload(&frame)?, self.max_record_bytes) {
                            Ok(p) => p,
                            Err(reason) => {
                                return Err(WalError::Corruption {
                                    segment: seg.file.path.clone(),
                                    offset: frame.offset as u64,
                                    reason,
                                })
                            }
                        };
                    match h.kind {
                        FrameKind::Record => self.pending.push_back(Record {
                            payload: payload.into_owned(),
                            ..base
                        }),
                        FrameKind::Slot => {} // taken above
                        FrameKind::Transaction => {
                            let Some(parts) = split_transaction(&payload, h.count) else {
                                return Err(WalError::Corruption {
                                    segment: seg.file.path.clone(),
                                    offset: frame.offset as u64,
                                    reason: "transaction entries do not fill the frame".into(),
                                });
                            };
                            for (i, part) in parts.into_iter().enumerate() {
                                if h.lsn + (i as u64) < self.from_lsn {
                                    continue;
                                }
                                self.pending.push_back(Record {
                                    lsn: Lsn(h.lsn + i as u64),
                                    payload: part.to_vec(),
                                    txn: Some(TxnPosition {
                                        index: i as u16,
                                        count: h.count,
                                    }),
                                    ..base.clone()
                                });
                            }
                        }
                    }
                    return Ok(true);
                }
                None => {
                    self.expected_lsn = Some(cursor.next_lsn);
                    self.tail_end = cursor.end;
                    self.frames_ends
                        .push((seg.file.first_lsn, cursor.pos as u64));
                    self.current = None;
                }
            }
        }
    }
}

impl LogReader {
    /// Keeps a slot frame's value if it is the newest so far (and lies before the end an
    /// unfinished rewind leaves: that rewind's `META` already holds the slot).
    fn note_slot(&mut self, frame: &super::scan::FrameAt) -> Result<(), WalError> {
        let Some((seg, _)) = self.current.as_mut() else {
            return Ok(());
        };
        if frame.header.lsn >= self.end_lsn {
            return Ok(());
        }
        let payload = seg.payload(frame)?;
        crate::format::slot_frame::keep_newest(&mut self.newest_slot, payload).map_err(|reason| {
            WalError::Corruption {
                segment: seg.file.path.clone(),
                offset: frame.offset as u64,
                reason,
            }
        })
    }

    /// The metadata slot's value of highest generation among the slot frames read so
    /// far (`Wal::set_meta` writes them into the log): `(generation, bytes)`. The slot's
    /// value is this one when its generation is above `META`'s `slot_gen`, else `META`'s.
    /// Complete once the reader has reached the end of the log.
    pub fn slot_frame(&self) -> Option<(u64, &[u8])> {
        self.newest_slot.as_ref().map(|(g, b)| (*g, b.as_slice()))
    }
}

impl Record {
    /// LSN of the last record of this record's frame: itself, or its transaction's last.
    pub fn frame_last_lsn(&self) -> u64 {
        match self.txn {
            Some(t) => self.lsn.0 - u64::from(t.index) + u64::from(t.count) - 1,
            None => self.lsn.0,
        }
    }
}

impl LogReader {
    /// The log's first LSN as its `META` file gives it (0 for a log without one): no
    /// record below it is returned.
    pub fn start_lsn(&self) -> Lsn {
        Lsn(self.start_lsn)
    }

    /// The next record, below the log's first LSN or not.
    fn next_any(&mut self) -> Option<Result<Record, WalError>> {
        if let Some(r) = self.pending.pop_front() {
            return Some(Ok(r));
        }
        if self.done {
            return None;
        }
        match self.fill() {
            Ok(true) => self.pending.pop_front().map(Ok),
            Ok(false) => {
                self.done = true;
                self.breach_at_end().map(Err)
            }
            Err(e) => {
                self.done = true;
                self.current = None;
                Some(Err(e))
            }
        }
    }
}

impl LogReader {
    /// Once the scan ended cleanly: a promise of `META` the log breaks (a lost newest
    /// segment, a log ending below its first LSN), as the corruption recovery would refuse
    /// it with. Beside a live writer the log may have moved on since it was listed (a
    /// segment created, `META` raised): the plan is read again, and if anything changed,
    /// what was read is a prefix of a live log, not a loss.
    fn breach_at_end(&mut self) -> Option<WalError> {
        let (dir, plan) = self.plan.take()?;
        let last = self.segments.last().map_or(0, |s| s.first_lsn);
        let next = self.expected_lsn.unwrap_or(last);
        let breach = plan.breach_at_end(next)?;
        let again = RecoveryPlan::read(self.storage.as_ref(), &dir, self.max_record_bytes).ok()?;
        if again.segments() != plan.segments() || again.meta != plan.meta {
            return None;
        }
        Some(WalError::Corruption {
            segment: dir.join(super::meta::META_FILE),
            offset: 0,
            reason: breach.reason(),
        })
    }
}

impl Iterator for LogReader {
    type Item = Result<Record, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_any()? {
                Ok(r) if r.lsn.0 >= self.end_lsn => {
                    self.done = true;
                    self.pending.clear();
                    return None;
                }
                Ok(r) if r.frame_last_lsn() < self.start_lsn => continue,
                other => return Some(other),
            }
        }
    }
}

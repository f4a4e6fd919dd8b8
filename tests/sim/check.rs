//! What must hold after a crash, checked on a recovered log: the records read back, and
//! the checks of them against the oracle (`oracle.rs`), each reported as a [`Violation`];
//! recovery as the log runs it, and the byte ranges a flipped bit must be reported in.

use super::oracle::{Attempt, Event, Tag};
use super::SimStorage;
use actix_wal::{LogOptions, LogReader, RecoveryOutcome, SharedStorage, WalError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// Its LSN.
    pub lsn: u64,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Position in its transaction frame, if it has one.
    pub txn: Option<(u16, u16)>,
    /// First LSN of the segment holding it.
    pub segment: u64,
    /// Offset of its frame in the segment.
    pub frame_offset: u64,
}

/// A broken promise.
#[derive(Debug, Clone)]
pub enum Violation {
    /// Recovery refused a state a power cut can produce.
    RecoveryFailed(String),
    /// The reader refused the log recovery accepted.
    ReadFailed(String),
    /// LSNs are not contiguous.
    Gap { after: u64, found: u64 },
    /// A record whose bytes are not what was appended.
    Altered { lsn: u64 },
    /// An entry present twice.
    Duplicate { tag: Tag },
    /// A record nobody submitted (before the crash).
    Phantom { tag: Tag },
    /// A record whose append definitely failed.
    Ghost { tag: Tag },
    /// A transaction partly present, or not in one frame.
    TxnSplit { attempt: Attempt },
    /// An acknowledged (or earlier recovered) record missing.
    LostAck { lsn: u64 },
    /// An acknowledged record present with another payload.
    WrongPayload { lsn: u64 },
    /// Recovering again (or after a crash during recovery) gave other records.
    NotIdempotent(String),
    /// A bit flipped before the last write batch was not reported.
    FlipMissed(String),
    /// A record below a checkpoint that was acknowledged came back.
    BelowCheckpoint { lsn: u64 },
    /// `LogReader` on the crash image, before recovery, read other records than the log
    /// recovery opened (issue 20, item 7: offline readers see the log as recovery will).
    ReaderDisagrees(String),
    /// The metadata slot recovered is older than the last value `set_meta` acknowledged,
    /// or one never sent (issue 23: slot values as slot frames).
    StaleSlot(String),
}

impl Violation {
    /// The violation's name, as teeth tests match it.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::RecoveryFailed(_) => "recovery-failed",
            Violation::ReadFailed(_) => "read-failed",
            Violation::Gap { .. } => "gap",
            Violation::Altered { .. } => "altered",
            Violation::Duplicate { .. } => "duplicate",
            Violation::Phantom { .. } => "phantom",
            Violation::Ghost { .. } => "ghost",
            Violation::TxnSplit { .. } => "txn-split",
            Violation::LostAck { .. } => "lost-ack",
            Violation::WrongPayload { .. } => "wrong-payload",
            Violation::NotIdempotent(_) => "not-idempotent",
            Violation::FlipMissed(_) => "flip-missed",
            Violation::BelowCheckpoint { .. } => "below-checkpoint",
            Violation::ReaderDisagrees(_) => "reader-disagrees",
            Violation::StaleSlot(_) => "stale-slot",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {self:?}", self.kind())
    }
}

/// Runs recovery (as `Wal::open` and `LogWriter::open` do) and releases the directory.
pub fn recover(
    storage: &SharedStorage,
    dir: &Path,
    opts: &LogOptions,
) -> Result<RecoveryOutcome, WalError> {
    let opts = LogOptions {
        storage: storage.clone(),
        ..opts.clone()
    };
    // The writer is dropped unused: no batch, so nothing more is written.
    let (_writer, outcome) = actix_wal::LogWriter::open(dir, opts)?;
    Ok(outcome)
}

/// Reads every record of the log (an empty list for a directory with no log).
pub fn read_log(
    storage: &SharedStorage,
    dir: &Path,
    max_record_bytes: u64,
) -> Result<Vec<Rec>, WalError> {
    let reader = match LogReader::open_with(dir, storage.clone(), max_record_bytes) {
        Ok(r) => r,
        Err(WalError::NoLog { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    reader
        .map(|r| {
            r.map(|r| Rec {
                lsn: r.lsn.0,
                payload: r.payload,
                txn: r.txn.map(|t| (t.index, t.count)),
                segment: r.segment_first_lsn.0,
                frame_offset: r.frame_offset,
            })
        })
        .collect()
}

/// What must hold of a recovered log.
#[derive(Debug, Default)]
pub struct Expect<'a> {
    /// Records that were on disk at the start of this generation (recovered from the
    /// previous crash): present at their LSNs unless truncated away.
    pub required: &'a [Rec],
    /// The workload's events up to the crash.
    pub events: &'a [Event],
}

/// Checks a recovered log's records against what must hold.
pub fn verify(recs: &[Rec], expect: &Expect<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in recs.windows(2) {
        if w[1].lsn != w[0].lsn + 1 {
            out.push(Violation::Gap {
                after: w[0].lsn,
                found: w[1].lsn,
            });
        }
    }
    let mut submitted: HashMap<Attempt, u32> = HashMap::new();
    let mut failed: HashMap<Attempt, u32> = HashMap::new();
    let mut known: HashSet<Tag> = HashSet::new();
    let mut must: BTreeMap<u64, &[u8]> = BTreeMap::new();
    let mut floor = 0u64;
    let mut checkpoint = 0u64;
    // The named cursor (issue 22): the lowest position known durable (it only rises), the
    // highest it may have on disk, and the known one when each truncation was asked.
    let mut cursor_known: Option<u64> = None;
    let mut cursor_hi: Option<u64> = None;
    let mut cursor_at_truncate: HashMap<u64, Option<u64>> = HashMap::new();
    let earlier: HashSet<u64> = expect.required.iter().map(|r| r.lsn).collect();
    for r in expect.required {
        must.insert(r.lsn, &r.payload);
    }
    for e in expect.events {
        match e {
            Event::Submitted(tags) => {
                if let Some(t) = tags.first() {
                    *submitted.entry(t.attempt()).or_default() += 1;
                }
                known.extend(tags.iter().copied());
            }
            Event::Failed(tags) => {
                if let Some(t) = tags.first() {
                    *failed.entry(t.attempt()).or_default() += 1;
                }
            }
            Event::Acked { lsn, payloads } => {
                for (i, p) in payloads.iter().enumerate() {
                    must.insert(lsn + i as u64, p);
                }
            }
            Event::Truncate(lsn) => {
                floor = floor.max(*lsn);
                let known = cursor_at_truncate.entry(*lsn).or_insert(cursor_known);
                *known = (*known).min(cursor_known);
            }
            Event::Checkpointed(lsn) => {
                // A cursor below the checkpoint keeps its records readable: the log's
                // first LSN is then at least the lower of the two.
                let held = cursor_at_truncate.get(lsn).copied().flatten();
                checkpoint = checkpoint.max(held.map_or(*lsn, |c| c.min(*lsn)));
            }
            Event::CursorAt(lsn) => {
                cursor_known = Some(cursor_known.map_or(*lsn, |c| c.max(*lsn)));
                cursor_hi = Some(cursor_hi.map_or(*lsn, |c| c.max(*lsn)));
            }
            Event::CursorAdvance(lsn) => {
                cursor_hi = Some(cursor_hi.map_or(*lsn, |c| c.max(*lsn)));
            }
            Event::MetaSet(_) | Event::MetaAcked(_) => {} // `verify_slot`
        }
    }
    // Every record: intact, known, once; transactions whole.
    let mut seen: HashSet<Tag> = HashSet::new();
    let mut groups: BTreeMap<Attempt, Vec<(u64, Tag)>> = BTreeMap::new();
    for r in recs {
        let Some(tag) = Tag::decode(&r.payload) else {
            out.push(Violation::Altered { lsn: r.lsn });
            continue;
        };
        if !seen.insert(tag) {
            out.push(Violation::Duplicate { tag });
        }
        let frame_last = r
            .txn
            .map_or(r.lsn, |(i, c)| r.lsn - u64::from(i) + u64::from(c) - 1);
        if frame_last < checkpoint {
            out.push(Violation::BelowCheckpoint { lsn: r.lsn });
        }
        if let Some((i, c)) = r.txn {
            if i != tag.idx || c != tag.count {
                out.push(Violation::TxnSplit {
                    attempt: tag.attempt(),
                });
            }
        }
        // Records of earlier generations were checked when they were recovered.
        if !earlier.contains(&r.lsn) && !known.contains(&tag) {
            out.push(Violation::Phantom { tag });
        }
        let (s, f) = (
            submitted.get(&tag.attempt()).copied().unwrap_or(0),
            failed.get(&tag.attempt()).copied().unwrap_or(0),
        );
        if s > 0 && f >= s {
            out.push(Violation::Ghost { tag });
        }
        groups.entry(tag.attempt()).or_default().push((r.lsn, tag));
    }
    for (attempt, entries) in &groups {
        let count = entries[0].1.count as usize;
        let whole = entries.len() == count
            && entries
                .iter()
                .enumerate()
                .all(|(i, (lsn, t))| t.idx as usize == i && *lsn == entries[0].0 + i as u64);
        // A duplicate shows as a group too large; reported above already.
        if !whole && entries.len() <= count {
            out.push(Violation::TxnSplit { attempt: *attempt });
        }
    }
    // Everything acknowledged (or recovered before) is there, with its payload: from the
    // highest truncation asked for, or from the highest position the cursor may have on
    // disk if lower (retention never removes what a cursor needs).
    let keep_from = match cursor_hi {
        Some(c) if floor > 0 => floor.min(c),
        _ => floor,
    };
    let first = recs.first().map_or(u64::MAX, |r| r.lsn);
    for (lsn, payload) in must.range(keep_from..) {
        let at = lsn.checked_sub(first).map(|i| i as usize);
        match at.and_then(|i| recs.get(i)) {
            None => out.push(Violation::LostAck { lsn: *lsn }),
            Some(r) if r.payload != *payload => out.push(Violation::WrongPayload { lsn: *lsn }),
            Some(_) => {}
        }
    }
    out
}

/// Every record acknowledged (or recovered before) at or above `from` is there with its
/// payload: what a named cursor that recovery found at `from` still needs (issue 22:
/// retention never removes it), whatever checkpoint was asked for.
pub fn verify_held(recs: &[Rec], expect: &Expect, from: u64) -> Vec<Violation> {
    let mut must: BTreeMap<u64, &[u8]> = BTreeMap::new();
    for r in expect.required {
        must.insert(r.lsn, &r.payload);
    }
    for e in expect.events {
        if let Event::Acked { lsn, payloads } = e {
            for (i, p) in payloads.iter().enumerate() {
                must.insert(lsn + i as u64, p);
            }
        }
    }
    let first = recs.first().map_or(u64::MAX, |r| r.lsn);
    let mut out = Vec::new();
    for (lsn, payload) in must.range(from..) {
        let at = lsn.checked_sub(first).map(|i| i as usize);
        match at.and_then(|i| recs.get(i)) {
            None => out.push(Violation::LostAck { lsn: *lsn }),
            Some(r) if r.payload != *payload => out.push(Violation::WrongPayload { lsn: *lsn }),
            Some(_) => {}
        }
    }
    out
}

/// The byte ranges `(segment path, start, end)` of the log that lie before its last
/// write batch: segment headers and the frames of every earlier batch. A flipped bit
/// there must be reported; in the last batch it reads as a torn write.
pub fn before_last_batch(sim: &SimStorage, dir: &Path, recs: &[Rec]) -> Vec<(String, u64, u64)> {
    let Some(last) = recs.last() else {
        return Vec::new();
    };
    let mut files: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for r in recs {
        files.entry(r.segment).or_insert_with(|| {
            sim.read_file(&dir.join(actix_wal::files::segment_name(r.segment)))
                .unwrap_or_default()
        });
    }
    let header = |seg: u64, off: u64| -> (u64, u64) {
        let d = &files[&seg];
        let o = off as usize;
        let len = u32::from_le_bytes([d[o + 4], d[o + 5], d[o + 6], d[o + 7]]) as u64;
        let lsn = u64::from_le_bytes(d[o + 8..o + 16].try_into().unwrap_or([0; 8]));
        let delta = u32::from_le_bytes([d[o + 16], d[o + 17], d[o + 18], d[o + 19]]) as u64;
        (24 + len, lsn - delta)
    };
    let last_batch = header(last.segment, last.frame_offset).1;
    let mut out: Vec<(String, u64, u64)> = files
        .keys()
        .map(|s| (actix_wal::files::segment_name(*s), 0, 32))
        .collect();
    let mut prev = None;
    for r in recs {
        if prev == Some((r.segment, r.frame_offset)) {
            continue; // another entry of the same transaction frame
        }
        prev = Some((r.segment, r.frame_offset));
        let (bytes, batch) = header(r.segment, r.frame_offset);
        if batch < last_batch {
            out.push((
                actix_wal::files::segment_name(r.segment),
                r.frame_offset,
                r.frame_offset + bytes,
            ));
        }
    }
    out
}

//! What must hold after a crash, checked on a recovered log: self-describing payloads, the
//! oracle (what the workload submitted, what was acknowledged, what definitely failed),
//! and the checks themselves, each reported as a [`Violation`].

use super::SimStorage;
use actix_wal::{LogOptions, LogReader, RecoveryOutcome, SharedStorage, WalError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Bytes of a payload's tag, before its body.
pub const TAG_BYTES: usize = 16;

/// Whether an entry was appended alone or as part of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A single durable or buffered append.
    Append = 0,
    /// An entry of a transaction (`Commit`).
    Commit = 1,
}

/// What a payload says about itself: who appended it and where it belongs. The body after
/// the tag is derived from it, so any altered byte is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// Append or transaction entry.
    pub kind: Kind,
    /// Generation of the workload (one per open of the log).
    pub gen: u16,
    /// Client within the generation.
    pub client: u16,
    /// Sequence number within the client.
    pub seq: u32,
    /// Index of the entry in its transaction (0 for an append).
    pub idx: u16,
    /// Entries in its transaction (1 for an append).
    pub count: u16,
}

/// One attempt's identity: every entry of a transaction shares it, and a retry too.
pub type Attempt = (u16, u16, u32);

impl Tag {
    /// The attempt this entry belongs to.
    pub fn attempt(&self) -> Attempt {
        (self.gen, self.client, self.seq)
    }

    fn key(&self) -> u64 {
        super::mix(
            (u64::from(self.gen) << 48) | (u64::from(self.client) << 32) | u64::from(self.seq),
            (u64::from(self.idx) << 16) | u64::from(self.count) | ((self.kind as u64) << 40),
        )
    }

    /// The payload: tag, then `body_bytes` bytes derived from it.
    pub fn payload(&self, body_bytes: usize) -> Vec<u8> {
        let mut p = Vec::with_capacity(TAG_BYTES + body_bytes);
        p.push(0xA7);
        p.push(self.kind as u8);
        p.extend_from_slice(&self.gen.to_le_bytes());
        p.extend_from_slice(&self.client.to_le_bytes());
        p.extend_from_slice(&self.seq.to_le_bytes());
        p.extend_from_slice(&self.idx.to_le_bytes());
        p.extend_from_slice(&self.count.to_le_bytes());
        p.extend_from_slice(&(body_bytes as u16).to_le_bytes());
        let k = self.key();
        p.extend((0..body_bytes).map(|i| body_byte(k, i)));
        p
    }

    /// Decodes a payload; `None` if any byte is not what its tag says.
    pub fn decode(p: &[u8]) -> Option<Tag> {
        if p.len() < TAG_BYTES || p[0] != 0xA7 {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([p[i], p[i + 1]]);
        let kind = match p[1] {
            0 => Kind::Append,
            1 => Kind::Commit,
            _ => return None,
        };
        let tag = Tag {
            kind,
            gen: u16_at(2),
            client: u16_at(4),
            seq: u32::from_le_bytes([p[6], p[7], p[8], p[9]]),
            idx: u16_at(10),
            count: u16_at(12),
        };
        let body = &p[TAG_BYTES..];
        if body.len() != usize::from(u16_at(14)) || tag.idx >= tag.count {
            return None;
        }
        let k = tag.key();
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == body_byte(k, i))
            .then_some(tag)
    }
}

fn body_byte(key: u64, i: usize) -> u8 {
    ((key >> ((i % 8) * 8)) as u8) ^ (i as u8).wrapping_mul(31)
}

/// What the workload did, in order. Append-only, so that a position in it (a mark) names
/// everything known up to that moment.
#[derive(Debug, Clone)]
pub enum Event {
    /// An attempt to append these entries is about to be sent.
    Submitted(Vec<Tag>),
    /// Entries acknowledged as durable, the first at `lsn`, the others after it.
    Acked {
        /// LSN of the first entry.
        lsn: u64,
        /// The entries' payloads.
        payloads: Vec<Vec<u8>>,
    },
    /// The attempt failed definitely (the log says nothing of it is on disk).
    Failed(Vec<Tag>),
    /// A truncation below this LSN was asked for (records below it may go).
    Truncate(u64),
    /// That truncation answered Ok: the checkpoint is durable in `META`, so no record
    /// below it may be read again (a transaction reaching it excepted: it comes whole),
    /// unless the named cursor held them (then below the lower of the two).
    Checkpointed(u64),
    /// The named cursor stands at this LSN, durably: read at a generation's open, or an
    /// advance answered Ok. Records from it on must be kept.
    CursorAt(u64),
    /// An advance of the named cursor to this LSN is about to be sent (it may reach the
    /// disk whatever its answer).
    CursorAdvance(u64),
    /// `set_meta` of this value is about to be sent (issue 23: it may go into the log as a
    /// slot frame). One client sets the slot, so these are in the order of the calls.
    MetaSet(Vec<u8>),
    /// That `set_meta` answered Ok: the value is durable.
    MetaAcked(Vec<u8>),
}

/// The shared event log of a run.
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Oracle {
    /// Appends an event.
    pub fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
    }

    /// Events so far.
    pub fn mark(&self) -> u64 {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// A probe for [`SimStorage::record`]: the mark at each crash point.
    pub fn probe(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let o = self.clone();
        move || o.mark()
    }

    /// The events up to `mark`.
    pub fn upto(&self, mark: u64) -> Vec<Event> {
        let e = self.events.lock().unwrap_or_else(|e| e.into_inner());
        e[..mark as usize].to_vec()
    }
}

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

//! What the workload did, as the checks after a crash know it: self-describing payloads
//! (a tag saying who appended the entry and where it belongs, and a body derived from it),
//! and the oracle, the workload's event log (what it submitted, what was acknowledged,
//! what definitely failed, its truncations, cursor and slot values). The checks of a
//! recovered log against it are in `check.rs`.

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

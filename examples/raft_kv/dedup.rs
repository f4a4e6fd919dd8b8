//! Idempotent writes: a PUT may carry `Client-Id` (1 to [`MAX_CLIENT_ID_BYTES`] bytes)
//! and `Client-Seq` (a number the client does not reuse for another write). The pair
//! travels in the Raft entry; the state machine applies each pair once and records the
//! index of the entry that applied it, and a retry (after a 504, a lost connection, a
//! leader change) is answered with that first result, its own body ignored.
//!
//! The table is state: replicated by the log, part of the snapshot (`snapshot_body`), and
//! bounded. Per client the results of the newest [`SEQS_PER_CLIENT`] seqs are kept; a
//! seq at or below the highest one forgotten is answered "stale" (409, not applied: the
//! table can no longer tell whether it was). At most [`MAX_CLIENTS`] clients are kept;
//! a new one beyond it evicts the client whose last write is oldest in the log, and a
//! retry from an evicted client is applied again. Every decision depends on the log only
//! (indexes, not clocks), so every replica makes the same.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest `Client-Id`, bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;
/// Seqs whose result is kept per client (the newest ones).
pub const SEQS_PER_CLIENT: usize = 64;
/// Clients kept; beyond it the least recently written-to is forgotten.
pub const MAX_CLIENTS: usize = 10_000;

/// A write's identity: the client and its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSeq {
    /// `Client-Id`.
    pub client: String,
    /// `Client-Seq`.
    pub seq: u64,
}

/// What the table says of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen: apply it.
    New,
    /// Applied by the entry at this index: answer that.
    Applied(u64),
    /// At or below the client's forgotten seqs: unknown, do not apply.
    Forgotten,
}

/// One client's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Client {
    /// Index of the entry of its last write: the eviction order.
    last_index: u64,
    /// Seq to the index of the entry that applied it (at most [`SEQS_PER_CLIENT`]).
    results: BTreeMap<u64, u64>,
    /// The highest seq forgotten (`None`: none yet).
    forgotten_up_to: Option<u64>,
}

/// The table: clients to their recent results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DedupTable {
    clients: BTreeMap<String, Client>,
}

impl DedupTable {
    /// What the table knows of `id`.
    pub fn seen(&self, id: &ClientSeq) -> Seen {
        let Some(c) = self.clients.get(&id.client) else {
            return Seen::New;
        };
        if let Some(index) = c.results.get(&id.seq) {
            return Seen::Applied(*index);
        }
        match c.forgotten_up_to {
            Some(f) if id.seq <= f => Seen::Forgotten,
            _ => Seen::New,
        }
    }

    /// Records that the entry at `index` applied `id` (which [`Self::seen`] called new).
    pub fn record(&mut self, id: &ClientSeq, index: u64) {
        if !self.clients.contains_key(&id.client) && self.clients.len() >= MAX_CLIENTS {
            self.evict_oldest();
        }
        let c = self.clients.entry(id.client.clone()).or_default();
        c.last_index = c.last_index.max(index);
        c.results.insert(id.seq, index);
        while c.results.len() > SEQS_PER_CLIENT {
            if let Some((seq, _)) = c.results.pop_first() {
                c.forgotten_up_to = c.forgotten_up_to.max(Some(seq));
            }
        }
    }

    /// Forgets the client whose last write is oldest (ties: the smallest id).
    fn evict_oldest(&mut self) {
        let oldest = self
            .clients
            .iter()
            .min_by_key(|(id, c)| (c.last_index, (*id).clone()))
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            self.clients.remove(&id);
        }
    }

    /// Clients in the table.
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: &str, seq: u64) -> ClientSeq {
        ClientSeq {
            client: client.into(),
            seq,
        }
    }

    #[test]
    fn a_write_is_applied_once_and_answered_with_its_first_index() {
        let mut t = DedupTable::default();
        assert_eq!(t.seen(&id("a", 1)), Seen::New);
        t.record(&id("a", 1), 7);
        assert_eq!(t.seen(&id("a", 1)), Seen::Applied(7));
        assert_eq!(t.seen(&id("a", 2)), Seen::New);
        assert_eq!(t.seen(&id("b", 1)), Seen::New);
    }

    #[test]
    fn a_client_keeps_its_newest_seqs_and_calls_older_ones_forgotten() {
        let mut t = DedupTable::default();
        let n = SEQS_PER_CLIENT as u64 + 10;
        for seq in 1..=n {
            t.record(&id("a", seq), 100 + seq);
        }
        // The oldest ten are gone: neither applied again nor answered.
        for seq in 1..=10 {
            assert_eq!(t.seen(&id("a", seq)), Seen::Forgotten, "seq {seq}");
        }
        for seq in 11..=n {
            assert_eq!(t.seen(&id("a", seq)), Seen::Applied(100 + seq), "seq {seq}");
        }
        assert_eq!(t.seen(&id("a", n + 1)), Seen::New);
    }

    #[test]
    fn the_client_written_to_longest_ago_is_evicted_at_the_limit() {
        let mut t = DedupTable::default();
        for c in 0..MAX_CLIENTS as u64 {
            t.record(&id(&format!("c{c}"), 1), 10 + c);
        }
        // c0 writes again: c1 is now the oldest.
        t.record(&id("c0", 2), 1_000_000);
        t.record(&id("new", 1), 1_000_001);
        assert_eq!(t.clients(), MAX_CLIENTS);
        assert_eq!(t.seen(&id("c1", 1)), Seen::New, "c1 evicted");
        assert_eq!(t.seen(&id("c0", 1)), Seen::Applied(10));
        assert_eq!(t.seen(&id("new", 1)), Seen::Applied(1_000_001));
    }
}

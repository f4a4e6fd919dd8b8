//! The entries appended most recently, as the bytes the log was given, kept in memory so
//! that replication reads what the leader appended moments ago without waiting for its
//! `fsync` and reading it back from the log (issue 21, item 6). Raft lets a leader send
//! entries to followers before they are durable on its own disk: it counts itself in a
//! quorum only once its own append has been reported flushed, which the store still does
//! from the log's `fsync` alone.
//!
//! The cache holds a suffix of the log: its last entry is always the log's last entry (the
//! store, the log's only writer, pushes every append, cuts it at every truncation and
//! purge, and clears it whenever the log moves or a write fails), so any range it covers
//! from its start can be served from it. Bounded by bytes ([`RECENT_MAX_BYTES`] unless set
//! otherwise): the oldest entries leave first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of encoded entries the cache keeps by default (the oldest leave first).
pub const RECENT_MAX_BYTES: usize = 16 << 20;

/// The recent entries, shared by the store (which writes them) and its readers.
#[derive(Debug, Clone)]
pub(crate) struct Recent {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Debug)]
struct Entries {
    /// The Raft index of the front entry (meaningless while empty).
    first_index: u64,
    records: VecDeque<Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
}

impl Recent {
    /// An empty cache that keeps at most `max_bytes` of entries (0: keeps none).
    pub(crate) fn new(max_bytes: usize) -> Recent {
        Recent {
            inner: Arc::new(Mutex::new(Entries {
                first_index: 0,
                records: VecDeque::new(),
                bytes: 0,
                max_bytes,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Every change is made in one step: a panic elsewhere leaves it consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the bound (and drops the oldest entries past it).
    pub(crate) fn set_max_bytes(&self, max_bytes: usize) {
        let mut e = self.lock();
        e.max_bytes = max_bytes;
        e.evict();
    }

    /// The entries at Raft indexes `first_index..` were appended to the log (after the
    /// last one the cache holds: anything else clears it first).
    pub(crate) fn push(&self, first_index: u64, records: &[Vec<u8>]) {
        let mut e = self.lock();
        if e.records.is_empty() || e.end_index() != first_index {
            e.clear();
            e.first_index = first_index;
        }
        for r in records {
            e.bytes += r.len();
            e.records.push_back(r.clone());
        }
        e.evict();
    }

    /// The log lost the entries at `index` and after (a truncation).
    pub(crate) fn truncate_from(&self, index: u64) {
        let mut e = self.lock();
        if index <= e.first_index {
            e.clear();
            return;
        }
        while e.end_index() > index {
            if let Some(r) = e.records.pop_back() {
                e.bytes -= r.len();
            }
        }
    }

    /// The log dropped the entries at `index` and before (a purge).
    pub(crate) fn purge_to(&self, index: u64) {
        let mut e = self.lock();
        while !e.records.is_empty() && e.first_index <= index {
            if let Some(r) = e.records.pop_front() {
                e.bytes -= r.len();
            }
            e.first_index += 1;
        }
    }

    /// Forgets every entry (the log moved, or a write failed).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The entries at Raft indexes `start..end` (`end` past the log's end reads to its
    /// end), as their bytes, if the cache holds the first of them; at most `max_bytes`
    /// (but always the first entry). `None`: read them from the log.
    pub(crate) fn get(&self, start: u64, end: u64, max_bytes: usize) -> Option<Vec<Vec<u8>>> {
        let e = self.lock();
        if e.records.is_empty() || start < e.first_index || start >= e.end_index() {
            return None;
        }
        let from = usize::try_from(start - e.first_index).ok()?;
        let to = usize::try_from(end.min(e.end_index()) - e.first_index).ok()?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for r in e.records.range(from..to) {
            if !out.is_empty() && bytes + r.len() > max_bytes {
                break;
            }
            bytes += r.len();
            out.push(r.clone());
        }
        Some(out)
    }
}

impl Entries {
    fn end_index(&self) -> u64 {
        self.first_index + self.records.len() as u64
    }

    fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }

    fn evict(&mut self) {
        while self.bytes > self.max_bytes {
            match self.records.pop_front() {
                Some(r) => {
                    self.bytes -= r.len();
                    self.first_index += 1;
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u8) -> Vec<u8> {
        vec![i; 10]
    }

    #[test]
    fn serves_what_it_holds_from_its_start_and_nothing_else() {
        let c = Recent::new(1 << 20);
        c.push(5, &[rec(5), rec(6), rec(7)]);
        assert_eq!(c.get(5, 8, usize::MAX), Some(vec![rec(5), rec(6), rec(7)]));
        assert_eq!(c.get(6, u64::MAX, usize::MAX), Some(vec![rec(6), rec(7)]));
        assert_eq!(c.get(4, 8, usize::MAX), None, "below its start");
        assert_eq!(c.get(8, 9, usize::MAX), None, "past its end");
        assert_eq!(c.get(5, 8, 15), Some(vec![rec(5)]), "bounded by bytes");
    }

    #[test]
    fn a_push_that_does_not_follow_clears_it_first() {
        let c = Recent::new(1 << 20);
        c.push(5, &[rec(5), rec(6)]);
        c.push(9, &[rec(9)]);
        assert_eq!(c.get(5, 10, usize::MAX), None);
        assert_eq!(c.get(9, 10, usize::MAX), Some(vec![rec(9)]));
    }

    #[test]
    fn truncation_purge_and_the_bound_cut_it() {
        let c = Recent::new(35);
        c.push(1, &[rec(1), rec(2), rec(3), rec(4)]);
        assert_eq!(
            c.get(1, 5, usize::MAX),
            None,
            "40 bytes past 35: the oldest left"
        );
        assert_eq!(c.get(2, 5, usize::MAX).map(|v| v.len()), Some(3));
        c.truncate_from(4);
        assert_eq!(c.get(2, 10, usize::MAX), Some(vec![rec(2), rec(3)]));
        c.purge_to(2);
        assert_eq!(c.get(2, 10, usize::MAX), None);
        assert_eq!(c.get(3, 10, usize::MAX), Some(vec![rec(3)]));
        c.truncate_from(1);
        assert_eq!(c.get(3, 10, usize::MAX), None);
    }
}

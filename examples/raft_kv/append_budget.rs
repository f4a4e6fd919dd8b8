//! The bytes one AppendEntries RPC to a peer may carry, learned from how the peer answers.
//!
//! openraft 0.9 gives each append the heartbeat interval as its deadline, and after a
//! timeout it sends the same range again: an RPC too big to be signed, sent, written and
//! fsynced within it (up to 64 entries of 256 KiB of writes each, 16 MiB) was never
//! answered in time, and a follower behind by such RPCs stayed behind for good (with a
//! second one slow, the cluster stopped committing). So each peer's connection keeps a
//! byte budget: halved (down to [`MIN_APPEND_BUDGET_BYTES`]) when an append of more than
//! it times out or is dropped by openraft's own timer, doubled (up to the RPC bound) when
//! one near it is answered within a quarter of its deadline. An append over the budget
//! is not sent: the connection answers `PayloadTooLarge` with the number of entries that
//! fit, and openraft sends that many at once, and for its next sends (its hint lives ten
//! of them). An append of one entry is always sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The smallest budget: an entry of a few writes still goes alone whatever its size.
pub const MIN_APPEND_BUDGET_BYTES: usize = 64 * 1024;

/// One peer's budget, bytes of encoded AppendEntries body.
#[derive(Debug)]
pub struct AppendBudget {
    bytes: AtomicUsize,
    max_bytes: usize,
}

impl AppendBudget {
    /// A budget that starts at, and never grows past, `max_bytes` (the RPC bound).
    pub fn new(max_bytes: usize) -> AppendBudget {
        AppendBudget {
            bytes: AtomicUsize::new(max_bytes),
            max_bytes,
        }
    }

    /// `None` if a body of `body_bytes` holding `entries` entries may be sent; else how
    /// many of its entries to send instead (at least 1, fewer than `entries`).
    pub fn entries_hint(&self, entries: usize, body_bytes: usize) -> Option<u64> {
        let budget = self.bytes.load(Ordering::Relaxed);
        if entries <= 1 || body_bytes <= budget {
            return None;
        }
        // Entries in proportion to the bytes that fit: fewer than `entries`, as
        // `body_bytes > budget`; openraft asks again with fewer if they are still too big.
        let fit = (entries as u128 * budget as u128 / body_bytes as u128) as u64;
        Some(fit.max(1))
    }

    /// Watches one append of `body_bytes` with deadline `ttl` until it is answered, fails
    /// or is dropped (openraft's timer): see [`AppendWatch`].
    pub fn watch(&self, body_bytes: usize, ttl: Duration) -> AppendWatch<'_> {
        AppendWatch {
            budget: self,
            body_bytes,
            ttl,
            started: Instant::now(),
            outcome: None,
        }
    }

    /// The budget now, bytes.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn shrink_below(&self, body_bytes: usize) {
        if body_bytes <= MIN_APPEND_BUDGET_BYTES {
            return; // nothing smaller to try: single entries go whatever the budget
        }
        let to = (body_bytes / 2).max(MIN_APPEND_BUDGET_BYTES);
        self.bytes.fetch_min(to, Ordering::Relaxed);
    }

    fn grow_from(&self, body_bytes: usize) {
        let now = self.bytes.load(Ordering::Relaxed);
        // Only an append near the budget says the budget is too low.
        if body_bytes.saturating_mul(2) >= now {
            let to = now.saturating_mul(2).min(self.max_bytes);
            self.bytes.fetch_max(to, Ordering::Relaxed);
        }
    }
}

/// One append in flight; dropped unanswered (openraft's timer fired), or answered late or
/// not at all, it halves the budget below its size; answered quickly, it may double it.
#[derive(Debug)]
pub struct AppendWatch<'a> {
    budget: &'a AppendBudget,
    body_bytes: usize,
    ttl: Duration,
    started: Instant,
    /// `Some(true)` answered, `Some(false)` failed; `None` still in flight.
    outcome: Option<bool>,
}

impl AppendWatch<'_> {
    /// The peer answered (`true`) or the call failed (`false`).
    pub fn finished(mut self, answered: bool) {
        self.outcome = Some(answered);
    }
}

impl Drop for AppendWatch<'_> {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        match self.outcome {
            None => self.budget.shrink_below(self.body_bytes),
            Some(false) if took >= self.ttl * 3 / 4 => self.budget.shrink_below(self.body_bytes),
            Some(true) if took < self.ttl / 4 => self.budget.grow_from(self.body_bytes),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn an_append_dropped_in_flight_halves_the_budget_below_it_and_later_ones_are_cut() {
        let b = AppendBudget::new(32 * MIB);
        assert_eq!(b.entries_hint(64, 16 * MIB), None);
        drop(b.watch(16 * MIB, Duration::from_millis(50)));
        assert_eq!(b.bytes(), 8 * MIB);
        assert_eq!(b.entries_hint(64, 16 * MIB), Some(32));
        assert_eq!(b.entries_hint(1, 16 * MIB), None, "one entry always goes");
        assert_eq!(b.entries_hint(64, 8 * MIB), None);
    }

    #[test]
    fn a_quick_answer_near_the_budget_doubles_it_up_to_the_bound() {
        let b = AppendBudget::new(32 * MIB);
        drop(b.watch(16 * MIB, Duration::from_millis(50)));
        b.watch(MIB, Duration::from_secs(3600)).finished(true);
        assert_eq!(
            b.bytes(),
            8 * MIB,
            "a small append says nothing of the budget"
        );
        b.watch(5 * MIB, Duration::from_secs(3600)).finished(true);
        assert_eq!(b.bytes(), 16 * MIB);
        for _ in 0..4 {
            b.watch(16 * MIB, Duration::from_secs(3600)).finished(true);
        }
        assert_eq!(b.bytes(), 32 * MIB);
    }

    #[test]
    fn the_budget_never_falls_below_its_floor_and_a_hint_is_never_zero() {
        let b = AppendBudget::new(32 * MIB);
        for _ in 0..20 {
            drop(b.watch(100 * 1024, Duration::from_millis(50)));
        }
        assert_eq!(b.bytes(), MIN_APPEND_BUDGET_BYTES);
        drop(b.watch(1024, Duration::from_millis(50)));
        assert_eq!(b.bytes(), MIN_APPEND_BUDGET_BYTES);
        assert_eq!(b.entries_hint(2, usize::MAX), Some(1));
        // A failure well within the deadline (refused, reset) is not a sign of size.
        let b = AppendBudget::new(32 * MIB);
        b.watch(16 * MIB, Duration::from_secs(3600)).finished(false);
        assert_eq!(b.bytes(), 32 * MIB);
    }
}

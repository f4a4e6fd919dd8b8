//! Heads seen once: a signed request's head (its `x-raft-head-mac`, unique to its body,
//! time and target, `auth`) is taken at most once while it could still verify. A copy
//! captured on the wire and sent again within the clock window, headers only, used to
//! reserve room for a body it never sent; a flood of them filled the budget of RPC
//! bodies, the leader's real appends were answered 503 and it was deposed.

use crate::auth::MAX_CLOCK_SKEW_MS;
use std::collections::HashMap;
use std::sync::Mutex;

/// Heads remembered at most: past it (after forgetting those out of the window) a new
/// head is refused, 503. A node takes some thousands of signed requests a second at
/// most, and remembers each for two clock windows (60 s).
pub const MAX_HEADS_SEEN: usize = 1 << 20;
/// Forget heads out of the window at most once per this many ms, and only with this many
/// remembered.
const FORGET_EVERY_MS: u64 = 1_000;
const FORGET_FROM: usize = 4_096;

/// Why a head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Seen already: a copy.
    Replayed,
    /// [`MAX_HEADS_SEEN`] heads in the window.
    Full,
}

/// The heads seen within the clock window, by their MAC, with their send time.
#[derive(Debug, Default)]
pub struct Seen(Mutex<SeenInner>);

#[derive(Debug, Default)]
struct SeenInner {
    sent_ms_by_mac: HashMap<String, u64>,
    forgot_at_ms: u64,
}

impl Seen {
    /// Takes the head whose MAC is `head_mac`, sent at `sent_ms` (verified), unless it was
    /// taken before.
    pub fn first_sight(&self, head_mac: &str, sent_ms: u64, now_ms: u64) -> Result<(), Refused> {
        let mut seen = match self.0.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let due = now_ms.saturating_sub(seen.forgot_at_ms) >= FORGET_EVERY_MS;
        if seen.sent_ms_by_mac.len() >= FORGET_FROM && due {
            // A head sent more than a window ago no longer verifies: nothing to remember.
            seen.sent_ms_by_mac
                .retain(|_, sent| sent.saturating_add(MAX_CLOCK_SKEW_MS) >= now_ms);
            seen.forgot_at_ms = now_ms;
        }
        if seen.sent_ms_by_mac.contains_key(head_mac) {
            return Err(Refused::Replayed);
        }
        if seen.sent_ms_by_mac.len() >= MAX_HEADS_SEEN {
            return Err(Refused::Full);
        }
        seen.sent_ms_by_mac.insert(head_mac.to_owned(), sent_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_taken_once_and_forgotten_out_of_the_window() {
        let seen = Seen::default();
        assert_eq!(seen.first_sight("a", 1_000, 1_000), Ok(()));
        assert_eq!(seen.first_sight("a", 1_000, 1_500), Err(Refused::Replayed));
        assert_eq!(seen.first_sight("b", 1_000, 1_500), Ok(()));
        // Enough heads to forget, a window later: "a" is forgotten (it no longer
        // verifies anyway), the recent ones are not.
        let later = 1_000 + MAX_CLOCK_SKEW_MS + 1;
        for i in 0..FORGET_FROM {
            assert_eq!(seen.first_sight(&format!("h{i}"), later, later), Ok(()));
        }
        assert_eq!(seen.first_sight("a", later, later + 2_000), Ok(()));
        assert_eq!(
            seen.first_sight("h7", later, later + 2_000),
            Err(Refused::Replayed)
        );
    }
}

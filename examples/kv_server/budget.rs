//! The byte budget of `--max-bytes`, shared by the HTTP workers and the `Store`: the bytes
//! the map holds, and the bytes of the PUT bodies on their way in, each reserved from its
//! request's head until its write is answered (a [`Reservation`], released on drop).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What `--max-bytes` bounds. Atomics, not the `Store`'s fields: the HTTP workers run on
/// threads of their own, and a body must be counted before it is read, which is before
/// the `Store` hears of it (and a message to it would put the body's head in a queue that
/// nothing bounds).
#[derive(Debug)]
pub(crate) struct Budget {
    /// See `Args::max_bytes`.
    max_bytes: usize,
    /// Bytes of keys and values the map holds, as the `Store` last counted them.
    held_bytes: AtomicUsize,
    /// Bytes reserved by the PUTs in progress: each its key and the room for its value.
    reserved_bytes: AtomicUsize,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The map alone leaves no room for it: 507 until deletes make room.
    MapFull,
    /// Other bodies in flight hold the room: 503, worth a retry once they are answered.
    BodiesInFlight,
}

impl Budget {
    pub(crate) fn new(max_bytes: usize) -> Arc<Budget> {
        Arc::new(Budget {
            max_bytes,
            held_bytes: AtomicUsize::new(0),
            reserved_bytes: AtomicUsize::new(0),
        })
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The `Store`'s count of the map's bytes, published after each change.
    pub(crate) fn set_held(&self, bytes: usize) {
        self.held_bytes.store(bytes, Ordering::Release);
    }

    /// Reserves `bytes` for a PUT whose key and value are that long, or refuses.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, Refused> {
        self.take(bytes, bytes)?;
        Ok(Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }

    /// Adds `more` to the reserved bytes if the map and every reservation still fit;
    /// `total` is the reservation's size with `more`, for the reason of a refusal.
    fn take(&self, more: usize, total: usize) -> Result<(), Refused> {
        let held = self.held_bytes.load(Ordering::Acquire);
        let fits = |reserved: usize| {
            let after = held.saturating_add(reserved).saturating_add(more);
            (after <= self.max_bytes).then(|| reserved + more)
        };
        match self
            .reserved_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, fits)
        {
            Ok(_) => Ok(()),
            Err(_) if held.saturating_add(total) > self.max_bytes => Err(Refused::MapFull),
            Err(_) => Err(Refused::BodiesInFlight),
        }
    }
}

/// Bytes of one PUT counted against `--max-bytes`, from its head until its write is
/// answered; given back when dropped, whichever way the request ends (answered, refused,
/// timed out, its client gone). It travels with the `Write` to the `Store`, so a body
/// whose client left while the write was queued is counted until the `Store` is done.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    /// Never more than the key and `MAX_VALUE_BYTES`.
    bytes: usize,
}

impl Reservation {
    /// Reserves `more` bytes on top (a chunked body grows as it arrives), or refuses.
    pub(crate) fn grow(&mut self, more: usize) -> Result<(), Refused> {
        self.budget.take(more, self.bytes + more)?;
        self.bytes += more;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .reserved_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_with_the_map_and_are_given_back_on_drop() {
        let budget = Budget::new(100);
        let a = budget.reserve(60).unwrap();
        assert_eq!(budget.reserve(50).unwrap_err(), Refused::BodiesInFlight);
        let mut b = budget.reserve(40).unwrap();
        assert_eq!(b.grow(1).unwrap_err(), Refused::BodiesInFlight);
        drop(a);
        b.grow(60).unwrap();
        drop(b);
        budget.set_held(90);
        assert_eq!(budget.reserve(11).unwrap_err(), Refused::MapFull);
        let _c = budget.reserve(10).unwrap();
        assert_eq!(budget.reserve(1).unwrap_err(), Refused::BodiesInFlight);
    }
}

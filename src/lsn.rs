//! `Lsn`: the log sequence number, a record's place in the log.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign};

/// A log sequence number. The first record of a log has LSN 1; every record after it
/// gets the next number, with no gaps, in the order the queue received it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The LSN of the first record of a new log.
    pub const FIRST: Lsn = Lsn(1);

    /// The LSN after this one.
    pub fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }

    /// The LSN before this one, or `None` for `Lsn(0)` (which stands for "no record").
    pub fn prev(self) -> Option<Lsn> {
        self.checked_sub(1)
    }

    /// `self + n`, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<Lsn> {
        self.0.checked_add(n).map(Lsn)
    }

    /// `self - n`, or `None` below `Lsn(0)`.
    pub fn checked_sub(self, n: u64) -> Option<Lsn> {
        self.0.checked_sub(n).map(Lsn)
    }

    /// `self - n`, stopping at `Lsn(0)`.
    pub fn saturating_sub(self, n: u64) -> Lsn {
        Lsn(self.0.saturating_sub(n))
    }
}

/// `lsn + n`: the LSN `n` places later (entry `i` of a commit whose reply is `first` has
/// LSN `first + i`). Overflows like `u64` addition.
impl Add<u64> for Lsn {
    type Output = Lsn;

    fn add(self, n: u64) -> Lsn {
        Lsn(self.0 + n)
    }
}

impl AddAssign<u64> for Lsn {
    fn add_assign(&mut self, n: u64) {
        self.0 += n;
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> u64 {
        lsn.0
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Lsn {
        Lsn(v)
    }
}

//! What a power cut leaves: per un-synced change kept, lost or torn, chosen from the
//! crash's seed by one of several modes.

use super::rng::Rng;
use super::state::{apply, Change};
use super::SECTOR_BYTES;

/// What happens to one un-synced change in a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Kept,
    Lost,
    Torn,
}

/// How a crash treats un-synced changes, chosen from its seed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// Nothing un-synced survives.
    Nothing,
    /// Everything written survives (what a process crash leaves).
    Everything,
    /// Changes before `cut` (global order) survive, the one at `cut` is torn: an ordered
    /// journal and an in-order disk.
    Prefix(u64),
    /// Each change is kept, lost or torn independently: any subset, out of order.
    Random { keep_per_8: u64 },
}

pub(crate) struct CrashPlan {
    pub(crate) mode: Mode,
    pub(crate) rng: Rng,
}

impl CrashPlan {
    /// A plan for a crash with these changes not yet synced.
    pub(crate) fn new(seed: u64, unsynced: &[u64]) -> CrashPlan {
        let mut rng = Rng::new(seed);
        let mode = match rng.below(8) {
            0 => Mode::Nothing,
            1 => Mode::Everything,
            // The cut falls on one of the un-synced changes (or after them all).
            2 | 3 => match unsynced.get(rng.below(unsynced.len() as u64 + 1) as usize) {
                Some(seq) => Mode::Prefix(*seq),
                None => Mode::Everything,
            },
            _ => Mode::Random {
                keep_per_8: rng.range(1, 6),
            },
        };
        CrashPlan { mode, rng }
    }

    pub(crate) fn fate(&mut self, seq: u64) -> Fate {
        match self.mode {
            Mode::Nothing => Fate::Lost,
            Mode::Everything => Fate::Kept,
            Mode::Prefix(cut) if seq < cut => Fate::Kept,
            Mode::Prefix(cut) if seq == cut => Fate::Torn,
            Mode::Prefix(_) => Fate::Lost,
            Mode::Random { keep_per_8 } => {
                if self.rng.chance(keep_per_8, 8) {
                    Fate::Kept
                } else if self.rng.chance(1, 3) {
                    Fate::Lost
                } else {
                    Fate::Torn
                }
            }
        }
    }

    /// A torn change. A write keeps its size change or not, and each sector it covers is
    /// kept, lost, zeroed or garbage. Bytes outside the write are never touched (sector
    /// writes are atomic: "powersafe overwrite"). A size change is kept or lost.
    pub(crate) fn tear(&mut self, buf: &mut Vec<u8>, change: &Change) {
        let Change::Write { offset, data } = change else {
            if self.rng.chance(1, 2) {
                apply(buf, change);
            }
            return;
        };
        let end = offset + data.len() as u64;
        if end > buf.len() as u64 && self.rng.chance(3, 4) {
            // The size reached the disk (the content below decides the bytes).
            buf.resize(end as usize, 0);
        }
        let mut pos = *offset;
        while pos < end {
            let sector_end = ((pos / SECTOR_BYTES) + 1) * SECTOR_BYTES;
            let stop = sector_end.min(end);
            let (a, b) = (pos as usize, stop as usize);
            if b <= buf.len() {
                let src = &data[a - *offset as usize..b - *offset as usize];
                match self.rng.below(8) {
                    0..=2 => buf[a..b].copy_from_slice(src),
                    3 | 4 => {}
                    5 => buf[a..b].fill(0),
                    _ => self.rng.fill(&mut buf[a..b]),
                }
            }
            pos = stop;
        }
    }
}

//! The torn-tail verdict: whether a valid frame of a later write batch follows damage in the
//! last segment, in one pass over the bytes.
//!
//! Every offset after the damage is a possible frame start. Most fail the header's own
//! rules (kind 1, 2 or 3, flags byte 0 or 1, count) or the LSN filter at once; the rest are
//! *candidates*, and each needs the CRC of its header tail and payload: `crc(a..b)` with
//! `a = p + 4`, `b = p + 24 + payload_len`. Hashing each payload costs up to
//! `max_record_bytes` per byte of damage; instead one running CRC `S(i)` of the bytes from
//! the damage on gives every range: `crc(a..b) = S(b) ^ shift(S(a), b - a)`
//! (`format/crc_combine.rs`). At `a` the candidate's CRC says what `S(b)` must be; the check
//! waits in a queue, ordered by `b`, until the running CRC passes `b`. Bytes past the last
//! non-zero one are zeros and are not read: the running CRC is extended over them by
//! arithmetic.
//!
//! Cost (docs/format.md, "Reading: torn tail or corruption"): each byte is looked at once
//! by the filters and hashed once; each candidate, at most one per two bytes (the flags
//! byte of one, 0 or 1, is the kind byte of the next, which could then only be a record
//! whose count's high byte is the first one's kind byte: not a count of 1), costs a few carry-less multiplications and a
//! queue entry of 8 bytes that lives until the scan passes its frame's end. Memory is the
//! reader's window plus at most 4 bytes per byte of `max_record_bytes + 24`.

use super::scan::SegmentData;
use crate::error::WalError;
use crate::format::crc_combine::{extend_zeros, mul, update, x8n};
use crate::format::frame::FRAME_FLAGS_KNOWN;
use crate::format::{FrameHeader, FRAME_HEADER_BYTES};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Bytes of candidate starts examined per window: the window holds them and the 23 bytes
/// after the last one.
const SCAN_STEP_BYTES: u64 = (super::scan::READ_WINDOW_BYTES - FRAME_HEADER_BYTES) as u64;

/// Whether a valid frame (CRC and all) of a write batch that began after `lsn` starts in
/// `from..=to - 23` (`to`: one past the last non-zero byte; the bytes after it are zeros).
/// A frame may end in zeros: its flags byte may be 0 and an empty or all-zero payload adds
/// none, but its kind byte (at +22, never 0) is its last non-zero byte at the latest.
pub(crate) fn later_batch_frame(
    seg: &mut SegmentData,
    from: u64,
    to: u64,
    lsn: u64,
    max_record_bytes: u64,
) -> Result<bool, WalError> {
    let size = seg.size_bytes();
    let _span = tracing::debug_span!("torn_tail_search", from, to).entered();
    // Frame starts `p` with `p + 23 <= to` and a whole header in the file.
    let starts_end = (to + 1)
        .min(size)
        .saturating_sub(FRAME_HEADER_BYTES as u64 - 1);
    if from >= starts_end {
        return Ok(false);
    }
    let mut run = RunningCrc::new(from + 4);
    let mut pending = Pending::default();
    let mut p = from;
    while p < starts_end {
        let step_end = (p + SCAN_STEP_BYTES).min(starts_end);
        // The window starts at `p`, and the running CRC is never behind it (below).
        let base = p;
        let window = seg.bytes(base, (step_end - base) as usize + FRAME_HEADER_BYTES - 1)?;
        while p < step_end {
            let i = (p - base) as usize;
            let hdr = &window[i..i + FRAME_HEADER_BYTES];
            p += 1;
            // The header's own rules first (kind 1, 2 or 3, known flags), then the LSN.
            if hdr[23] & !FRAME_FLAGS_KNOWN != 0 || !(hdr[22] == 1 || hdr[22] == 2) {
                continue;
            }
            let Some(h) = hdr.try_into().ok().and_then(FrameHeader::parse) else {
                continue;
            };
            if !(h.lsn > lsn && h.lsn - lsn < (1 << 40)) || h.batch_first_lsn() <= lsn {
                continue;
            }
            let start = p - 1;
            let end = start + h.frame_bytes() as u64;
            if u64::from(h.payload_len) > max_record_bytes || end > size {
                continue;
            }
            // A candidate: its CRC covers `a..end`. Bring the running CRC to `a`, answering
            // the checks on the way, and queue this one's.
            let a = start + 4;
            if run.advance(window, base, a, &mut pending) {
                return Ok(true);
            }
            let want = h.crc ^ mul(run.x8n_cached((end - a) as u32), run.crc);
            pending.push(end - run.origin, want);
        }
        // The next window starts at `p`: bring the CRC there (it may already be past).
        if run.advance(window, base, p, &mut pending) {
            return Ok(true);
        }
    }
    // Checks of frames ending within `..to` are answered by the bytes (the last window ends
    // at `min(to + 1, size)`); past `to` the bytes are zeros.
    finish(seg, &mut run, &mut pending, to)
}

/// Brings the running CRC to `to` through the window holding `run.pos..to`, then answers the
/// remaining checks, whose frames end in the zeros after `to`.
fn finish(
    seg: &mut SegmentData,
    run: &mut RunningCrc,
    pending: &mut Pending,
    to: u64,
) -> Result<bool, WalError> {
    if run.pos < to {
        let base = run.pos;
        let window = seg.bytes(base, (to - base) as usize)?;
        if run.advance(window, base, to, pending) {
            return Ok(true);
        }
    }
    // The CRC up to a frame end `e > to` is `S(to)` extended by `e - to` zero bytes.
    while let Some((rel_end, want)) = pending.pop() {
        let zeros = (run.origin + rel_end).saturating_sub(to);
        if extend_zeros(run.crc, zeros as u32) == want {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The CRC of the bytes from `origin` to `pos`, and a small cache of `x^(8n)` by `n`.
struct RunningCrc {
    origin: u64,
    pos: u64,
    crc: u32,
    /// `(n, x^(8n))`, direct-mapped by `n`: a crafted tail repeats a few payload lengths.
    cache: [(u32, u32); 64],
}

impl RunningCrc {
    fn new(origin: u64) -> RunningCrc {
        RunningCrc {
            origin,
            pos: origin,
            crc: 0,
            cache: [(0, x8n(0)); 64],
        }
    }

    fn x8n_cached(&mut self, n: u32) -> u32 {
        let slot = &mut self.cache[(n as usize ^ (n as usize >> 6)) & 63];
        if slot.0 != n {
            *slot = (n, x8n(n));
        }
        slot.1
    }

    /// Hashes `window` (which starts at file offset `base <= self.pos`) up to `to`, stopping
    /// at each queued frame end on the way: true as soon as one's CRC matches.
    fn advance(&mut self, window: &[u8], base: u64, to: u64, pending: &mut Pending) -> bool {
        if to <= self.pos {
            return false;
        }
        debug_assert!(base <= self.pos, "the window starts behind the running CRC");
        while let Some(rel_end) = pending.peek_end() {
            let end = self.origin + rel_end;
            if end > to {
                break;
            }
            self.hash_to(window, base, end);
            if let Some((_, want)) = pending.pop() {
                if self.crc == want {
                    return true;
                }
            }
        }
        self.hash_to(window, base, to);
        false
    }

    fn hash_to(&mut self, window: &[u8], base: u64, to: u64) {
        if to > self.pos {
            self.crc = update(
                self.crc,
                &window[(self.pos - base) as usize..(to - base) as usize],
            );
            self.pos = to;
        }
    }
}

/// The queued checks, `(frame end - origin) << 32 | wanted CRC`, smallest end first. Ends
/// usually arrive in order (a crafted tail repeats one length): those go to a FIFO, the
/// rest to a heap.
#[derive(Default)]
struct Pending {
    in_order: VecDeque<u64>,
    out_of_order: BinaryHeap<Reverse<u64>>,
}

impl Pending {
    fn push(&mut self, rel_end: u64, want: u32) {
        // Segments are at most 1 GiB, so an offset within one fits 32 bits.
        let key = (rel_end << 32) | u64::from(want);
        match self.in_order.back() {
            Some(&last) if key < last => self.out_of_order.push(Reverse(key)),
            _ => self.in_order.push_back(key),
        }
    }

    fn min_key(&self) -> Option<u64> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(&a), Some(&Reverse(b))) => Some(a.min(b)),
            (a, b) => a.copied().or(b.map(|r| r.0)),
        }
    }

    fn peek_end(&self) -> Option<u64> {
        self.min_key().map(|k| k >> 32)
    }

    fn pop(&mut self) -> Option<(u64, u32)> {
        let key = self.min_key()?;
        if self.in_order.front() == Some(&key) {
            self.in_order.pop_front();
        } else {
            self.out_of_order.pop();
        }
        Some((key >> 32, key as u32))
    }
}

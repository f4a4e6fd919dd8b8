//! Write batches: frames encoded once into one buffer, and the plan of where each run of
//! bytes goes (segment and offset). The planner (owned by the queue) decides offsets and
//! rollovers, so writing a batch again writes the same bytes to the same places.

use crate::error::WalError;
use crate::format::frame::{
    encode_record, encode_stored, encode_transaction, transaction_payload_len, MAX_TXN_ENTRIES,
};
use crate::format::slot_frame::{encode_slot, slot_frame_bytes, SLOT_GENERATION_BYTES};
use crate::format::{FrameKind, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::lsn::Lsn;

/// A batch moves whole into the next segment at a rollover (see `Batch::move_whole`)
/// while its frames take at most 1 / this of a segment: the slack it leaves at the end of
/// the segment it leaves stays under 12.5% of a segment. Larger batches span both
/// segments (two `fdatasync`s, one after the other).
pub const MOVE_WHOLE_FRACTION: u64 = 8;

/// Where the next frame goes: the current segment, the offset in it, and the next LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planner {
    /// First LSN of the segment being written.
    pub segment_first_lsn: u64,
    /// Offset of the next frame in it.
    pub offset: u64,
    /// LSN of the next record.
    pub next_lsn: u64,
    /// Rollover size.
    pub segment_size_bytes: u64,
    /// Largest frame payload.
    pub max_record_bytes: u64,
    /// Raised by every rewind and reset: segment files named like before may be other
    /// files now (removed and created again, or rebuilt), so a writer that sees a batch of
    /// a new epoch drops the file handles it holds before writing it.
    pub files_epoch: u64,
}

/// A run of batch bytes that goes to one segment at one offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// The segment, by first LSN.
    pub segment_first_lsn: u64,
    /// Where in the segment the run starts.
    pub offset: u64,
    /// Start of the run in [`Batch::buf`].
    pub start: usize,
    /// End of the run in [`Batch::buf`].
    pub end: usize,
    /// The segment must be created (it is new) before this run is written.
    pub creates_segment: bool,
}

/// Where one frame of a batch starts, and the records it holds: what the read index notes
/// once the batch is durable, without reading the frame headers back out of a buffer the
/// cache has long let go of (that walk was 5% of the queue thread's samples at 1,024
/// committers: a miss per frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMark {
    /// Start of the frame in [`Batch::buf`].
    pub pos: usize,
    /// LSN of its first record.
    pub lsn: u64,
    /// Records in it.
    pub count: u16,
}

/// A batch of frames to write and fsync together.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The encoded frames, back to back.
    pub buf: Vec<u8>,
    /// Each frame of `buf`, in order (one per frame: at most `max_batch_bytes / 24`).
    pub frames: Vec<FrameMark>,
    /// Where the bytes go.
    pub chunks: Vec<Chunk>,
    /// LSN of the first record.
    pub first_lsn: u64,
    /// LSN after the last record.
    pub end_lsn: u64,
    /// Records in the batch.
    pub records: usize,
    /// Planner position before the batch (to rewind to if the batch fails).
    pub start: Planner,
    /// This batch replaces every segment from `first_lsn` on (a rewrite after an fsync
    /// failure): later segments are removed before it is written.
    pub rewrite: bool,
    /// The last slot frame of the batch (`Wal::set_meta`), if it holds one: its
    /// generation and where the slot's bytes lie in [`Batch::buf`]. Slot frames are
    /// encoded in ascending generation, so this is the batch's newest slot value.
    pub slot: Option<(u64, std::ops::Range<usize>)>,
}

impl Batch {
    /// An empty batch starting where `planner` stands.
    pub fn new(planner: &Planner) -> Batch {
        Batch::with_buffer(planner, Vec::new())
    }

    /// An empty batch reusing `buf`'s allocation.
    pub fn with_buffer(planner: &Planner, buf: Vec<u8>) -> Batch {
        Batch::with_buffers(planner, buf, Vec::new())
    }

    /// An empty batch reusing the allocations of an earlier one's `buf` and `frames`.
    pub fn with_buffers(planner: &Planner, mut buf: Vec<u8>, mut frames: Vec<FrameMark>) -> Batch {
        buf.clear();
        frames.clear();
        Batch {
            buf,
            frames,
            chunks: Vec::new(),
            first_lsn: planner.next_lsn,
            end_lsn: planner.next_lsn,
            records: 0,
            start: *planner,
            rewrite: false,
            slot: None,
        }
    }

    /// True when the batch holds no frame (a batch of slot frames alone holds no record
    /// but is not empty).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of frames in the batch.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Reserves room for a frame of `payload_len` bytes, rolling to a new segment when it
    /// would not fit in the current one.
    fn place(&mut self, planner: &mut Planner, payload_len: u64) -> Result<(), WalError> {
        let at = self.buf.len();
        self.place_at(planner, payload_len, at)
    }

    fn place_at(
        &mut self,
        planner: &mut Planner,
        payload_len: u64,
        at: usize,
    ) -> Result<(), WalError> {
        if payload_len > planner.max_record_bytes {
            return Err(WalError::RecordTooLarge {
                size_bytes: payload_len,
                max_bytes: planner.max_record_bytes,
            });
        }
        let frame = FRAME_HEADER_BYTES as u64 + payload_len;
        // A segment rolls only once it holds a record: the new one is named by the next
        // LSN, which a segment holding slot frames alone shares (they take no LSN). Such a
        // segment takes the frame past its size instead (the queue sends a slot value
        // that would not fit there through `META`: see `Batch::slot_fits`).
        let roll = planner.offset + frame > planner.segment_size_bytes
            && planner.segment_first_lsn < planner.next_lsn;
        // A new chunk starts a new segment unless the batch moved whole into it.
        let new_segment = roll && !self.move_whole(planner, frame, at);
        if new_segment {
            planner.segment_first_lsn = planner.next_lsn;
            planner.offset = SEGMENT_HEADER_BYTES as u64;
        }
        match self.chunks.last_mut() {
            Some(c) if !new_segment && c.segment_first_lsn == planner.segment_first_lsn => {}
            _ => self.chunks.push(Chunk {
                segment_first_lsn: planner.segment_first_lsn,
                offset: planner.offset,
                start: at,
                end: at,
                creates_segment: new_segment,
            }),
        }
        planner.offset += frame;
        Ok(())
    }

    /// At a rollover, moves the frames placed so far (`at` bytes, all in the segment being
    /// left, after frames of earlier batches) into the new segment, named by the batch's
    /// first LSN, if they and the next `frame` bytes take at most 1 / [`MOVE_WHOLE_FRACTION`]
    /// of a segment: the batch then touches one
    /// segment, so its rollover costs one `fdatasync`, not two (the segment it leaves was
    /// made durable by the batch before, and keeps zeros after its last frame, which a
    /// reader reads as that segment's end). `false`: the batch spans both segments.
    fn move_whole(&mut self, planner: &mut Planner, frame: u64, at: usize) -> bool {
        let header = SEGMENT_HEADER_BYTES as u64;
        let [only] = self.chunks.as_mut_slice() else {
            return false;
        };
        // Not when the batch began its segment (the new one would take that name).
        if only.creates_segment
            || only.segment_first_lsn >= self.first_lsn
            || (at as u64 + frame).saturating_mul(MOVE_WHOLE_FRACTION) > planner.segment_size_bytes
        {
            return false;
        }
        *only = Chunk {
            segment_first_lsn: self.first_lsn,
            offset: header,
            start: 0,
            end: at,
            creates_segment: true,
        };
        planner.segment_first_lsn = self.first_lsn;
        planner.offset = header + at as u64;
        true
    }

    /// Each frame's `(start in buf, end in buf, mark)`, in order.
    pub fn frame_spans(&self) -> impl Iterator<Item = (usize, usize, FrameMark)> + '_ {
        self.frames.iter().enumerate().map(|(i, m)| {
            let end = self.frames.get(i + 1).map_or(self.buf.len(), |n| n.pos);
            (m.pos, end, *m)
        })
    }

    /// Closes the frame encoded from `at` holding `count` records.
    fn finish_frame(&mut self, planner: &mut Planner, count: u64, at: usize) -> Lsn {
        let lsn = planner.next_lsn;
        self.frames.push(FrameMark {
            pos: at,
            lsn,
            count: count as u16,
        });
        planner.next_lsn += count;
        self.end_lsn = planner.next_lsn;
        self.records += count as usize;
        if let Some(c) = self.chunks.last_mut() {
            c.end = self.buf.len();
        }
        Lsn(lsn)
    }

    /// Encodes one record into the batch and returns its LSN.
    pub fn push_record(&mut self, planner: &mut Planner, payload: &[u8]) -> Result<Lsn, WalError> {
        let at = self.buf.len();
        self.place(planner, payload.len() as u64)?;
        let delta = (planner.next_lsn - self.first_lsn) as u32;
        encode_record(&mut self.buf, planner.next_lsn, delta, payload);
        Ok(self.finish_frame(planner, 1, at))
    }

    /// Whether a slot frame of `slot_len` bytes goes into the log at `planner`'s place
    /// without growing a segment past its size with slot frames alone: it fits in the
    /// segment, or the segment holds a record (so the frame may start the next one), and
    /// its payload is within `max_record_bytes`.
    pub fn slot_fits(planner: &Planner, slot_len: usize) -> bool {
        let frame = slot_frame_bytes(slot_len) as u64;
        (frame - FRAME_HEADER_BYTES as u64) <= planner.max_record_bytes
            && (planner.segment_first_lsn < planner.next_lsn
                || planner.offset + frame <= planner.segment_size_bytes)
    }

    /// Encodes a slot frame (`Wal::set_meta`'s value `slot` at `generation`): it takes no
    /// LSN. The caller checked [`Batch::slot_fits`] and that generations ascend.
    pub fn push_slot(
        &mut self,
        planner: &mut Planner,
        generation: u64,
        slot: &[u8],
    ) -> Result<(), WalError> {
        let at = self.buf.len();
        self.place(planner, (SLOT_GENERATION_BYTES + slot.len()) as u64)?;
        let delta = (planner.next_lsn - self.first_lsn) as u32;
        encode_slot(&mut self.buf, planner.next_lsn, delta, generation, slot);
        self.finish_frame(planner, 0, at);
        let start = at + FRAME_HEADER_BYTES + SLOT_GENERATION_BYTES;
        self.slot = Some((generation, start..self.buf.len()));
        Ok(())
    }

    /// The batch's newest slot value, `(generation, bytes)`, if it holds a slot frame.
    pub fn newest_slot(&self) -> Option<(u64, &[u8])> {
        let (generation, bytes) = self.slot.as_ref()?;
        Some((*generation, self.buf.get(bytes.clone())?))
    }

    /// Encodes a transaction (all its entries in one frame, so recovery yields all or
    /// none) and returns the LSN of its first entry; entry `i` gets LSN `first + i`.
    pub fn push_transaction<B: AsRef<[u8]>>(
        &mut self,
        planner: &mut Planner,
        entries: &[B],
    ) -> Result<Lsn, WalError> {
        check_transaction(entries.len())?;
        let at = self.buf.len();
        self.place(planner, transaction_payload_len(entries) as u64)?;
        let delta = (planner.next_lsn - self.first_lsn) as u32;
        encode_transaction(&mut self.buf, planner.next_lsn, delta, entries);
        Ok(self.finish_frame(planner, entries.len() as u64, at))
    }

    /// Encodes a frame whose payload is already laid out as stored (`stored`: compressed
    /// when `flags` says so; see `format/compress.rs`) holding `count` records, and returns
    /// its first LSN. The size checked against `max_record_bytes` is the stored one: the
    /// caller checked the payload before compression.
    pub fn push_stored(
        &mut self,
        planner: &mut Planner,
        kind: FrameKind,
        flags: u8,
        count: usize,
        stored: &[u8],
    ) -> Result<Lsn, WalError> {
        if kind == FrameKind::Transaction {
            check_transaction(count)?;
        }
        let at = self.buf.len();
        self.place(planner, stored.len() as u64)?;
        let delta = (planner.next_lsn - self.first_lsn) as u32;
        encode_stored(
            &mut self.buf,
            kind,
            flags,
            planner.next_lsn,
            delta,
            count as u16,
            stored,
        );
        Ok(self.finish_frame(planner, count as u64, at))
    }

    /// Plans the batch's frames again from `planner` (which must stand at this batch's first
    /// LSN): after a rewrite moved the log to a fresh segment, batches queued behind it go
    /// where the log now continues. The frames themselves do not change.
    pub fn replan(&mut self, planner: &mut Planner) {
        debug_assert_eq!(planner.next_lsn, self.first_lsn);
        self.start = *planner;
        self.chunks.clear();
        let mut pos = 0;
        while pos + FRAME_HEADER_BYTES <= self.buf.len() {
            let h = &self.buf[pos..pos + FRAME_HEADER_BYTES];
            let payload_len = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
            let count = u64::from(u16::from_le_bytes([h[20], h[21]]));
            // Cannot fail: the frame passed the same size check when it was first placed.
            let _ = self.place_at(planner, payload_len, pos);
            pos += FRAME_HEADER_BYTES + payload_len as usize;
            planner.next_lsn += count;
            if let Some(c) = self.chunks.last_mut() {
                c.end = pos;
            }
        }
        debug_assert_eq!(planner.next_lsn, self.end_lsn);
    }

    /// The same frames planned into a fresh segment named by `first_lsn`, replacing every
    /// segment from there on: what is written after an fsync failure. Returns the batch and
    /// the planner position after it.
    pub fn as_rewrite(&self) -> (Batch, Planner) {
        let header = SEGMENT_HEADER_BYTES as u64;
        let chunk = Chunk {
            segment_first_lsn: self.first_lsn,
            offset: header,
            start: 0,
            end: self.buf.len(),
            creates_segment: true,
        };
        let after = Planner {
            segment_first_lsn: self.first_lsn,
            offset: header + self.buf.len() as u64,
            next_lsn: self.end_lsn,
            ..self.start
        };
        let batch = Batch {
            chunks: vec![chunk],
            rewrite: true,
            ..self.clone()
        };
        (batch, after)
    }
}

/// Checks a transaction's entry count.
pub fn check_transaction(entries: usize) -> Result<(), WalError> {
    if entries == 0 {
        return Err(WalError::InvalidTransaction {
            reason: "a transaction needs at least one entry".into(),
        });
    }
    if entries > MAX_TXN_ENTRIES {
        return Err(WalError::InvalidTransaction {
            reason: format!("{entries} entries; a transaction holds at most {MAX_TXN_ENTRIES}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FrameHeader;

    /// Each frame's `(start, end, lsn, count)` read back from the headers in `buf`.
    fn walked(b: &Batch) -> Vec<(usize, usize, u64, u16)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + FRAME_HEADER_BYTES <= b.buf.len() {
            let hdr: &[u8; FRAME_HEADER_BYTES] =
                b.buf[pos..pos + FRAME_HEADER_BYTES].try_into().unwrap();
            let h = FrameHeader::parse(hdr).unwrap();
            out.push((pos, pos + h.frame_bytes(), h.lsn, h.count));
            pos += h.frame_bytes();
        }
        out
    }

    fn marked(b: &Batch) -> Vec<(usize, usize, u64, u16)> {
        b.frame_spans()
            .map(|(s, e, m)| (s, e, m.lsn, m.count))
            .collect()
    }

    #[test]
    fn frame_marks_agree_with_the_headers_across_rollovers_replans_and_rewrites() {
        let mut planner = Planner {
            segment_first_lsn: 1,
            offset: SEGMENT_HEADER_BYTES as u64,
            next_lsn: 1,
            segment_size_bytes: 4096,
            max_record_bytes: 1 << 20,
            files_epoch: 0,
        };
        for round in 0..20u64 {
            let mut b = Batch::new(&planner);
            for i in 0..(round % 7 + 1) {
                let len = ((round * 131 + i * 57) % 900) as usize;
                match i % 4 {
                    0 => b.push_record(&mut planner, &vec![1u8; len]).map(|_| ()),
                    1 => b
                        .push_transaction(&mut planner, &[vec![2u8; len], vec![3u8; 9]])
                        .map(|_| ()),
                    // A slot frame (no LSN) whenever it may go where the planner stands.
                    3 if Batch::slot_fits(&planner, len / 4) => {
                        b.push_slot(&mut planner, round * 10 + i, &vec![5u8; len / 4])
                    }
                    _ => b
                        .push_stored(&mut planner, FrameKind::Record, 0, 1, &vec![4u8; len])
                        .map(|_| ()),
                }
                .unwrap();
            }
            assert_eq!(marked(&b), walked(&b), "round {round}");
            if let Some((generation, slot)) = b.newest_slot() {
                assert_eq!(generation % 10, 3);
                assert!(slot.iter().all(|&x| x == 5));
            }
            let (rewrite, _) = b.as_rewrite();
            assert_eq!(marked(&rewrite), walked(&rewrite));
            let mut again = b.start;
            let mut replanned = b.clone();
            replanned.replan(&mut again);
            assert_eq!(marked(&replanned), walked(&replanned));
            // Recycled buffers start empty.
            let reused = Batch::with_buffers(&planner, b.buf.clone(), b.frames.clone());
            assert!(reused.frames.is_empty() && reused.buf.is_empty());
        }
    }
}

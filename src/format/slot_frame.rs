//! Slot frames: a value of the application's metadata slot (`Wal::set_meta`) written into
//! the log as a frame of kind 3, so that it costs a share of a group commit's `fdatasync`
//! instead of the two of a `META` replace. No actix and no I/O here.
//!
//! ```text
//! offset size field
//!  0     24   frame header  kind 3, count 0, flags 0, lsn = the next record's LSN
//! 24     8    generation    u64 LE: one more on every slot value attempted (META's too)
//! 32     ...  slot          the application's bytes (payload_len - 8 of them)
//! ```
//!
//! The slot's value is the one of highest generation among `META` (its `slot_gen`) and
//! the slot frames the log holds. `docs/format.md` ("Slot frames") gives the rules.

use super::frame::{encode_frame_with, FrameKind, FRAME_HEADER_BYTES};

/// Bytes of the generation that opens a slot frame's payload.
pub const SLOT_GENERATION_BYTES: usize = 8;

/// Bytes a slot frame of `slot_len` bytes takes on disk, header included.
pub fn slot_frame_bytes(slot_len: usize) -> usize {
    FRAME_HEADER_BYTES + SLOT_GENERATION_BYTES + slot_len
}

/// Appends a slot frame holding `slot` at `generation`; `lsn` is the next record's LSN.
pub fn encode_slot(out: &mut Vec<u8>, lsn: u64, batch_delta: u32, generation: u64, slot: &[u8]) {
    let payload_len = (SLOT_GENERATION_BYTES + slot.len()) as u32;
    encode_frame_with(
        out,
        FrameKind::Slot,
        0,
        lsn,
        batch_delta,
        0,
        payload_len,
        |o| {
            o.extend_from_slice(&generation.to_le_bytes());
            o.extend_from_slice(slot);
        },
    );
}

/// A slot frame's payload split into its generation and the slot's bytes; `None` when it
/// is shorter than the generation (a header that parsed never has such a length).
pub fn slot_parts(payload: &[u8]) -> Option<(u64, &[u8])> {
    let (generation, slot) = payload.split_at_checked(SLOT_GENERATION_BYTES)?;
    let generation = u64::from_le_bytes(generation.try_into().ok()?);
    Some((generation, slot))
}

/// Keeps in `newest` the slot value of `payload` (a slot frame's) if its generation is the
/// highest seen so far: what recovery and `LogReader` do with each slot frame they read.
/// `Err` names what is wrong with a payload shorter than its generation.
pub fn keep_newest(newest: &mut Option<(u64, Vec<u8>)>, payload: &[u8]) -> Result<(), String> {
    let (generation, slot) =
        slot_parts(payload).ok_or_else(|| "slot frame shorter than its generation".to_string())?;
    if newest.as_ref().is_none_or(|(g, _)| generation > *g) {
        *newest = Some((generation, slot.to_vec()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::frame::{frame_crc, FrameHeader};

    #[test]
    fn a_slot_frame_round_trips_and_takes_no_lsn() {
        let mut buf = Vec::new();
        encode_slot(&mut buf, 41, 3, 7, b"vote");
        assert_eq!(buf.len(), slot_frame_bytes(4));
        let h = FrameHeader::parse(buf[..24].try_into().unwrap()).unwrap();
        assert_eq!(
            (h.kind, h.count, h.lsn, h.batch_first_lsn()),
            (FrameKind::Slot, 0, 41, 38)
        );
        assert_eq!(h.crc, frame_crc(&buf[4..24], &buf[24..]));
        assert_eq!(slot_parts(&buf[24..]), Some((7, &b"vote"[..])));
    }

    #[test]
    fn a_slot_header_with_a_count_a_flag_or_no_generation_does_not_parse() {
        let mut buf = Vec::new();
        encode_slot(&mut buf, 1, 0, 1, b"");
        let mut bad = buf.clone();
        bad[20] = 1; // a count
        assert_eq!(FrameHeader::parse(bad[..24].try_into().unwrap()), None);
        let mut bad = buf.clone();
        bad[23] = 1; // the LZ4 flag
        assert_eq!(FrameHeader::parse(bad[..24].try_into().unwrap()), None);
        let mut bad = buf.clone();
        bad[4] = 7; // shorter than its generation
        assert_eq!(FrameHeader::parse(bad[..24].try_into().unwrap()), None);
        // And a record or transaction with count 0 still does not.
        let mut bad = buf.clone();
        bad[22] = 2;
        assert_eq!(FrameHeader::parse(bad[..24].try_into().unwrap()), None);
        assert!(slot_parts(&[1, 2, 3]).is_none());
    }
}

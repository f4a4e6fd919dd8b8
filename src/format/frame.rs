//! Frames: the 24-byte little-endian header and payload every record is stored as.
//!
//! ```text
//! offset size field
//!  0     4    crc32        CRC32 (crc32fast) of bytes 4..24 and the payload
//!  4     4    payload_len  payload length in bytes
//!  8     8    lsn          LSN of the frame's first record
//! 16     4    batch_delta  lsn minus the LSN of the first frame of the same write batch
//! 20     2    count        records in the frame: 1, a transaction's entry count, 0 for a slot
//! 22     1    kind         1 = record, 2 = transaction, 3 = metadata slot (`slot_frame.rs`)
//! 23     1    flags        bit 0 LZ4: the payload is stored compressed; bits 1..8 are 0
//! 24     ...  payload      payload_len bytes (compressed: see `compress.rs`)
//! ```
//!
//! Byte 23 was `reserved` (always 0) before compression: a frame with bit 0 set lies only
//! in a segment whose header has the `COMPRESSED` flag, which older readers refuse, so
//! they never see one. The CRC covers the bytes as stored (compressed).

/// Size of a frame header in bytes.
pub const FRAME_HEADER_BYTES: usize = 24;

/// Largest number of entries a transaction frame can hold (the `count` field is 16 bits).
pub const MAX_TXN_ENTRIES: usize = u16::MAX as usize;

/// Frame flag (byte 23), bit 0: the payload is stored compressed with LZ4
/// (`format/compress.rs`: the decompressed length, then one LZ4 block). Allowed only in a
/// segment with [`SEGMENT_FLAG_COMPRESSED`](super::segment_header::SEGMENT_FLAG_COMPRESSED).
pub const FRAME_FLAG_LZ4: u8 = 1;
/// Every frame flag this build knows; a header with another bit set does not parse.
pub const FRAME_FLAGS_KNOWN: u8 = FRAME_FLAG_LZ4;

/// What a frame's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// One record: the payload is the record's bytes.
    Record = 1,
    /// A transaction: `count` entries, each a 4-byte little-endian length and its bytes.
    /// Its records get LSNs `lsn .. lsn + count` and are recovered all or none.
    Transaction = 2,
    /// A value of the application's metadata slot (`Wal::set_meta`), holding no record:
    /// `count` is 0 and the frame takes no LSN (`lsn` is the next record's). The payload
    /// is the slot's generation and bytes ([`super::slot_frame`]).
    Slot = 3,
}

impl FrameKind {
    fn from_u8(v: u8) -> Option<FrameKind> {
        match v {
            1 => Some(FrameKind::Record),
            2 => Some(FrameKind::Transaction),
            3 => Some(FrameKind::Slot),
            _ => None,
        }
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The stored CRC32.
    pub crc: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// LSN of the frame's first record.
    pub lsn: u64,
    /// `lsn` minus the LSN of the first frame of the write batch this frame was written in.
    /// Recovery uses it to tell a torn last batch from damage to an earlier, fsynced one.
    pub batch_delta: u32,
    /// Number of records in the frame.
    pub count: u16,
    /// What the payload holds.
    pub kind: FrameKind,
    /// Flag bits (byte 23): [`FRAME_FLAG_LZ4`] or none.
    pub flags: u8,
}

impl FrameHeader {
    /// Total bytes the frame occupies on disk.
    pub fn frame_bytes(&self) -> usize {
        FRAME_HEADER_BYTES + self.payload_len as usize
    }

    /// LSN of the first frame of this frame's write batch.
    pub fn batch_first_lsn(&self) -> u64 {
        self.lsn.saturating_sub(u64::from(self.batch_delta))
    }

    /// Whether the payload is stored compressed ([`FRAME_FLAG_LZ4`]).
    pub fn is_compressed(&self) -> bool {
        self.flags & FRAME_FLAG_LZ4 != 0
    }

    /// Parses a header without checking the CRC. `None` when the bytes cannot be a header
    /// (unknown kind, an unknown flag bit, a record with count != 1, a transaction with
    /// count 0, a slot with a count, a flag or a payload shorter than its generation).
    pub fn parse(bytes: &[u8; FRAME_HEADER_BYTES]) -> Option<FrameHeader> {
        let kind = FrameKind::from_u8(bytes[22])?;
        if bytes[23] & !FRAME_FLAGS_KNOWN != 0 {
            return None;
        }
        let count = u16::from_le_bytes([bytes[20], bytes[21]]);
        let payload_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let fits = match kind {
            FrameKind::Record => count == 1,
            FrameKind::Transaction => count != 0,
            FrameKind::Slot => {
                count == 0
                    && bytes[23] == 0
                    && payload_len as usize >= super::slot_frame::SLOT_GENERATION_BYTES
            }
        };
        if !fits {
            return None;
        }
        Some(FrameHeader {
            crc: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            payload_len,
            lsn: u64::from_le_bytes(bytes[8..16].try_into().unwrap_or([0; 8])),
            batch_delta: u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            count,
            kind,
            flags: bytes[23],
        })
    }
}

/// CRC32 of a frame: header bytes 4..24 followed by the payload.
pub fn frame_crc(header_tail: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header_tail);
    h.update(payload);
    h.finalize()
}

/// Appends one frame to `out`: header, then the payload produced by `write_payload`
/// (which must append exactly `payload_len` bytes). The payload is written straight into
/// `out`, so it is copied once, here, and never again. `flags` is byte 23.
#[allow(clippy::too_many_arguments)] // the header's fields, each its own argument
pub fn encode_frame_with(
    out: &mut Vec<u8>,
    kind: FrameKind,
    flags: u8,
    lsn: u64,
    batch_delta: u32,
    count: u16,
    payload_len: u32,
    write_payload: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&batch_delta.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.push(kind as u8);
    out.push(flags);
    write_payload(out);
    debug_assert_eq!(out.len() - start, FRAME_HEADER_BYTES + payload_len as usize);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The largest LSN a record may have: `2^63-1` (LSNs are `1..=2^63-1`, so that the LSN
/// after any record, and any LSN plus a frame's count, fits a `u64`). A segment name or
/// header, or a frame, with an LSN outside that range is corruption, never added to.
pub const MAX_LSN: u64 = (1 << 63) - 1;

/// `lsn + count`, the LSN after a frame of `count` records at `lsn`, if all of its
/// records lie in `1..=MAX_LSN`; `None` otherwise (the frame is corrupt).
pub fn lsn_after(lsn: u64, count: u64) -> Option<u64> {
    let after = lsn.checked_add(count)?;
    (lsn >= 1 && after <= MAX_LSN + 1).then_some(after)
}

/// Appends a single-record frame holding `payload`.
pub fn encode_record(out: &mut Vec<u8>, lsn: u64, batch_delta: u32, payload: &[u8]) {
    encode_stored(out, FrameKind::Record, 0, lsn, batch_delta, 1, payload);
}

/// Payload bytes a transaction of these entries needs.
pub fn transaction_payload_len<B: AsRef<[u8]>>(entries: &[B]) -> usize {
    entries.iter().map(|e| 4 + e.as_ref().len()).sum()
}

/// Appends a transaction frame holding `entries` (at most [`MAX_TXN_ENTRIES`], at least one).
pub fn encode_transaction<B: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    lsn: u64,
    batch_delta: u32,
    entries: &[B],
) {
    debug_assert!(!entries.is_empty() && entries.len() <= MAX_TXN_ENTRIES);
    let payload_len = transaction_payload_len(entries) as u32;
    encode_frame_with(
        out,
        FrameKind::Transaction,
        0,
        lsn,
        batch_delta,
        entries.len() as u16,
        payload_len,
        |o| {
            for e in entries {
                let e = e.as_ref();
                o.extend_from_slice(&(e.len() as u32).to_le_bytes());
                o.extend_from_slice(e);
            }
        },
    );
}

/// Appends a frame whose payload is already laid out as stored: `stored` is a record's
/// bytes or a transaction's entries with their lengths, compressed when `flags` has
/// [`FRAME_FLAG_LZ4`] (see `compress.rs`).
pub fn encode_stored(
    out: &mut Vec<u8>,
    kind: FrameKind,
    flags: u8,
    lsn: u64,
    batch_delta: u32,
    count: u16,
    stored: &[u8],
) {
    encode_frame_with(
        out,
        kind,
        flags,
        lsn,
        batch_delta,
        count,
        stored.len() as u32,
        |o| o.extend_from_slice(stored),
    );
}

/// A transaction's entries laid out as its frame's payload (each a 4-byte little-endian
/// length and its bytes): what [`encode_transaction`] writes, in a buffer of its own.
pub fn transaction_payload<B: AsRef<[u8]>>(entries: &[B]) -> Vec<u8> {
    let mut out = Vec::with_capacity(transaction_payload_len(entries));
    for e in entries {
        let e = e.as_ref();
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// The records a frame's (decompressed) payload holds, in LSN order: the payload itself
/// for a record frame, each entry of a transaction ([`split_transaction`]), none for a
/// slot frame; `None` when a transaction's entries do not fill the frame.
pub fn frame_parts(kind: FrameKind, count: u16, payload: &[u8]) -> Option<Vec<&[u8]>> {
    match kind {
        FrameKind::Record => Some(vec![payload]),
        FrameKind::Transaction => split_transaction(payload, count),
        FrameKind::Slot => Some(Vec::new()),
    }
}

/// Splits a transaction payload into its entries. `None` if the lengths do not add up to
/// exactly `count` entries filling the payload (impossible for a frame whose CRC checked,
/// unless it was written by a buggy writer).
pub fn split_transaction(payload: &[u8], count: u16) -> Option<Vec<&[u8]>> {
    let mut out = Vec::with_capacity(count as usize);
    let mut rest = payload;
    for _ in 0..count {
        if rest.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return None;
        }
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    rest.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 2, b"hello");
        let h = FrameHeader::parse(buf[..24].try_into().unwrap()).unwrap();
        assert_eq!(h.lsn, 7);
        assert_eq!(h.batch_first_lsn(), 5);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.crc, frame_crc(&buf[4..24], &buf[24..]));
    }

    #[test]
    fn transaction_round_trips() {
        let mut buf = Vec::new();
        encode_transaction(&mut buf, 3, 0, &[&b"a"[..], b"", b"ccc"]);
        let h = FrameHeader::parse(buf[..24].try_into().unwrap()).unwrap();
        assert_eq!(h.count, 3);
        let parts = split_transaction(&buf[24..], h.count).unwrap();
        assert_eq!(parts, vec![&b"a"[..], b"", b"ccc"]);
        assert_eq!(transaction_payload(&[&b"a"[..], b"", b"ccc"]), &buf[24..]);
    }

    #[test]
    fn the_lz4_flag_parses_and_unknown_flags_do_not() {
        let mut buf = Vec::new();
        encode_stored(&mut buf, FrameKind::Record, FRAME_FLAG_LZ4, 9, 0, 1, b"xyz");
        assert_eq!(buf[23], 1);
        let h = FrameHeader::parse(buf[..24].try_into().unwrap()).unwrap();
        assert!(h.is_compressed());
        assert_eq!(h.crc, frame_crc(&buf[4..24], &buf[24..]));
        for bit in 1..8 {
            buf[23] = 1 << bit;
            assert_eq!(FrameHeader::parse(buf[..24].try_into().unwrap()), None);
        }
    }
}

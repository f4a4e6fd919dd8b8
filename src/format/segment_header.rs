//! The 32-byte header at the start of every segment file.
//!
//! ```text
//! offset size field
//!  0     8    magic        b"AXWALSEG"
//!  8     4    version      format version, little-endian (1)
//! 12     4    flags        bit 0 REWRITE (see SEGMENT_FLAG_REWRITE), bit 1 COMPRESSED
//!                          (SEGMENT_FLAG_COMPRESSED); bits 2..32 are 0
//! 16     8    first_lsn    LSN of the segment's first record
//! 24     4    log_flags    bit 0 KEEPS_META (see SEGMENT_LOG_KEEPS_META); 0 before it
//! 28     4    crc32        CRC32 of bytes 0..28
//! ```

/// Bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"AXWALSEG";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Size of a segment header in bytes; the first frame starts here.
pub const SEGMENT_HEADER_BYTES: usize = 32;

/// Header flag, bit 0: this segment is a **rewrite**. It replaces the frames at and after
/// its first LSN in the segment before it (an `fdatasync` failed there, and the batch was
/// written again into this fresh segment), so a reader of that earlier segment stops at
/// this segment's first LSN and skips the rest as abandoned. Without the flag, a segment
/// before it that holds frames at or past its first LSN is corruption.
pub const SEGMENT_FLAG_REWRITE: u32 = 1;
/// Header flag, bit 1: frames in this segment may be stored compressed (frame flag
/// [`FRAME_FLAG_LZ4`](super::frame::FRAME_FLAG_LZ4)). Every segment a log with
/// compression on writes to has it (the segment that is current when such a log opens
/// gets it before anything is written to it). A build that does not know it refuses the
/// segment ([`HeaderError::Flags`], `WalError::UnknownSegmentFlags`) instead of reading a
/// compressed frame as damage; a compressed frame in a segment without it is corruption.
pub const SEGMENT_FLAG_COMPRESSED: u32 = 2;
/// The flag bits known before compression (bit 0 only): what older readers accept.
pub const SEGMENT_FLAGS_KNOWN_BEFORE_COMPRESSION: u32 = SEGMENT_FLAG_REWRITE;
/// Every flag bit this build knows. A header with any other bit set was written by a newer
/// format and is refused ([`HeaderError::Flags`]).
pub const SEGMENT_FLAGS_KNOWN: u32 = SEGMENT_FLAG_REWRITE | SEGMENT_FLAG_COMPRESSED;

/// `log_flags` bit 0 (bytes 24..28, which older versions wrote as 0 and never read): the
/// log that wrote this segment keeps a `META` file, written before its first segment. A
/// log without `META` beside such a segment has lost it (recovery refuses it rather than
/// starting afresh, which would forget the slot and the checkpoint). Informational: a
/// reader ignores `log_flags` bits it does not know, and older versions ignore them all.
pub const SEGMENT_LOG_KEEPS_META: u32 = 1;

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version.
    pub version: u32,
    /// Flag bits, a subset of [`SEGMENT_FLAGS_KNOWN`].
    pub flags: u32,
    /// LSN of the segment's first record.
    pub first_lsn: u64,
    /// Bytes 24..28: what the writing log says of itself ([`SEGMENT_LOG_KEEPS_META`]).
    pub log_flags: u32,
}

/// Why a segment header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than 32 bytes.
    Short,
    /// The magic bytes are wrong: not a segment.
    BadMagic,
    /// A version this build does not read.
    Version(u32),
    /// The header's CRC does not match.
    Crc,
    /// Flag bits this build does not know (all the flags found are given).
    Flags(u32),
}

impl SegmentHeader {
    /// Encodes the header of an ordinary segment (no flags).
    pub fn encode(first_lsn: u64) -> [u8; SEGMENT_HEADER_BYTES] {
        SegmentHeader::encode_with_flags(first_lsn, 0)
    }

    /// Encodes a header with the given flag bits (e.g. [`SEGMENT_FLAG_REWRITE`]) and no
    /// `log_flags`.
    pub fn encode_with_flags(first_lsn: u64, flags: u32) -> [u8; SEGMENT_HEADER_BYTES] {
        SegmentHeader::encode_full(first_lsn, flags, 0)
    }

    /// Encodes a header with `flags` and `log_flags` (the log's writer sets
    /// [`SEGMENT_LOG_KEEPS_META`]).
    pub fn encode_full(first_lsn: u64, flags: u32, log_flags: u32) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&first_lsn.to_le_bytes());
        b[24..28].copy_from_slice(&log_flags.to_le_bytes());
        let crc = crc32fast::hash(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header: length, magic, CRC, version, then flags.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        SegmentHeader::decode_knowing(bytes, SEGMENT_FLAGS_KNOWN)
    }

    /// [`SegmentHeader::decode`] by a reader that knows only the flag bits `known` (e.g.
    /// [`SEGMENT_FLAGS_KNOWN_BEFORE_COMPRESSION`]: what a build before compression does).
    pub fn decode_knowing(bytes: &[u8], known: u32) -> Result<SegmentHeader, HeaderError> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(HeaderError::Short);
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let le32 =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let version = le32(8);
        if le32(28) != crc32fast::hash(&bytes[0..28]) {
            return Err(HeaderError::Crc);
        }
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let flags = le32(12);
        if flags & !known != 0 {
            return Err(HeaderError::Flags(flags));
        }
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&bytes[16..24]);
        Ok(SegmentHeader {
            version,
            flags,
            first_lsn: u64::from_le_bytes(lsn),
            log_flags: le32(24),
        })
    }

    /// Whether the log that wrote it keeps a `META` file ([`SEGMENT_LOG_KEEPS_META`]).
    pub fn keeps_meta(&self) -> bool {
        self.log_flags & SEGMENT_LOG_KEEPS_META != 0
    }

    /// Whether its frames may be compressed ([`SEGMENT_FLAG_COMPRESSED`]).
    pub fn allows_compressed(&self) -> bool {
        self.flags & SEGMENT_FLAG_COMPRESSED != 0
    }

    /// Whether the segment is a rewrite ([`SEGMENT_FLAG_REWRITE`]).
    pub fn is_rewrite(&self) -> bool {
        self.flags & SEGMENT_FLAG_REWRITE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_flags_round_trip_as_in_the_example_of_docs_format_md() {
        let b = SegmentHeader::encode_full(1, 0, SEGMENT_LOG_KEEPS_META);
        assert_eq!(&b[24..32], &[1, 0, 0, 0, 0x03, 0xa6, 0x37, 0xcf]);
        let h = SegmentHeader::decode(&b).unwrap();
        assert!(h.keeps_meta() && !h.is_rewrite());
        assert!(!SegmentHeader::decode(&SegmentHeader::encode(1))
            .unwrap()
            .keeps_meta());
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let b = SegmentHeader::encode(42);
        let h = SegmentHeader::decode(&b).unwrap();
        assert_eq!((h.first_lsn, h.flags, h.is_rewrite()), (42, 0, false));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::BadMagic));
        let mut bad = b;
        bad[17] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Crc));
    }

    #[test]
    fn rewrite_flag_round_trips_and_unknown_flags_are_refused() {
        let b = SegmentHeader::encode_with_flags(7, SEGMENT_FLAG_REWRITE);
        assert_eq!(&b[12..16], &[1, 0, 0, 0]);
        let h = SegmentHeader::decode(&b).unwrap();
        assert_eq!((h.first_lsn, h.flags, h.is_rewrite()), (7, 1, true));
        let b = SegmentHeader::encode_with_flags(7, SEGMENT_FLAG_REWRITE | SEGMENT_FLAG_COMPRESSED);
        let h = SegmentHeader::decode(&b).unwrap();
        assert!(h.is_rewrite() && h.allows_compressed());
        assert_eq!(
            SegmentHeader::decode_knowing(&b, SEGMENT_FLAGS_KNOWN_BEFORE_COMPRESSION),
            Err(HeaderError::Flags(3))
        );
        let b = SegmentHeader::encode_with_flags(7, SEGMENT_FLAG_REWRITE | 1 << 31);
        assert_eq!(
            SegmentHeader::decode(&b),
            Err(HeaderError::Flags(1 | 1 << 31))
        );
    }
}

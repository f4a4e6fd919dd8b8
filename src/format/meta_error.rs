//! `MetaFormatError`: why a metadata file (`META`) was refused, shared by the encoding of
//! its fixed part (`format/meta.rs`) and of its cursors (`format/meta_cursors.rs`).

/// Why a metadata file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaFormatError {
    /// Fewer bytes than the fixed part, or than the slot length says.
    Short {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// More bytes than the slot length says: not a file this build wrote.
    Trailing {
        /// Bytes present.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The magic bytes are wrong: not a metadata file.
    BadMagic,
    /// A version this build does not read.
    Version(u32),
    /// The slot is longer than the bound the reader (or writer) was given.
    SlotTooLarge {
        /// Slot length in bytes.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// The CRC does not match.
    Crc,
    /// The CRC matches but a field holds a value this version never writes.
    Invalid(&'static str),
}

impl MetaFormatError {
    /// Byte offset of the field the check failed on.
    pub fn offset(&self) -> u64 {
        match self {
            MetaFormatError::Short { len, .. } => *len as u64,
            MetaFormatError::Trailing { expected, .. } => *expected as u64,
            MetaFormatError::BadMagic => 0,
            MetaFormatError::Version(_) => 8,
            MetaFormatError::SlotTooLarge { .. } => 52,
            MetaFormatError::Crc | MetaFormatError::Invalid(_) => 0,
        }
    }
}

impl std::fmt::Display for MetaFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaFormatError::Short { len, needed } => {
                write!(f, "metadata file of {len} bytes is short of {needed}")
            }
            MetaFormatError::Trailing { len, expected } => {
                write!(f, "metadata file of {len} bytes; its fields say {expected}")
            }
            MetaFormatError::BadMagic => f.write_str("not an actix-wal metadata file (bad magic)"),
            MetaFormatError::Version(v) => write!(f, "metadata format version {v}"),
            MetaFormatError::SlotTooLarge { len, max } => {
                write!(f, "metadata slot of {len} bytes exceeds {max}")
            }
            MetaFormatError::Crc => f.write_str("metadata CRC mismatch"),
            MetaFormatError::Invalid(what) => write!(f, "invalid metadata field: {what}"),
        }
    }
}

//! The on-disk format: frames, segment headers and the payload codec. No actix and no
//! file I/O here: these functions turn values into bytes and back. `docs/format.md`
//! describes the same layout byte by byte.

pub mod codec;
mod codec_limits;
pub mod compress;
pub(crate) mod crc_combine;
pub mod frame;
pub mod meta;
pub mod meta_cursors;
mod meta_error;
pub mod segment_header;
pub mod slot_frame;

pub use compress::Compression;
pub use frame::{FrameHeader, FrameKind, FRAME_FLAG_LZ4, FRAME_HEADER_BYTES, MAX_LSN};
pub use segment_header::{
    SegmentHeader, FORMAT_VERSION, SEGMENT_FLAGS_KNOWN_BEFORE_COMPRESSION, SEGMENT_FLAG_COMPRESSED,
    SEGMENT_FLAG_REWRITE, SEGMENT_HEADER_BYTES, SEGMENT_LOG_KEEPS_META, SEGMENT_MAGIC,
};

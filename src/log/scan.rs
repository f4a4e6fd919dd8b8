//! Walking the frames of one segment, and telling a torn tail from corruption.
//!
//! The rules, in one place (docs/format.md explains them):
//! - Frames follow each other with contiguous LSNs from the segment's first LSN.
//! - In a segment that is not the last, the frames must reach the next segment's first LSN
//!   exactly; a bad frame or the end of the frames *before* it is corruption. What follows
//!   depends on the next segment's header: if it is a **rewrite** (flag bit 0: an fsync
//!   failed here and the batch was written again into it), the rest is abandoned, not
//!   read. Otherwise the rest must be zeros: a frame at or past that LSN, or any other
//!   data, would be shadowed by the next segment, and is corruption.
//! - In the last segment, zeros or end of file after a frame end the log cleanly. Non-zero
//!   bytes that are not a valid frame are a torn tail when no valid frame of a *later* write
//!   batch follows them (only the last batch can be torn by a crash: the next batch is
//!   written only after it is fsynced); if one does, the damage is corruption.

use super::segment::{check_header, read_header, SegmentFile};
use crate::error::WalError;
use crate::format::frame::frame_crc;
use crate::format::{FrameHeader, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::storage::{read_all, Storage};

/// The largest segment file there can be (`segment_size_bytes` is bounded by it): readers
/// hold one segment in memory at a time, so this bounds their memory too.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// A segment read into memory with its header checked.
#[derive(Debug)]
pub struct SegmentData {
    /// Which file this is.
    pub file: SegmentFile,
    /// The whole file.
    pub data: Vec<u8>,
}

impl SegmentData {
    /// Reads a segment and checks its header against its name.
    pub fn load(storage: &dyn Storage, file: &SegmentFile) -> Result<SegmentData, WalError> {
        let f = storage
            .open(&file.path, false)
            .map_err(|e| WalError::io("open", &file.path, e))?;
        // A segment is never larger than MAX_SEGMENT_BYTES; a bigger file is not one of
        // ours, and reading it whole could take all memory.
        let size = f
            .size_bytes()
            .map_err(|e| WalError::io("stat", &file.path, e))?;
        if size > MAX_SEGMENT_BYTES {
            return Err(WalError::Corruption {
                segment: file.path.clone(),
                offset: 0,
                reason: format!(
                    "file of {size} bytes is larger than any segment ({MAX_SEGMENT_BYTES} bytes at most)"
                ),
            });
        }
        let data = read_all(f.as_ref()).map_err(|e| WalError::io("read", &file.path, e))?;
        check_header(file, &data)?;
        Ok(SegmentData {
            file: file.clone(),
            data,
        })
    }
}

/// How the frames of a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Zeros or end of file right after the last frame.
    Clean,
    /// Damage after the last good frame of the last segment, explained by a torn last
    /// write batch: `garbage_bytes` from the end of the last frame to the last non-zero byte.
    TornTail {
        /// Bytes of damage after the last whole frame.
        garbage_bytes: u64,
    },
    /// The next segment's first LSN was reached and that segment is a rewrite: the rest of
    /// this segment is abandoned.
    Abandoned,
}

/// The segment after the one being scanned, as far as the scan needs it.
#[derive(Debug, Clone)]
pub struct NextSegment {
    /// Its first LSN: the scanned segment's frames must end exactly there.
    pub first_lsn: u64,
    /// Whether its header has the REWRITE flag (the scanned segment's frames from
    /// `first_lsn` on are abandoned), or why its header could not be read.
    pub rewrite: Result<bool, WalError>,
}

impl NextSegment {
    /// The segment after `segments[i]`, if there is one, with its header read (32 bytes).
    /// A header that cannot be read is kept as the error: it only matters if the scanned
    /// segment holds data past `first_lsn` (else the error comes back when that segment
    /// is itself read), and then it is the error reported.
    pub fn after(storage: &dyn Storage, segments: &[SegmentFile], i: usize) -> Option<Self> {
        let next = segments.get(i + 1)?;
        Some(NextSegment {
            first_lsn: next.first_lsn,
            rewrite: read_header(storage, next).map(|h| h.is_rewrite()),
        })
    }
}

/// A good frame found by [`SegmentCursor`].
#[derive(Debug, Clone, Copy)]
pub struct FrameAt {
    /// Offset of the frame header in the segment.
    pub offset: usize,
    /// The frame's header.
    pub header: FrameHeader,
}

impl FrameAt {
    /// The frame's payload within the segment's bytes.
    pub fn payload<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let start = self.offset + FRAME_HEADER_BYTES;
        &data[start..start + self.header.payload_len as usize]
    }
}

/// Walks the frames of one segment.
#[derive(Debug)]
pub struct SegmentCursor {
    /// Offset of the next frame.
    pub pos: usize,
    /// LSN the next frame must have.
    pub next_lsn: u64,
    /// The next segment, `None` for the last segment.
    limit: Option<NextSegment>,
    max_record_bytes: u64,
    /// How the segment ended, once it has.
    pub end: Option<SegmentEnd>,
}

enum Decoded {
    Good(FrameHeader),
    Bad(&'static str),
}

fn decode_at(data: &[u8], pos: usize, max_record_bytes: u64) -> Decoded {
    let Some(hdr) = data.get(pos..pos + FRAME_HEADER_BYTES) else {
        return Decoded::Bad("partial frame header");
    };
    let hdr: &[u8; FRAME_HEADER_BYTES] = match hdr.try_into() {
        Ok(h) => h,
        Err(_) => return Decoded::Bad("partial frame header"),
    };
    let Some(h) = FrameHeader::parse(hdr) else {
        return Decoded::Bad("invalid frame header");
    };
    if u64::from(h.payload_len) > max_record_bytes {
        return Decoded::Bad("frame length exceeds max_record_bytes");
    }
    let end = pos + h.frame_bytes();
    if end > data.len() {
        return Decoded::Bad("frame extends past the end of the file");
    }
    if frame_crc(&hdr[4..], &data[pos + FRAME_HEADER_BYTES..end]) != h.crc {
        return Decoded::Bad("frame CRC mismatch");
    }
    Decoded::Good(h)
}

/// Index one past the last non-zero byte of `data`, or 0 if it is all zeros.
pub fn nonzero_extent(data: &[u8]) -> usize {
    const CHUNK: usize = 256;
    let mut end = data.len();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &data[start..end];
        if chunk.iter().fold(0u8, |a, &b| a | b) != 0 {
            return start + chunk.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        }
        end = start;
    }
    0
}

/// Whether a valid frame of a write batch that began after `lsn` starts in `data[from..to]`.
fn later_batch_frame(data: &[u8], from: usize, to: usize, lsn: u64, max_record_bytes: u64) -> bool {
    let mut p = from;
    // `to` is one past the last non-zero byte, and a frame may end in zeros: its header's
    // reserved byte is 0, and an empty or all-zero payload adds none. Its kind byte (at +22,
    // never 0) is its last non-zero byte at the latest, so frames can start up to `to - 23`.
    // (The bytes up to `data.len()` past `to` are zeros; `decode_at` checks the bounds.)
    while p + FRAME_HEADER_BYTES - 1 <= to {
        // Cheap filters before the CRC: LSN in a plausible range after `lsn`.
        let l = u64::from_le_bytes(data[p + 8..p + 16].try_into().unwrap_or([0; 8]));
        if l > lsn && l - lsn < (1 << 40) {
            if let Decoded::Good(h) = decode_at(data, p, max_record_bytes) {
                if h.batch_first_lsn() > lsn {
                    return true;
                }
            }
        }
        p += 1;
    }
    false
}

impl SegmentCursor {
    /// A cursor at the first frame of a segment whose first LSN is `first_lsn`; `limit` is
    /// the next segment (`None` for the last segment).
    pub fn new(first_lsn: u64, limit: Option<NextSegment>, max_record_bytes: u64) -> SegmentCursor {
        SegmentCursor {
            pos: SEGMENT_HEADER_BYTES,
            next_lsn: first_lsn,
            limit,
            max_record_bytes,
            end: None,
        }
    }

    /// The next good frame, `Ok(None)` once the segment has ended (see [`Self::end`]), or
    /// the corruption that stops it.
    pub fn next_frame(&mut self, seg: &SegmentData) -> Result<Option<FrameAt>, WalError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let data = &seg.data;
        let corrupt = |offset: usize, reason: String| WalError::Corruption {
            segment: seg.file.path.clone(),
            offset: offset as u64,
            reason,
        };
        let limit = self.limit.as_ref().map(|n| n.first_lsn);
        let at_limit = limit == Some(self.next_lsn);
        if at_limit
            && self
                .limit
                .as_ref()
                .is_some_and(|n| matches!(n.rewrite, Ok(true)))
        {
            self.end = Some(SegmentEnd::Abandoned);
            return Ok(None);
        }
        // Data here, at the next segment's first LSN, when that segment is not a rewrite:
        // the next segment would shadow it. (If its header could not be read, that error.)
        let overlap = |what: String| match self.limit.as_ref().map(|n| &n.rewrite) {
            Some(Err(e)) => e.clone(),
            _ => corrupt(
                self.pos,
                format!(
                    "{what} where the next segment begins (LSN {}), and that segment is not a \
                     rewrite: it would shadow the records from here on",
                    self.next_lsn
                ),
            ),
        };
        match decode_at(data, self.pos, self.max_record_bytes) {
            Decoded::Good(h) => {
                if h.lsn != self.next_lsn {
                    return Err(corrupt(
                        self.pos,
                        format!("expected LSN {}, found {}", self.next_lsn, h.lsn),
                    ));
                }
                let after = h.lsn + u64::from(h.count);
                if at_limit {
                    return Err(overlap(format!("frame of LSN {}", h.lsn)));
                }
                if let Some(limit) = limit {
                    if after > limit {
                        return Err(corrupt(
                            self.pos,
                            format!(
                                "frame of LSNs {}..{} crosses the next segment's first LSN {limit}",
                                h.lsn, after
                            ),
                        ));
                    }
                }
                let frame = FrameAt {
                    offset: self.pos,
                    header: h,
                };
                self.pos += h.frame_bytes();
                self.next_lsn = after;
                Ok(Some(frame))
            }
            Decoded::Bad(reason) => {
                let rest = data.get(self.pos..).unwrap_or(&[]);
                let extent = nonzero_extent(rest);
                match limit {
                    Some(_) if extent == 0 && at_limit => {
                        self.end = Some(SegmentEnd::Clean);
                        Ok(None)
                    }
                    Some(_) if at_limit => Err(overlap(format!("non-zero bytes ({reason})"))),
                    Some(limit) if extent == 0 => Err(corrupt(
                        self.pos,
                        format!(
                            "segment ends at LSN {} but the next segment starts at {limit}",
                            self.next_lsn
                        ),
                    )),
                    Some(_) => Err(corrupt(self.pos, reason.to_string())),
                    None if extent == 0 => {
                        self.end = Some(SegmentEnd::Clean);
                        Ok(None)
                    }
                    None => {
                        let to = self.pos + extent;
                        if later_batch_frame(
                            data,
                            self.pos + 1,
                            to,
                            self.next_lsn,
                            self.max_record_bytes,
                        ) {
                            Err(corrupt(
                                self.pos,
                                format!(
                                    "{reason}, followed by valid frames of a later write batch"
                                ),
                            ))
                        } else {
                            self.end = Some(SegmentEnd::TornTail {
                                garbage_bytes: extent as u64,
                            });
                            Ok(None)
                        }
                    }
                }
            }
        }
    }
}

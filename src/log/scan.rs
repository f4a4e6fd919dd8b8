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
//!   written only after it is fsynced); if one does, the damage is corruption. That search
//!   is in `tail.rs`.
//!
//! A segment is read through a window of [`READ_WINDOW_BYTES`] (or one frame, if larger)
//! refilled with positional reads, never whole.

use super::segment::{check_header, read_header, SegmentFile};
use super::tail::later_batch_frame;
use crate::error::WalError;
use crate::format::{FrameHeader, FrameKind, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::storage::{Storage, StorageFile};
use std::io;

/// The largest segment file there can be (`segment_size_bytes` is bounded by it); a larger
/// file named like a segment is refused as damage without being read.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// Bytes a reader holds of a segment at a time: the window is refilled with positional
/// reads as the walk moves on, and grows only to hold a single larger frame.
pub const READ_WINDOW_BYTES: usize = 4 << 20;

/// A segment open for reading, its header checked, read through a window of its bytes.
#[derive(Debug)]
pub struct SegmentData {
    /// Which file this is.
    pub file: SegmentFile,
    /// The open file.
    handle: Box<dyn StorageFile>,
    /// The file's size when it was opened: everything past it reads as absent.
    size_bytes: u64,
    /// Offset in the file of `window[0]`.
    window_offset: u64,
    /// Bytes `window_offset..window_offset + held` of the file, at the start of a buffer of
    /// `READ_WINDOW_BYTES`, or of one frame when a frame is larger.
    window: Vec<u8>,
    /// How many bytes of `window` hold the file's.
    held: usize,
    /// Whether its header has the `COMPRESSED` flag: only then may a frame in it be
    /// compressed (a compressed frame elsewhere is corruption, not a torn write: its CRC
    /// checked).
    compressed_ok: bool,
}

impl SegmentData {
    /// Opens a segment and checks its header against its name.
    pub fn load(storage: &dyn Storage, file: &SegmentFile) -> Result<SegmentData, WalError> {
        let handle = storage
            .open(&file.path, false)
            .map_err(|e| WalError::io("open", &file.path, e))?;
        // A segment is never larger than MAX_SEGMENT_BYTES; a bigger file is not one of ours.
        let size = handle
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
        let mut seg = SegmentData {
            file: file.clone(),
            handle,
            size_bytes: size,
            window_offset: 0,
            window: Vec::new(),
            held: 0,
            compressed_ok: false,
        };
        let head = seg.bytes(0, SEGMENT_HEADER_BYTES.min(size as usize))?;
        seg.compressed_ok = check_header(file, head)?.allows_compressed();
        Ok(seg)
    }

    /// The file's size in bytes (when it was opened).
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Bytes `offset..offset + len` of the file, which must lie within it. Served from the
    /// window, which is refilled from `offset` (a positional read of `READ_WINDOW_BYTES`, or
    /// `len` if larger) when it does not hold them.
    pub fn bytes(&mut self, offset: u64, len: usize) -> Result<&[u8], WalError> {
        let end = offset + len as u64;
        if end > self.size_bytes {
            return Err(WalError::io(
                "read",
                &self.file.path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("bytes {offset}..{end} past the end ({})", self.size_bytes),
                ),
            ));
        }
        if offset < self.window_offset || end > self.window_offset + self.held as u64 {
            let want = (self.size_bytes - offset).min(READ_WINDOW_BYTES.max(len) as u64) as usize;
            let shrink = self.window.len() > 2 * READ_WINDOW_BYTES && want <= READ_WINDOW_BYTES;
            if self.window.len() < want || shrink {
                // Zeroed by the allocator; a large frame's buffer is given back once passed.
                self.window = vec![0; want.max(READ_WINDOW_BYTES.min(self.size_bytes as usize))];
            }
            self.held = 0;
            self.window_offset = offset;
            self.handle
                .read_exact_at(&mut self.window[..want], offset)
                .map_err(|e| WalError::io("read", &self.file.path, e))?;
            self.held = want;
        }
        let start = (offset - self.window_offset) as usize;
        Ok(&self.window[start..start + len])
    }

    /// Drops the bytes held, so the next read goes to the file again: a live writer may
    /// have written more since they were read.
    pub fn forget_window(&mut self) {
        self.held = 0;
    }

    /// The payload of a frame [`SegmentCursor::next_frame`] just returned (still in the
    /// window, so this reads nothing).
    pub fn payload(&mut self, frame: &FrameAt) -> Result<&[u8], WalError> {
        let start = frame.offset as u64 + FRAME_HEADER_BYTES as u64;
        self.bytes(start, frame.header.payload_len as usize)
    }

    /// One past the last non-zero byte at or after `from`, or `from` if there is none:
    /// reads backwards from the end in windows.
    pub fn nonzero_end(&mut self, from: u64) -> Result<u64, WalError> {
        let mut end = self.size_bytes;
        while end > from {
            let start = end.saturating_sub(READ_WINDOW_BYTES as u64).max(from);
            let extent = nonzero_extent(self.bytes(start, (end - start) as usize)?);
            if extent > 0 {
                return Ok(start + extent as u64);
            }
            end = start;
        }
        Ok(from)
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
    /// The offset at which damage followed by a later batch's frame was read again from
    /// the file (at most once per offset; see [`SegmentCursor::next_frame`]).
    reread_at: Option<usize>,
    /// Whether it stopped at a frame whose LSNs lie past [`crate::format::MAX_LSN`]:
    /// corruption that no salvage may cut away (the LSN after the cut could be out of
    /// range too), so recovery refuses it under every policy.
    pub past_max_lsn: bool,
}

enum Decoded {
    Good(FrameHeader),
    /// Not a whole frame: torn, or damage (which, is for the caller to say).
    Bad(&'static str),
    /// A frame whose CRC checked but which breaks a rule of the format: corruption
    /// wherever it is (no crash writes a frame whose CRC checks).
    Invalid(String),
}

fn decode_at(seg: &mut SegmentData, pos: u64, max_record_bytes: u64) -> Result<Decoded, WalError> {
    let header_end = pos + FRAME_HEADER_BYTES as u64;
    if header_end > seg.size_bytes() {
        return Ok(Decoded::Bad("partial frame header"));
    }
    let hdr: [u8; FRAME_HEADER_BYTES] = match seg.bytes(pos, FRAME_HEADER_BYTES)?.try_into() {
        Ok(h) => h,
        Err(_) => return Ok(Decoded::Bad("partial frame header")),
    };
    let Some(h) = FrameHeader::parse(&hdr) else {
        return Ok(Decoded::Bad("invalid frame header"));
    };
    let end = header_end + u64::from(h.payload_len);
    if u64::from(h.payload_len) > max_record_bytes {
        // Whole and intact, it was written so: the log was written with a larger limit,
        // and cutting it as torn would lose an acknowledged record.
        let whole = end <= seg.size_bytes();
        if whole && crc_in_pieces(seg, pos + 4, h.frame_bytes() - 4)? == h.crc {
            return Ok(Decoded::Invalid(format!(
                "an intact frame with {} payload bytes, more than max_record_bytes ({max_record_bytes}): \
                 the log was written with a larger max_record_bytes; open it with that",
                h.payload_len
            )));
        }
        return Ok(Decoded::Bad("frame length exceeds max_record_bytes"));
    }
    if end > seg.size_bytes() {
        return Ok(Decoded::Bad("frame extends past the end of the file"));
    }
    // The CRC covers header bytes 4..24 and the payload.
    let compressed_ok = seg.compressed_ok;
    let frame = seg.bytes(pos, h.frame_bytes())?;
    if crc32fast::hash(&frame[4..]) != h.crc {
        return Ok(Decoded::Bad("frame CRC mismatch"));
    }
    if h.is_compressed() {
        if !compressed_ok {
            return Ok(Decoded::Invalid(
                "compressed frame in a segment whose header lacks the COMPRESSED flag".into(),
            ));
        }
        // Its decompressed length, checked as a payload's length is (the block itself is
        // decompressed where the payload is read: replay, LogReader, reads).
        let stored = &frame[FRAME_HEADER_BYTES..];
        if let Err(reason) = crate::format::compress::raw_len(stored, max_record_bytes) {
            return Ok(Decoded::Invalid(reason));
        }
    }
    Ok(Decoded::Good(h))
}

/// The CRC of bytes `offset..offset + len` of the segment, read a window at a time (a
/// frame longer than `max_record_bytes` is never held whole).
fn crc_in_pieces(seg: &mut SegmentData, offset: u64, len: usize) -> Result<u32, WalError> {
    let mut crc = crc32fast::Hasher::new();
    let mut done = 0;
    while done < len {
        let piece = (len - done).min(READ_WINDOW_BYTES);
        crc.update(seg.bytes(offset + done as u64, piece)?);
        done += piece;
    }
    Ok(crc.finalize())
}

/// Index one past the last non-zero byte of `data`, or 0 if it is all zeros.
pub fn nonzero_extent(data: &[u8]) -> usize {
    // Blocks compared with a zero block (a `memcmp`), from the end; then one block byte-wise.
    const CHUNK: usize = 4096;
    static ZEROS: [u8; CHUNK] = [0; CHUNK];
    let mut end = data.len();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &data[start..end];
        if chunk != &ZEROS[..chunk.len()] {
            return start + chunk.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        }
        end = start;
    }
    0
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
            reread_at: None,
            past_max_lsn: false,
        }
    }

    /// The next good frame, `Ok(None)` once the segment has ended (see [`Self::end`]), or
    /// the corruption that stops it.
    pub fn next_frame(&mut self, seg: &mut SegmentData) -> Result<Option<FrameAt>, WalError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let corrupt = |seg: &SegmentData, offset: usize, reason: String| WalError::Corruption {
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
        let overlap = |seg: &SegmentData, pos: usize, next_lsn: u64, what: String| match self
            .limit
            .as_ref()
            .map(|n| &n.rewrite)
        {
            Some(Err(e)) => e.clone(),
            _ => corrupt(
                seg,
                pos,
                format!(
                    "{what} where the next segment begins (LSN {next_lsn}), and that segment is \
                     not a rewrite: it would shadow the records from here on"
                ),
            ),
        };
        match decode_at(seg, self.pos as u64, self.max_record_bytes)? {
            Decoded::Invalid(reason) => Err(corrupt(seg, self.pos, reason)),
            Decoded::Good(h) => {
                if h.lsn != self.next_lsn {
                    return Err(corrupt(
                        seg,
                        self.pos,
                        format!("expected LSN {}, found {}", self.next_lsn, h.lsn),
                    ));
                }
                let Some(after) = crate::format::frame::lsn_after(h.lsn, u64::from(h.count)) else {
                    self.past_max_lsn = true;
                    return Err(corrupt(
                        seg,
                        self.pos,
                        format!(
                            "frame of {} records at LSN {} reaches past the largest LSN {}",
                            h.count,
                            h.lsn,
                            crate::format::MAX_LSN
                        ),
                    ));
                };
                // A slot frame takes no LSN: one written after the segment's last record
                // ends it at the next segment's first LSN and is read here, not shadowed.
                if at_limit && h.kind != FrameKind::Slot {
                    return Err(overlap(
                        seg,
                        self.pos,
                        self.next_lsn,
                        format!("frame of LSN {}", h.lsn),
                    ));
                }
                if let Some(limit) = limit {
                    if after > limit {
                        return Err(corrupt(
                            seg,
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
                if self.limit.is_none() && self.reread_at == Some(self.pos) {
                    // Read again from the file (below) and still damaged, with a later
                    // batch's frame known to follow: the search is not run twice.
                    return Err(corrupt(
                        seg,
                        self.pos,
                        format!("{reason}, followed by valid frames of a later write batch"),
                    ));
                }
                let extent = (seg.nonzero_end(self.pos as u64)? - self.pos as u64) as usize;
                match limit {
                    Some(_) if extent == 0 && at_limit => {
                        self.end = Some(SegmentEnd::Clean);
                        Ok(None)
                    }
                    Some(_) if at_limit => Err(overlap(
                        seg,
                        self.pos,
                        self.next_lsn,
                        format!("non-zero bytes ({reason})"),
                    )),
                    Some(limit) if extent == 0 => Err(corrupt(
                        seg,
                        self.pos,
                        format!(
                            "segment ends at LSN {} but the next segment starts at {limit}",
                            self.next_lsn
                        ),
                    )),
                    Some(_) => Err(corrupt(seg, self.pos, reason.to_string())),
                    None if extent == 0 => {
                        self.end = Some(SegmentEnd::Clean);
                        Ok(None)
                    }
                    None => {
                        let to = self.pos + extent;
                        if later_batch_frame(
                            seg,
                            self.pos as u64 + 1,
                            to as u64,
                            self.next_lsn,
                            self.max_record_bytes,
                        )? {
                            // A reader beside a live writer: the bytes here may have been
                            // read (into the window) before the writer finished this batch,
                            // and the later batch's frame after it finished. A later batch
                            // is written only once this one is whole, so read here again,
                            // from the file, once: still damaged, it is corruption (the
                            // look-ahead is not repeated; its answer stands).
                            if self.reread_at != Some(self.pos) {
                                self.reread_at = Some(self.pos);
                                seg.forget_window();
                                return self.next_frame(seg);
                            }
                            Err(corrupt(
                                seg,
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

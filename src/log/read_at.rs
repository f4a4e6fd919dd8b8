//! Reading records of the open log by LSN, through the [read index](super::index): look up
//! the nearest entry at or below the LSN, read the span from there with one positional
//! read (through a segment handle kept open between reads, `handles.rs`), walk the frame
//! headers forward to the LSN, check the CRC of every frame whose records are returned,
//! and note where each record lies in the spans read (`records_read.rs`): whoever takes
//! the records copies them out.
//! No actix here; `actors/reader.rs` calls it on the caller's thread (bytes in memory
//! only) and on the reader threads.

use super::index::{SharedIndex, Span, INDEX_STRIDE_BYTES};
use super::reader::{Record, TxnPosition};
use super::records_read::{cost_bytes, RecordAt, RecordsRead};
use super::segment::segment_name;
use crate::error::WalError;
use crate::format::compress::frame_payload;
use crate::format::frame::frame_parts;
use crate::format::{FrameHeader, FrameKind, FRAME_HEADER_BYTES};
use crate::lsn::Lsn;
use crate::storage::{Storage, StorageFile};
use std::io;
use std::ops::Range;
use std::path::Path;

/// The largest `max_bytes` a range read accepts. One call holds about twice its
/// `max_bytes` at most: the spans read (`max_bytes` plus two index strides, or the first
/// record's frame if larger; a read that crosses into the next segment reads a span of
/// each, the later ones within what is left of `max_bytes`, plus two strides each) and the
/// records copied out of them; plus, for a compressed frame, its payload
/// decompressed (at most `max_record_bytes`; the records count against `max_bytes` at
/// their decompressed size). The spans are kept until the records are copied out
/// ([`RecordsRead`]).
pub const MAX_READ_BYTES: usize = 64 << 20;

/// Reads the durable records with LSNs in `lsns`, in order, from the log in `dir`.
///
/// Returns a prefix of the range: it stops before a record that would take the records'
/// [cost](cost_bytes) past `max_bytes`, but always returns at least one record,
/// and it stops at the durable end. `lsns.start` must be readable: below the log's first
/// LSN, removed, or not durable is [`WalError::NotFound`], as is a segment that vanished
/// (a checkpoint removed it) between the lookup and the read. An empty range gives no
/// records. Costs one positional read per segment touched (together `max_bytes` and two
/// strides more per segment at most, or the first record's frame if larger).
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the crate's tests only
pub fn read_records(
    storage: &dyn Storage,
    dir: &Path,
    index: &SharedIndex,
    lsns: Range<u64>,
    max_bytes: usize,
) -> Result<Vec<Record>, WalError> {
    let mut read = RangeRead::new(lsns, max_bytes);
    let source = ReadFrom {
        storage,
        dir,
        index,
        max_record_bytes: super::reader::DEFAULT_MAX_RECORD_BYTES,
    };
    read.run(&source, Wait::Yes)?;
    Ok(read.into_records())
}

/// Where a range read reads: the log's files and read index, and the bound on a frame's
/// payload decompressed (the log's `max_record_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct ReadFrom<'a> {
    /// The file system.
    pub storage: &'a dyn Storage,
    /// The log's directory.
    pub dir: &'a Path,
    /// The log's read index.
    pub index: &'a SharedIndex,
    /// No compressed frame decompresses to more (it is corruption if it claims to).
    pub max_record_bytes: u64,
}

/// Reads that changed generation under them are tried again this many times at most
/// (each change is a checkpoint, a cut or a shutdown), then answer `NotFound`.
const MAX_LOOKUPS: u32 = 64;

/// Whether a read may wait for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Read the ordinary way (a reader thread).
    Yes,
    /// Read only bytes already in memory, and stop where that is not enough (a caller's
    /// own thread, which must not block on the disk).
    No,
}

/// A range read in progress (see [`read_records`]): what is read so far and where it
/// goes on. A caller's thread runs it with [`Wait::No`] and, if it stops short, hands the
/// rest to a reader thread, which goes on from where it stopped (no span is read twice).
#[derive(Debug)]
pub struct RangeRead {
    /// The next LSN wanted.
    next: u64,
    /// The end of the range asked for.
    end: u64,
    /// The budget of the whole read.
    max_bytes: usize,
    /// Cost of the records read so far.
    used: usize,
    /// The records read so far, not copied out yet.
    out: RecordsRead,
    /// Set once the read is complete (a prefix ended, or the range did).
    done: bool,
    /// A buffer to read the first span into instead of one allocated (and zeroed) afresh
    /// ([`RangeRead::with_buffer`]), if not more than twice the span's size.
    spare: Option<Vec<u8>>,
}

/// Why a span read went no further.
enum SpanEnd {
    /// The range goes on in the next span.
    More,
    /// The read is complete.
    Done,
    /// The span is not in memory ([`Wait::No`] only).
    WouldWait,
}

impl RangeRead {
    /// A read of `lsns` holding at most `max_bytes` (see [`read_records`]).
    pub fn new(lsns: Range<u64>, max_bytes: usize) -> RangeRead {
        RangeRead {
            next: lsns.start,
            end: lsns.end,
            max_bytes,
            used: 0,
            out: RecordsRead::default(),
            done: lsns.start >= lsns.end,
            spare: None,
        }
    }

    /// Reads the first span into `buf` (resized to exactly the span, its bytes
    /// overwritten by the read: a buffer a read before this one left,
    /// [`RecordsRead::take_spare`]); one more than twice the span's size is dropped
    /// instead, and a buffer allocated.
    pub fn with_buffer(mut self, buf: Option<Vec<u8>>) -> RangeRead {
        self.spare = buf;
        self
    }

    /// Whether the read is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The records read, once [`RangeRead::is_done`], copied out on the calling thread.
    pub fn into_records(self) -> Vec<Record> {
        self.out.into_records()
    }

    /// The records read, once [`RangeRead::is_done`], to be copied out by whoever takes
    /// them (a subscription, on its own thread: `records_read.rs` says why).
    pub fn into_read(self) -> RecordsRead {
        self.out
    }

    /// Reads on, span by span, until the read is complete or (with [`Wait::No`]) a span
    /// is not in memory; [`RangeRead::is_done`] tells which.
    pub fn run(&mut self, from: &ReadFrom<'_>, wait: Wait) -> Result<(), WalError> {
        while !self.done {
            match self.read_span(from, wait)? {
                SpanEnd::More => {}
                SpanEnd::Done => self.done = true,
                SpanEnd::WouldWait => return Ok(()),
            }
        }
        Ok(())
    }

    /// Looks `next` up, reads its span with one positional read, and takes the records
    /// out of it.
    fn read_span(&mut self, from: &ReadFrom<'_>, wait: Wait) -> Result<SpanEnd, WalError> {
        let (storage, dir, index) = (from.storage, from.dir, from.index);
        let mut lookups = 0u32;
        let (span, buf, path) = loop {
            lookups += 1;
            if lookups > MAX_LOOKUPS {
                // The log changed under every attempt: a storm of checkpoints or cuts.
                return Err(WalError::NotFound {
                    lsn: Lsn(self.next),
                });
            }
            let (span, generation, cached) = {
                // A poisoned lock means a panic while the queue updated it; its data is
                // still the last consistent update (updates are single assignments and
                // pushes).
                let idx = index.read().unwrap_or_else(|p| p.into_inner());
                match idx.locate(self.next, self.end) {
                    // A later span whose frame wanted passes what is left of the budget:
                    // the prefix ends before it (the next read starts with it, whole).
                    Ok(s) if !self.out.is_empty() && s.min_end_offset > self.cap(&s) => {
                        return Ok(SpanEnd::Done)
                    }
                    Ok(s) => (s, idx.generation(), idx.handles().take(s.segment_first_lsn)),
                    Err(WalError::NotFound { .. }) if !self.out.is_empty() => {
                        return Ok(SpanEnd::Done)
                    }
                    Err(e) => return Err(e),
                }
            };
            // One read: from the entry through the frame wanted (whole, even past the
            // cap: the first record of a read is returned whatever its size), and on
            // through the range up to the cap.
            let end_offset = span
                .min_end_offset
                .max(span.want_end_offset.min(self.cap(&span)));
            let path = dir.join(segment_name(span.segment_first_lsn));
            let len = (end_offset - span.start_offset) as usize;
            // Every byte of `buf` is overwritten by the read (a short one is an error, or
            // for `Wait::No` not in memory, and the buffer is not used). The spare is
            // grown to exactly the span (`resize` alone grows by doubling: a 4 MiB spare
            // for a span a little longer became 8 MiB), and not kept for a span of less
            // than half its size (a spare of a large record is not held for small reads).
            let mut buf = match self.spare.take() {
                Some(mut b) if b.capacity() <= len.saturating_mul(2) => {
                    b.truncate(len);
                    b.reserve_exact(len - b.len());
                    b.resize(len, 0);
                    b
                }
                _ => vec![0u8; len],
            };
            let file = match cached {
                Some(f) => f,
                None => open(storage, &path, self.next)?,
            };
            let in_memory = match wait {
                Wait::Yes => {
                    file.read_exact_at(&mut buf, span.start_offset)
                        .map_err(|e| WalError::io("read", &path, e))?;
                    true
                }
                Wait::No => file
                    .read_cached_at(&mut buf, span.start_offset)
                    .map_err(|e| WalError::io("read", &path, e))?,
            };
            // The bytes are good only if no cut or removal came between the lookup and
            // now: the index changes generation before a segment's file changes.
            let idx = index.read().unwrap_or_else(|p| p.into_inner());
            if idx.generation() != generation {
                continue; // the handle (of an older generation) is dropped here
            }
            idx.handles().put(span.segment_first_lsn, file);
            drop(idx);
            if !in_memory {
                return Ok(SpanEnd::WouldWait);
            }
            break (span, buf, path);
        };
        self.take_records(&span, buf, &path, from.max_record_bytes)
    }

    /// Where a read of `span` stops (unless the frame wanted ends past it): what is left
    /// of the budget, and two strides of frames walked past, from the span's start. A
    /// read that crosses into the next segment holds its budget once, not once per
    /// segment.
    fn cap(&self, span: &Span) -> u64 {
        let left = self.max_bytes.min(MAX_READ_BYTES).saturating_sub(self.used);
        span.start_offset + left as u64 + 2 * INDEX_STRIDE_BYTES
    }

    /// Walks the frames of a span read from `span.start_offset`, checks the CRC of every
    /// frame whose records are returned, and notes where the records in the range lie
    /// (keeping the span, and any payload decompressed, until they are copied out).
    fn take_records(
        &mut self,
        span: &Span,
        buf: Vec<u8>,
        path: &Path,
        max_record_bytes: u64,
    ) -> Result<SpanEnd, WalError> {
        // The span goes into `self.out` after the walk, at this index, if a record of it
        // was taken; payloads decompressed go after it, in `inflated` (only those a
        // record was taken from).
        let (span_buf, records_before) = (self.out.next_buf(), self.out.len());
        let mut inflated: Vec<Vec<u8>> = Vec::new();
        let end = self.walk_frames(span, &buf, path, max_record_bytes, span_buf, &mut inflated);
        if self.out.len() > records_before {
            self.out.push_buf(buf);
            for b in inflated {
                self.out.push_buf(b);
            }
        } else {
            debug_assert!(inflated.is_empty(), "kept only when a record was taken");
        }
        end
    }

    /// [`RangeRead::take_records`]'s walk over `buf`, the span (to be kept at index
    /// `span_buf`), decompressed payloads put in `inflated` (to be kept after it).
    fn walk_frames(
        &mut self,
        span: &Span,
        buf: &[u8],
        path: &Path,
        max_record_bytes: u64,
        span_buf: usize,
        inflated: &mut Vec<Vec<u8>>,
    ) -> Result<SpanEnd, WalError> {
        let stop_lsn = self.end.min(span.end_lsn);
        let corrupt = |at: usize, reason: String| WalError::Corruption {
            segment: path.to_path_buf(),
            offset: span.start_offset + at as u64,
            reason,
        };
        let mut pos = 0usize;
        let mut lsn = span.start_lsn;
        let before = self.next;
        while lsn < stop_lsn && pos + FRAME_HEADER_BYTES <= buf.len() {
            let hdr: [u8; FRAME_HEADER_BYTES] = buf[pos..pos + FRAME_HEADER_BYTES]
                .try_into()
                .map_err(|_| corrupt(pos, "partial frame header".into()))?;
            let Some(h) = FrameHeader::parse(&hdr) else {
                return Err(corrupt(pos, "invalid frame header".into()));
            };
            if h.lsn != lsn {
                return Err(corrupt(pos, format!("expected LSN {lsn}, found {}", h.lsn)));
            }
            let frame_end = pos + h.frame_bytes();
            if frame_end > buf.len() {
                break; // past the span read: the range continues in a later span
            }
            let after = lsn + u64::from(h.count);
            if after > self.next {
                let frame = &buf[pos..frame_end];
                if crc32fast::hash(&frame[4..]) != h.crc {
                    return Err(corrupt(pos, "frame CRC mismatch".into()));
                }
                let payload = frame_payload(&h, &frame[FRAME_HEADER_BYTES..], max_record_bytes)
                    .map_err(|reason| corrupt(pos, reason))?;
                // Where the payload lies: in the span, or (compressed) in a buffer of its
                // own, kept only if a record of it is taken.
                let (in_buf, payload_start, payload) = match payload {
                    std::borrow::Cow::Borrowed(p) => (span_buf, pos + FRAME_HEADER_BYTES, p),
                    std::borrow::Cow::Owned(p) => {
                        inflated.push(p);
                        let k = inflated.len() - 1;
                        (span_buf + 1 + k, 0, &inflated[k][..])
                    }
                };
                // A record frame is its payload: no list built for it (one per record).
                let one = [payload];
                let many;
                let parts: &[&[u8]] = if h.kind == FrameKind::Record {
                    &one
                } else {
                    many = frame_parts(h.kind, h.count, payload).ok_or_else(|| {
                        corrupt(pos, "transaction entries do not fill the frame".into())
                    })?;
                    &many
                };
                let mut taken = false;
                for (i, part) in parts.iter().enumerate() {
                    let rec_lsn = lsn + i as u64;
                    if rec_lsn < self.next || rec_lsn >= stop_lsn {
                        continue;
                    }
                    let cost = cost_bytes(part.len());
                    if !self.out.is_empty() && self.used + cost > self.max_bytes {
                        drop_unused(inflated, in_buf, span_buf, taken);
                        return Ok(SpanEnd::Done);
                    }
                    self.used += cost;
                    self.out.push(RecordAt {
                        lsn: rec_lsn,
                        buf: in_buf,
                        // The part is a slice of `payload`: its place in it.
                        start: payload_start + (part.as_ptr().addr() - payload.as_ptr().addr()),
                        len: part.len(),
                        segment_first_lsn: span.segment_first_lsn,
                        frame_offset: span.start_offset + pos as u64,
                        frame_crc: h.crc,
                        txn: (h.kind == FrameKind::Transaction).then_some(TxnPosition {
                            index: i as u16,
                            count: h.count,
                        }),
                    });
                    taken = true;
                    self.next = rec_lsn + 1;
                }
                drop_unused(inflated, in_buf, span_buf, taken);
            }
            pos = frame_end;
            lsn = after;
        }
        if self.next == before {
            return Err(corrupt(
                pos,
                format!("the read index led to no frame holding LSN {}", self.next),
            ));
        }
        if self.next < self.end && lsn >= span.end_lsn {
            // The segment is read to its durable end: the range goes on in the next one.
            return Ok(SpanEnd::More);
        }
        // The range is read, or the span read ended inside the segment: a prefix.
        Ok(SpanEnd::Done)
    }
}

/// Drops the payload just decompressed into `inflated` (its records at `in_buf`, past the
/// span's `span_buf`) when no record of it was `taken`: nothing will copy out of it.
fn drop_unused(inflated: &mut Vec<Vec<u8>>, in_buf: usize, span_buf: usize, taken: bool) {
    if in_buf != span_buf && !taken {
        inflated.pop();
    }
}

/// Opens a segment for reading; one that is gone (removed by a checkpoint after the
/// lookup) is `NotFound { lsn }`, not an I/O error.
fn open(storage: &dyn Storage, path: &Path, lsn: u64) -> Result<Box<dyn StorageFile>, WalError> {
    match storage.open(path, false) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(WalError::NotFound { lsn: Lsn(lsn) }),
        Err(e) => Err(WalError::io("open", path, e)),
    }
}

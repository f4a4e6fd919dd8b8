//! Records out of a durable batch still in memory: what live subscribers
//! ([`crate::Subscription`]) take instead of reading the files while they keep up. The
//! batch holds the very bytes the flusher wrote and fsynced, frame by frame, so each record
//! comes out as a read of the files would give it (its segment, offset and CRC included;
//! a compressed frame decompressed), its payload copied out or sharing the batch's buffer
//! (`shared_record.rs`).

use super::batch::Batch;
use super::reader::TxnPosition;
use super::records_read::RecordAt;
use super::shared_record::{Delivered, Source};
use crate::format::compress::frame_payload;
use crate::format::frame::frame_parts;
use crate::format::{FrameHeader, FrameKind, FRAME_HEADER_BYTES};
use bytes::Bytes;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

/// Appends to `out` the records of `batch` with LSNs in `from..end`, in LSN order (copied
/// out, or sharing the batch's buffer: [`Delivered`]). False when a frame of the batch did
/// not parse (never for a batch the queue encoded): the caller then reads the files.
pub(crate) fn batch_records<T: Delivered>(
    batch: &Arc<Batch>,
    from: u64,
    end: u64,
    out: &mut VecDeque<T>,
) -> bool {
    // The batch's buffer as `Bytes`, made once for the whole batch if asked for.
    let mut shared: Option<Bytes> = None;
    for c in &batch.chunks {
        let mut pos = c.start;
        while pos + FRAME_HEADER_BYTES <= c.end {
            let hdr: Option<&[u8; FRAME_HEADER_BYTES]> =
                batch.buf[pos..pos + FRAME_HEADER_BYTES].try_into().ok();
            let Some(h) = hdr.and_then(FrameHeader::parse) else {
                return false;
            };
            let frame_end = pos + h.frame_bytes();
            if frame_end > c.end {
                return false;
            }
            if h.lsn >= end {
                return true;
            }
            if h.lsn + u64::from(h.count) > from {
                let stored = &batch.buf[pos + FRAME_HEADER_BYTES..frame_end];
                // The queue encoded it within `max_record_bytes`: no bound of its own here.
                let Ok(payload) = frame_payload(&h, stored, u64::MAX) else {
                    return false;
                };
                // Where each record's payload lies in the payload; a record frame is its
                // payload (no list built for it: one per record).
                let one = [(0, payload.len())];
                let many: Vec<(usize, usize)>;
                let parts: &[(usize, usize)] = if h.kind == FrameKind::Record {
                    &one
                } else {
                    let Some(p) = frame_parts(h.kind, h.count, &payload) else {
                        return false;
                    };
                    let base = payload.as_ptr().addr();
                    many = p
                        .iter()
                        .map(|x| (x.as_ptr().addr() - base, x.len()))
                        .collect();
                    &many
                };
                let (mut source, base) = match payload {
                    Cow::Borrowed(_) => (
                        Source::Batch {
                            batch,
                            shared: &mut shared,
                        },
                        pos + FRAME_HEADER_BYTES,
                    ),
                    Cow::Owned(v) => (Source::Inflated(Bytes::from(v)), 0),
                };
                for (i, &(start, len)) in parts.iter().enumerate() {
                    let lsn = h.lsn + i as u64;
                    if lsn < from || lsn >= end {
                        continue;
                    }
                    let at = RecordAt {
                        lsn,
                        buf: 0,
                        start: base + start,
                        len,
                        segment_first_lsn: c.segment_first_lsn,
                        frame_offset: c.offset + (pos - c.start) as u64,
                        frame_crc: h.crc,
                        txn: (h.kind == FrameKind::Transaction).then_some(TxnPosition {
                            index: i as u16,
                            count: h.count,
                        }),
                    };
                    out.push_back(T::of_part(&at, &mut source));
                }
            }
            pos = frame_end;
        }
    }
    true
}

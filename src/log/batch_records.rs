//! Records out of a durable batch still in memory: what live subscribers
//! ([`crate::Subscription`]) take instead of reading the files while they keep up. The
//! batch holds the very bytes the flusher wrote and fsynced, frame by frame, so each record
//! comes out as a read of the files would give it (its segment, offset and CRC included;
//! a compressed frame decompressed).

use super::batch::Batch;
use super::reader::{Record, TxnPosition};
use crate::format::compress::frame_payload;
use crate::format::frame::frame_parts;
use crate::format::{FrameHeader, FrameKind, FRAME_HEADER_BYTES};
use crate::lsn::Lsn;
use std::collections::VecDeque;

/// Appends to `out` the records of `batch` with LSNs in `from..end`, in LSN order. False
/// when a frame of the batch did not parse (never for a batch the queue encoded): the
/// caller then reads the files instead.
pub fn batch_records(batch: &Batch, from: u64, end: u64, out: &mut VecDeque<Record>) -> bool {
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
                let Some(parts) = frame_parts(h.kind, h.count, &payload) else {
                    return false;
                };
                for (i, part) in parts.into_iter().enumerate() {
                    let lsn = h.lsn + i as u64;
                    if lsn < from || lsn >= end {
                        continue;
                    }
                    out.push_back(Record {
                        lsn: Lsn(lsn),
                        payload: part.to_vec(),
                        segment_first_lsn: Lsn(c.segment_first_lsn),
                        frame_offset: c.offset + (pos - c.start) as u64,
                        frame_crc: h.crc,
                        txn: (h.kind == FrameKind::Transaction).then_some(TxnPosition {
                            index: i as u16,
                            count: h.count,
                        }),
                    });
                }
            }
            pos = frame_end;
        }
    }
    true
}

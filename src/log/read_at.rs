//! Reading records of the open log by LSN, through the [read index](super::index): look up
//! the nearest entry at or below the LSN, read the span from there with one positional
//! read, walk the frame headers forward to the LSN, check the CRC of every frame whose
//! records are returned. No actix here; the reader threads (`actors/reader.rs`) call it.

use super::index::{SharedIndex, INDEX_STRIDE_BYTES};
use super::reader::{Record, TxnPosition};
use super::segment::segment_name;
use crate::error::WalError;
use crate::format::frame::split_transaction;
use crate::format::{FrameHeader, FrameKind, FRAME_HEADER_BYTES};
use crate::lsn::Lsn;
use crate::storage::Storage;
use std::io;
use std::ops::Range;
use std::path::Path;

/// The largest `max_bytes` a range read accepts. One call holds about twice its
/// `max_bytes` at most: the span read (`max_bytes` plus two index strides, or the first
/// record's frame if larger) and the records copied out of it.
pub const MAX_READ_BYTES: usize = 64 << 20;

/// Bytes a record counts against a range read's `max_bytes`: its payload and a frame
/// header's worth for the record itself, so many empty records are bounded too.
pub fn record_cost_bytes(r: &Record) -> usize {
    r.payload.len() + FRAME_HEADER_BYTES
}

/// Reads the durable records with LSNs in `lsns`, in order, from the log in `dir`.
///
/// Returns a prefix of the range: it stops before a record that would take the records'
/// [cost](record_cost_bytes) past `max_bytes`, but always returns at least one record,
/// and it stops at the durable end. `lsns.start` must be readable: below the log's first
/// LSN, removed, or not durable is [`WalError::NotFound`], as is a segment that vanished
/// (a checkpoint removed it) between the lookup and the read. An empty range gives no
/// records.
pub fn read_records(
    storage: &dyn Storage,
    dir: &Path,
    index: &SharedIndex,
    lsns: Range<u64>,
    max_bytes: usize,
) -> Result<Vec<Record>, WalError> {
    let mut out: Vec<Record> = Vec::new();
    let mut used = 0usize;
    let mut next = lsns.start;
    while next < lsns.end {
        let span = {
            // A poisoned lock means a panic while the queue updated it; its data is still
            // the last consistent update (updates are single assignments and pushes).
            let idx = index.read().unwrap_or_else(|p| p.into_inner());
            match idx.locate(next, lsns.end) {
                Ok(s) => s,
                Err(WalError::NotFound { .. }) if !out.is_empty() => break,
                Err(e) => return Err(e),
            }
        };
        // One read: from the entry through the frame wanted, and on through the range as
        // far as the budget (and two strides of frames walked past) allows.
        let cap =
            span.start_offset + (max_bytes.min(MAX_READ_BYTES) as u64) + 2 * INDEX_STRIDE_BYTES;
        let end_offset = span.min_end_offset.max(span.want_end_offset.min(cap));
        let path = dir.join(segment_name(span.segment_first_lsn));
        let mut buf = vec![0u8; (end_offset - span.start_offset) as usize];
        pread(storage, &path, &mut buf, span.start_offset, next)?;
        let stop_lsn = lsns.end.min(span.end_lsn);
        let corrupt = |at: usize, reason: String| WalError::Corruption {
            segment: path.clone(),
            offset: span.start_offset + at as u64,
            reason,
        };
        let mut pos = 0usize;
        let mut lsn = span.start_lsn;
        let before = next;
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
                break; // past the span read: the range continues in a later call
            }
            let after = lsn + u64::from(h.count);
            if after > next {
                let frame = &buf[pos..frame_end];
                if crc32fast::hash(&frame[4..]) != h.crc {
                    return Err(corrupt(pos, "frame CRC mismatch".into()));
                }
                let base = Record {
                    lsn: Lsn(lsn),
                    payload: Vec::new(),
                    segment_first_lsn: Lsn(span.segment_first_lsn),
                    frame_offset: span.start_offset + pos as u64,
                    frame_crc: h.crc,
                    txn: None,
                };
                let payload = &frame[FRAME_HEADER_BYTES..];
                let parts = match h.kind {
                    FrameKind::Record => vec![payload],
                    FrameKind::Transaction => {
                        split_transaction(payload, h.count).ok_or_else(|| {
                            corrupt(pos, "transaction entries do not fill the frame".into())
                        })?
                    }
                };
                for (i, part) in parts.into_iter().enumerate() {
                    let rec_lsn = lsn + i as u64;
                    if rec_lsn < next || rec_lsn >= stop_lsn {
                        continue;
                    }
                    let rec = Record {
                        lsn: Lsn(rec_lsn),
                        payload: part.to_vec(),
                        txn: (h.kind == FrameKind::Transaction).then_some(TxnPosition {
                            index: i as u16,
                            count: h.count,
                        }),
                        ..base.clone()
                    };
                    let cost = record_cost_bytes(&rec);
                    if !out.is_empty() && used + cost > max_bytes {
                        return Ok(out);
                    }
                    used += cost;
                    out.push(rec);
                    next = rec_lsn + 1;
                }
            }
            pos = frame_end;
            lsn = after;
        }
        if next == before {
            return Err(corrupt(
                pos,
                format!("the read index led to no frame holding LSN {next}"),
            ));
        }
        if lsn < span.end_lsn && next < lsns.end {
            break; // the span read ended inside the segment: a prefix
        }
    }
    Ok(out)
}

/// One positional read; a segment that is gone (removed by a checkpoint after the lookup)
/// is `NotFound { lsn }`, not an I/O error.
fn pread(
    storage: &dyn Storage,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
    lsn: u64,
) -> Result<(), WalError> {
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let file = match storage.open(path, false) {
        Ok(f) => f,
        Err(e) if gone(&e) => return Err(WalError::NotFound { lsn: Lsn(lsn) }),
        Err(e) => return Err(WalError::io("open", path, e)),
    };
    file.read_exact_at(buf, offset)
        .map_err(|e| WalError::io("read", path, e))
}

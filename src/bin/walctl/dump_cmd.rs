//! `walctl dump`: one line per record (LSN, length, frame CRC, segment, offset, place in
//! its transaction), as text or JSON lines, with the payload in hex or as text when asked.

use super::{walk, Failure, LogArgs};
use serde::Serialize;
use std::fmt;
use std::io::{self, Write};

/// A record as one JSON line.
#[derive(Debug, Serialize)]
struct DumpLine {
    /// The record's LSN.
    lsn: u64,
    /// Payload length in bytes.
    len: usize,
    /// The frame's CRC32, as `0x` and eight hex digits.
    crc: String,
    /// First LSN of the segment holding it.
    segment: u64,
    /// Offset of its frame in that segment.
    offset: u64,
    /// `[index, count]` when the record is part of a transaction.
    txn: Option<[u16; 2]>,
    /// The payload, when asked for (hex, or text with `--utf8`).
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(super) fn dump(
    log: &LogArgs,
    json: bool,
    payload: bool,
    utf8: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let show = |p: &[u8], quoted: bool| -> String {
        match (utf8, quoted) {
            (false, _) => hex(p),
            (true, true) => format!("\"{}\"", String::from_utf8_lossy(p).escape_debug()),
            (true, false) => String::from_utf8_lossy(p).into_owned(),
        }
    };
    walk(log, |r| {
        let lsn = u64::from(r.lsn);
        let res = if json {
            let line = DumpLine {
                lsn,
                len: r.payload.len(),
                crc: format!("{:#010x}", r.frame_crc),
                segment: u64::from(r.segment_first_lsn),
                offset: r.frame_offset,
                txn: r.txn.map(|t| [t.index, t.count]),
                payload: payload.then(|| show(&r.payload, false)),
            };
            serde_json::to_writer(&mut *out, &line)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            let mut line = format!(
                "lsn={lsn} len={} crc={:#010x} segment={} offset={}",
                r.payload.len(),
                r.frame_crc,
                r.segment_first_lsn,
                r.frame_offset
            );
            if let Some(t) = r.txn {
                line.push_str(&format!(" txn={}/{}", t.index, t.count));
            }
            if payload {
                line.push_str(" payload=");
                line.push_str(&show(&r.payload, true));
            }
            writeln!(out, "{line}")
        };
        res.map_err(Failure::output)
    })
    .map(|_| ())
}

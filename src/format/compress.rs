//! Compressed frame payloads: the [`Compression`] setting, and LZ4 in and out, bounded.
//!
//! A compressed frame (frame flag [`FRAME_FLAG_LZ4`](super::frame::FRAME_FLAG_LZ4)) stores
//! in place of its payload:
//!
//! ```text
//! offset size field
//!  0     4    raw_len   length of the payload once decompressed, little-endian
//!  4     ...  block     the payload compressed as one LZ4 block (lz4_flex, block format)
//! ```
//!
//! The payload that is compressed is the frame's whole payload as an uncompressed frame
//! would store it: a record's bytes, or a transaction's entries, each with its 4-byte
//! length. A payload is stored compressed only when that is smaller (`4 + block` below
//! the payload's length), so `raw_len` is always larger than the stored payload, and
//! `max_record_bytes` bounds `raw_len` as it bounds an uncompressed payload.
//!
//! Reading never trusts `raw_len` beyond that bound: it is checked against the reader's
//! `max_record_bytes` before a buffer of that size is allocated, and the block must fill
//! the buffer exactly. Errors are reasons; the caller names the segment and offset.

use serde::{Deserialize, Serialize};

/// Bytes of the `raw_len` field before a compressed block.
pub const RAW_LEN_BYTES: usize = 4;

/// The smallest `min_bytes` [`Compression::Lz4`] accepts: LZ4 gains nothing on fewer
/// bytes (a block's literals cost a token and its length), and every payload tried costs
/// a compression attempt on the caller's side.
pub const MIN_COMPRESS_BYTES: u32 = 32;

/// The `min_bytes` of [`Compression::lz4`]: below it records are stored as they are.
pub const DEFAULT_MIN_COMPRESS_BYTES: u32 = 512;

/// Whether frame payloads are stored compressed ([`WalConfig::compression`]). Off by
/// default. Turning it on or off takes effect at open; a log holds compressed and
/// uncompressed frames side by side, and reads both whatever the setting.
///
/// [`WalConfig::compression`]: crate::WalConfig::compression
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Compression {
    /// Every payload is stored as it is. The default.
    #[default]
    None,
    /// A frame payload (a record, or a transaction's entries with their lengths) of at
    /// least `min_bytes` bytes is compressed with LZ4 and stored compressed when that is
    /// smaller. Segments written with it on carry the segment flag `COMPRESSED`, which
    /// readers of the format before it refuse (docs/format.md).
    Lz4 {
        /// Payloads shorter than this are stored as they are. At least
        /// [`MIN_COMPRESS_BYTES`] and at most `max_record_bytes`.
        min_bytes: u32,
    },
}

impl Compression {
    /// LZ4 for payloads of [`DEFAULT_MIN_COMPRESS_BYTES`] (512) bytes or more.
    pub fn lz4() -> Compression {
        Compression::Lz4 {
            min_bytes: DEFAULT_MIN_COMPRESS_BYTES,
        }
    }

    /// Whether it compresses anything.
    pub fn is_on(&self) -> bool {
        !matches!(self, Compression::None)
    }

    /// Checks the setting against `max_record_bytes`; the reason when it does not fit.
    pub fn check(&self, max_record_bytes: u64) -> Result<(), String> {
        match *self {
            Compression::None => Ok(()),
            Compression::Lz4 { min_bytes } => {
                if min_bytes < MIN_COMPRESS_BYTES || u64::from(min_bytes) > max_record_bytes {
                    return Err(format!(
                        "compression min_bytes ({min_bytes}) must be in \
                         {MIN_COMPRESS_BYTES}..=max_record_bytes ({max_record_bytes})"
                    ));
                }
                Ok(())
            }
        }
    }

    /// `payload` stored compressed (`raw_len` and the LZ4 block), if the setting asks for
    /// it at this size and the result is smaller; `None` to store it as it is.
    pub fn compress(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let Compression::Lz4 { min_bytes } = *self else {
            return None;
        };
        if payload.len() < min_bytes as usize || payload.len() > u32::MAX as usize {
            return None;
        }
        lz4_stored(payload)
    }
}

/// `payload` as a compressed frame stores it, when that is smaller than the payload.
pub fn lz4_stored(payload: &[u8]) -> Option<Vec<u8>> {
    let bound = RAW_LEN_BYTES + lz4_flex::block::get_maximum_output_size(payload.len());
    let mut out = vec![0u8; bound];
    out[..RAW_LEN_BYTES].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let n = lz4_flex::block::compress_into(payload, &mut out[RAW_LEN_BYTES..]).ok()?;
    let stored = RAW_LEN_BYTES + n;
    if stored >= payload.len() {
        return None;
    }
    out.truncate(stored);
    Some(out)
}

/// The `raw_len` of a compressed payload, checked: the stored bytes hold it and a block,
/// it is larger than what is stored, and at most `max_raw_bytes`.
pub fn raw_len(stored: &[u8], max_raw_bytes: u64) -> Result<usize, String> {
    let Some((len, block)) = stored.split_first_chunk::<RAW_LEN_BYTES>() else {
        return Err(format!(
            "compressed payload of {} bytes has no room for its length",
            stored.len()
        ));
    };
    let raw = u32::from_le_bytes(*len);
    if block.is_empty() || (raw as usize) <= stored.len() {
        return Err(format!(
            "compressed payload of {} bytes claims {raw} bytes decompressed (a compressed \
             payload is stored only when smaller, and holds a block)",
            stored.len()
        ));
    }
    if u64::from(raw) > max_raw_bytes {
        return Err(format!(
            "compressed payload claims {raw} bytes decompressed, more than max_record_bytes \
             ({max_raw_bytes})"
        ));
    }
    Ok(raw as usize)
}

/// Decompresses a stored payload: at most `max_raw_bytes` are allocated, and the block
/// must decompress to exactly its `raw_len`.
pub fn decompress(stored: &[u8], max_raw_bytes: u64) -> Result<Vec<u8>, String> {
    let raw = raw_len(stored, max_raw_bytes)?;
    let mut out = vec![0u8; raw];
    match lz4_flex::block::decompress_into(&stored[RAW_LEN_BYTES..], &mut out) {
        Ok(n) if n == raw => Ok(out),
        Ok(n) => Err(format!(
            "compressed payload decompressed to {n} bytes, not the {raw} it claims"
        )),
        Err(e) => Err(format!("compressed payload does not decompress: {e}")),
    }
}

/// A frame's payload as written by the application (a record's bytes, or a transaction's
/// entries with their lengths): `stored` itself, or decompressed when the frame is
/// compressed (at most `max_raw_bytes`).
pub fn frame_payload<'a>(
    header: &super::FrameHeader,
    stored: &'a [u8],
    max_raw_bytes: u64,
) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    if header.is_compressed() {
        decompress(stored, max_raw_bytes).map(std::borrow::Cow::Owned)
    } else {
        Ok(std::borrow::Cow::Borrowed(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_like(n: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut i = 0;
        while s.len() < n {
            s.push_str(&format!(
                "{{\"id\":{i},\"name\":\"user{i}\",\"active\":true}},"
            ));
            i += 1;
        }
        s.truncate(n);
        s.into_bytes()
    }

    #[test]
    fn compressible_payloads_round_trip_smaller() {
        let p = json_like(4096);
        let stored = Compression::lz4().compress(&p).expect("JSON compresses");
        assert!(stored.len() < p.len() / 2, "{} bytes", stored.len());
        assert_eq!(raw_len(&stored, 4096), Ok(4096));
        assert_eq!(decompress(&stored, 4096).unwrap(), p);
    }

    #[test]
    fn short_or_incompressible_payloads_stay_as_they_are() {
        let c = Compression::Lz4 { min_bytes: 1024 };
        assert_eq!(c.compress(&json_like(1000)), None);
        let mut x = 0x9e37_79b9_u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert_eq!(c.compress(&noise), None);
        assert_eq!(Compression::None.compress(&json_like(4096)), None);
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocation() {
        let mut stored = Compression::lz4().compress(&json_like(4096)).unwrap();
        // More than the reader's bound: refused without allocating it.
        stored[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decompress(&stored, 1 << 20)
            .unwrap_err()
            .contains("more than"));
        // Within the bound but not what the block holds.
        stored[..4].copy_from_slice(&5000u32.to_le_bytes());
        assert!(decompress(&stored, 1 << 20).is_err());
        stored[..4].copy_from_slice(&4000u32.to_le_bytes());
        assert!(decompress(&stored, 1 << 20).is_err());
        // Not larger than what is stored, or no block at all.
        assert!(raw_len(&[5, 0, 0, 0, 1], 100).is_err());
        assert_eq!(raw_len(&[6, 0, 0, 0, 1], 100), Ok(6));
        assert!(raw_len(&[10, 0, 0], 100).is_err());
        assert!(raw_len(&[100, 0, 0, 0], 1000).is_err());
    }

    /// The compressed frame of docs/format.md ("A compressed frame"), byte for byte.
    #[test]
    fn the_compressed_frame_of_docs_format_md_reads_back() {
        let hex = "33 6e 3d 16 2c 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 01 00 01 01 \
                   38 00 00 00 f2 04 7b 22 69 64 22 3a 31 2c 22 6f 6b 22 3a 74 72 75 65 7d \
                   2c 13 00 1e 32 13 00 c0 33 2c 22 6f 6b 22 3a 74 72 75 65 7d";
        let frame: Vec<u8> = hex
            .split_whitespace()
            .filter(|t| *t != "\\")
            .map(|t| u8::from_str_radix(t, 16).unwrap())
            .collect();
        let h = crate::format::FrameHeader::parse(frame[..24].try_into().unwrap()).unwrap();
        assert!(h.is_compressed());
        assert_eq!((h.lsn, h.count, h.payload_len), (1, 1, 44));
        assert_eq!(
            h.crc,
            crate::format::frame::frame_crc(&frame[4..24], &frame[24..])
        );
        let p = frame_payload(&h, &frame[24..], 1 << 20).unwrap();
        assert_eq!(
            &p[..],
            &b"{\"id\":1,\"ok\":true},{\"id\":2,\"ok\":true},{\"id\":3,\"ok\":true}"[..]
        );
        let header = crate::format::SegmentHeader::encode_full(1, 2, 1);
        assert_eq!(&header[12..16], &[2, 0, 0, 0]);
        assert_eq!(&header[28..32], &[0x60, 0x83, 0x97, 0x48]);
    }

    #[test]
    fn the_setting_is_checked_against_max_record_bytes() {
        assert!(Compression::None.check(1).is_ok());
        assert!(Compression::lz4().check(1 << 20).is_ok());
        assert!(Compression::Lz4 { min_bytes: 8 }.check(1 << 20).is_err());
        assert!(Compression::Lz4 { min_bytes: 4096 }.check(1024).is_err());
    }
}

//! The payload codec: typed values to bytes and back through serde and bincode 2.
//!
//! This is the only module that names bincode, so the codec can be swapped without
//! touching the rest of the crate. Raw byte payloads need no codec.
//!
//! # The bytes
//!
//! A payload is bincode 2 with its *standard* configuration (little endian, variable-length
//! integers), through serde, and nothing else: no header, no length prefix (the frame
//! records the length). Decoding adds bounds (no string or byte buffer may claim more
//! bytes than the payload holds; depth and element counts below), which change no byte. Any reader of that configuration decodes it: bincode 2's
//! `decode_from_slice(bytes, bincode::config::standard())`, or wincode configured the same
//! way (`Configuration::default().with_varint_encoding()`: little endian, varint integers,
//! lengths as varint `u64`, variant tags as varint `u32`). wincode's *default* is bincode
//! 1's fixed-width layout, which does not read these bytes. The wincode side is read
//! from its configuration, not exercised by a test here.
//!
//! # What it supports
//!
//! bincode is not self-describing: a decoder must know the shape in advance, so serde
//! features that ask the format what comes next (`deserialize_any`) cannot be read back.
//!
//! - Round-trip: structs (named, tuple, unit), enums with unit, newtype, tuple and struct
//!   variants (externally tagged, serde's default), nested enums, `Option`, `Vec`, maps and
//!   sets (`HashMap`, `BTreeMap`, ...), tuples, strings, `char`, integers up to 128 bits,
//!   floats, `#[serde(rename)]` and `rename_all`, `#[serde(skip)]`, `#[serde(default)]`.
//! - Refused at encode: internally tagged enums (`#[serde(tag = "type")]`), adjacently
//!   tagged enums (`#[serde(tag = "t", content = "c")]`), untagged enums, structs with
//!   `#[serde(flatten)]`, and self-describing values such as `serde_json::Value`. Use
//!   serde's default (externally tagged) enums in records.
//! - Refused at encode and at decode, as limits on what one decode may do: values nested
//!   more than [`MAX_DEPTH`] levels deep (a sequence, map, enum, `Some` or newtype struct
//!   is a level), and more elements of sequences and maps in all than the payload's
//!   length and [`EXTRA_ELEMENTS`] (only zero-sized elements can reach it).
//! - Do not use `#[serde(skip_serializing_if = ..)]`: bincode writes no field names, so a
//!   skipped field shifts the fields after it. The check below refuses such a value
//!   whenever the shifted bytes fail to decode (in every case `tests/codec.rs` tries), but
//!   it cannot rule out bytes that happen to decode as a different value of the same type.
//!
//! "Refused" is checked, not assumed: [`encode`] decodes what it just encoded as the same
//! type and returns [`WalError::Codec`] with [`CodecStep::WouldNotDecode`] unless that
//! succeeds and uses every byte. So a value that would not read back never reaches the
//! log. The check costs one decode per record (figures in `docs/performance.md`).

use super::codec_limits::{Budget, Limited};
pub use super::codec_limits::{EXTRA_ELEMENTS, MAX_DEPTH};
use crate::error::WalError;
use serde::{de::DeserializeOwned, Serialize};
use std::marker::PhantomData;
use std::sync::Arc;

pub use crate::error::CodecStep;

/// The bytes held more than the value: the payload is not one value of the type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{trailing_bytes} trailing bytes after the value")]
pub struct TrailingBytes {
    /// Bytes left after the value.
    pub trailing_bytes: usize,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn error(step: CodecStep, source: impl std::error::Error + Send + Sync + 'static) -> WalError {
    WalError::Codec {
        step,
        source: Arc::new(source),
    }
}

/// Encodes a value with bincode 2's standard configuration, and refuses it
/// ([`CodecStep::WouldNotDecode`]) unless the bytes decode as `T` again.
pub fn encode<T: Serialize + DeserializeOwned>(value: &T) -> Result<Vec<u8>, WalError> {
    let bytes =
        bincode::serde::encode_to_vec(value, config()).map_err(|e| error(CodecStep::Encode, e))?;
    if let Err(WalError::Codec { source, .. }) = decode::<T>(&bytes) {
        return Err(WalError::Codec {
            step: CodecStep::WouldNotDecode,
            source,
        });
    }
    Ok(bytes)
}

/// Decodes `bytes` through [`Limited`]: at most [`MAX_DEPTH`] levels deep, at most the
/// payload's length and [`EXTRA_ELEMENTS`] elements in all, and no string or byte buffer
/// allocated before its bytes are found in the payload (`codec_limits.rs` says why; 9
/// bytes claiming 2^60 made the allocator abort the process when bincode allocated what
/// they claimed).
fn decode_limited<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let budget = Budget::for_payload(bytes.len());
    let seed = Limited {
        inner: PhantomData::<T>,
        budget: &budget,
    };
    bincode::serde::seed_decode_from_slice(seed, bytes, config())
}

/// Decodes a value encoded by [`encode`]; trailing bytes are an error, and so is a length
/// that claims more bytes than the payload holds (see `decode_limited`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WalError> {
    let (value, used) = decode_limited(bytes).map_err(|e| error(CodecStep::Decode, e))?;
    if used != bytes.len() {
        let trailing_bytes = bytes.len() - used;
        return Err(error(CodecStep::Decode, TrailingBytes { trailing_bytes }));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::CodecStep;
    use crate::error::WalError;

    #[test]
    fn round_trip() {
        let v = (7u32, String::from("x"), vec![1u8, 2]);
        let b = super::encode(&v).unwrap();
        assert_eq!(super::decode::<(u32, String, Vec<u8>)>(&b).unwrap(), v);
        assert!(matches!(
            super::decode::<u64>(&[0xff]),
            Err(WalError::Codec {
                step: CodecStep::Decode,
                ..
            })
        ));
        assert!(matches!(
            super::decode::<u8>(&[1, 2]),
            Err(WalError::Codec {
                step: CodecStep::Decode,
                ..
            })
        ));
    }
}

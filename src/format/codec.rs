//! The payload codec: typed values to bytes and back through serde and bincode 2.
//!
//! This is the only module that names bincode, so the codec can be swapped (wincode reads
//! the same bytes) without touching the rest of the crate. Raw byte payloads need no codec.

use crate::error::WalError;
use serde::{de::DeserializeOwned, Serialize};

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes a value with bincode's standard configuration.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WalError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| WalError::Codec(e.to_string()))
}

/// Decodes a value encoded by [`encode`]; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WalError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| WalError::Codec(e.to_string()))?;
    if used != bytes.len() {
        return Err(WalError::Codec(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let v = (7u32, String::from("x"), vec![1u8, 2]);
        let b = super::encode(&v).unwrap();
        assert_eq!(super::decode::<(u32, String, Vec<u8>)>(&b).unwrap(), v);
        assert!(super::decode::<u64>(&[0xff]).is_err());
    }
}

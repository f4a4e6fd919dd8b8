//! `Request::Set`'s `(key, value)` pairs with each value as one run of bytes
//! (`serde_bytes`): the same bytes in bincode as a sequence of `u8` (entries written
//! before read as they were), decoded in one copy instead of byte by byte through serde's
//! sequence visitor (5.5% of a leader's samples under load, docs/performance.md).

use serde::{Deserialize, Deserializer, Serializer};
use serde_bytes::{ByteBuf, Bytes};

/// Serializes the pairs, each value as bytes.
pub fn serialize<S: Serializer>(w: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(w.iter().map(|(k, v)| (k, Bytes::new(v))))
}

/// Deserializes the pairs, each value as bytes.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
    let pairs: Vec<(String, ByteBuf)> = Deserialize::deserialize(d)?;
    Ok(pairs.into_iter().map(|(k, v)| (k, v.into_vec())).collect())
}

#[cfg(test)]
mod tests {
    use crate::{Request, Write};
    use actix_wal::format::codec;
    use serde::{Deserialize, Serialize};

    /// The entries as they were before: plain `Vec<u8>` values.
    #[derive(Debug, Serialize, Deserialize)]
    enum Before {
        Set { writes: Vec<(String, Vec<u8>)> },
        SetOnce { writes: Vec<BeforeWrite> },
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct BeforeWrite {
        key: String,
        value: Vec<u8>,
        once: Option<crate::dedup::ClientSeq>,
    }

    #[test]
    fn entries_encode_as_before_and_old_ones_decode() {
        let pairs = vec![
            ("a".to_owned(), vec![0, 1, 255]),
            ("b".into(), vec![7; 300]),
        ];
        let now = codec::encode(&Request::Set {
            writes: pairs.clone(),
        })
        .expect("encode");
        let before = codec::encode(&Before::Set {
            writes: pairs.clone(),
        })
        .expect("encode");
        assert_eq!(now, before, "Set: the same bytes");
        match codec::decode::<Request>(&before).expect("decode") {
            Request::Set { writes } => assert_eq!(writes, pairs),
            other => panic!("{other:?}"),
        }
        let write = Write {
            key: "k".into(),
            value: vec![9; 1000],
            once: None,
        };
        let now = codec::encode(&Request::SetOnce {
            writes: vec![write.clone()],
        })
        .expect("encode");
        let before = codec::encode(&Before::SetOnce {
            writes: vec![BeforeWrite {
                key: write.key.clone(),
                value: write.value.clone(),
                once: None,
            }],
        })
        .expect("encode");
        assert_eq!(now, before, "SetOnce: the same bytes");
        match codec::decode::<Request>(&before).expect("decode") {
            Request::SetOnce { writes } => assert_eq!(writes[0].value, write.value),
            other => panic!("{other:?}"),
        }
    }
}

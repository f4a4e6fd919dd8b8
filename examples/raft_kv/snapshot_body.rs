//! The body of a snapshot (what openraft sends to a follower, and what `DIR/snapshot`
//! holds after its header): the map and the dedup table (`dedup`).
//!
//! Version 2: `RKVSNAP2`, the map's length in bytes (u64, little-endian), the map
//! (`codec::encode` of the `BTreeMap<String, Vec<u8>>`), the table (`codec::encode` of
//! the `DedupTable`). Version 1, in files whose header says `RKV1` (written before the
//! table existed), is the map alone: it still loads, with an empty table. Every node of
//! a cluster runs the same version (bodies on the wire are version 2).

use crate::dedup::DedupTable;
use actix_wal::format::codec;
use std::collections::BTreeMap;

/// The first bytes of a version 2 body.
const TAG: &[u8; 8] = b"RKVSNAP2";

/// The map, as the state machine holds it.
pub type Map = BTreeMap<String, Vec<u8>>;

/// A body that is not one.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It does not start with the version 2 tag, or its map length runs past its end.
    #[error("not a version 2 snapshot body ({0})")]
    Framing(&'static str),
    /// A part does not decode.
    #[error("snapshot body: {0}")]
    Codec(#[from] actix_wal::WalError),
}

/// A version 2 body of `map` and `dedup`.
pub fn encode(map: &Map, dedup: &DedupTable) -> Result<Vec<u8>, actix_wal::WalError> {
    let map_bytes = codec::encode(map)?;
    let dedup_bytes = codec::encode(dedup)?;
    let mut body = Vec::with_capacity(16 + map_bytes.len() + dedup_bytes.len());
    body.extend_from_slice(TAG);
    body.extend_from_slice(&(map_bytes.len() as u64).to_le_bytes());
    body.extend_from_slice(&map_bytes);
    body.extend_from_slice(&dedup_bytes);
    Ok(body)
}

/// The map and the table of a version 2 body.
pub fn decode(body: &[u8]) -> Result<(Map, DedupTable), BodyError> {
    let rest = body
        .strip_prefix(TAG.as_slice())
        .ok_or(BodyError::Framing("no tag"))?;
    let (len, rest) = rest
        .split_at_checked(8)
        .ok_or(BodyError::Framing("short"))?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| BodyError::Framing("short"))?);
    let len = usize::try_from(len).map_err(|_| BodyError::Framing("map length"))?;
    let (map, dedup) = rest
        .split_at_checked(len)
        .ok_or(BodyError::Framing("map length past the end"))?;
    Ok((codec::decode(map)?, codec::decode(dedup)?))
}

/// The map of a version 1 body (the map alone), with an empty table.
pub fn decode_v1(body: &[u8]) -> Result<(Map, DedupTable), BodyError> {
    Ok((codec::decode(body)?, DedupTable::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::ClientSeq;

    fn sample() -> (Map, DedupTable) {
        let mut map = Map::new();
        map.insert("k".into(), b"v".to_vec());
        let mut dedup = DedupTable::default();
        let id = ClientSeq {
            client: "c".into(),
            seq: 3,
        };
        dedup.record(&id, 42);
        (map, dedup)
    }

    #[test]
    fn a_version_2_body_round_trips_with_its_table() {
        let (map, dedup) = sample();
        let body = encode(&map, &dedup).expect("encode");
        let (m, d) = decode(&body).expect("decode");
        assert_eq!(m, map);
        let id = ClientSeq {
            client: "c".into(),
            seq: 3,
        };
        assert_eq!(d.seen(&id), crate::dedup::Seen::Applied(42));
    }

    #[test]
    fn a_version_1_body_loads_with_an_empty_table_and_is_no_version_2_body() {
        let (map, _) = sample();
        let v1 = codec::encode(&map).expect("encode the map alone");
        let (m, d) = decode_v1(&v1).expect("decode v1");
        assert_eq!(m, map);
        assert_eq!(d.clients(), 0);
        assert!(decode(&v1).is_err());
    }

    #[test]
    fn a_truncated_body_is_an_error_not_a_panic() {
        let (map, dedup) = sample();
        let body = encode(&map, &dedup).expect("encode");
        for cut in 0..body.len() {
            assert!(decode(&body[..cut]).is_err(), "cut at {cut}");
        }
    }
}

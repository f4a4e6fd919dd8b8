//! Unit tests of the `META` encoding (`format/meta.rs`): round trips, the example of
//! docs/format.md byte by byte, refusals; and the sample values `format/meta_cursors.rs`'s
//! tests share.

use super::*;
use proptest::prelude::*;

/// A version-1 value (no cursor, the checkpoint at the first LSN).
pub(crate) fn sample() -> LogMeta {
    LogMeta {
        seq: 7,
        first_lsn: 42,
        newest_lsn: 1_000,
        intent: MetaIntent::TruncateAfter(999),
        slot: Some(b"vote: term 3, node 2".to_vec()),
        checkpoint_lsn: 42,
        cursors: Vec::new(),
        slot_gen: 0,
    }
}

/// A version-2 value: a checkpoint above the first LSN and two cursors.
pub(crate) fn sample_v2() -> LogMeta {
    LogMeta {
        checkpoint_lsn: 500,
        cursors: vec![
            CursorMeta {
                name: "archiver".into(),
                lsn: 42,
                invalidated: false,
            },
            CursorMeta {
                name: "replica-2".into(),
                lsn: 7,
                invalidated: true,
            },
        ],
        ..sample()
    }
}

/// Version-3 values (a slot generation): with the cursors of version 2, and without.
pub(crate) fn samples_v3() -> [LogMeta; 2] {
    [
        LogMeta {
            slot_gen: 9,
            ..sample_v2()
        },
        LogMeta {
            slot_gen: u64::MAX,
            ..sample()
        },
    ]
}

#[test]
fn round_trips_with_and_without_slot() {
    let [v3, v3_plain] = samples_v3();
    assert_eq!((v3.version(), v3_plain.version()), (3, 3));
    for meta in [
        sample(),
        sample_v2(),
        v3,
        v3_plain,
        LogMeta::default(),
        LogMeta {
            slot: Some(Vec::new()),
            intent: MetaIntent::Reset(u64::MAX),
            ..sample()
        },
    ] {
        let b = meta.encode(DEFAULT_MAX_META_BYTES).unwrap();
        assert_eq!(b.len(), meta.encoded_len());
        assert_eq!(LogMeta::decode(&b, DEFAULT_MAX_META_BYTES), Ok(meta));
    }
}

#[test]
fn encodes_the_example_of_docs_format_md() {
    let meta = LogMeta {
        seq: 3,
        first_lsn: 1,
        newest_lsn: 1,
        intent: MetaIntent::None,
        slot: Some(b"vote".to_vec()),
        checkpoint_lsn: 1,
        cursors: Vec::new(),
        slot_gen: 0,
    };
    let mut expected = Vec::new();
    expected.extend_from_slice(b"AXWALMET");
    expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 4, 0, 0, 0]);
    expected.extend_from_slice(b"vote");
    expected.extend_from_slice(&[0x67, 0xe4, 0x18, 0x2e]);
    assert_eq!(meta.encode(DEFAULT_MAX_META_BYTES).unwrap(), expected);
}

#[test]
fn every_truncation_and_extension_is_refused() {
    let [v3, v3_plain] = samples_v3();
    for meta in [sample(), sample_v2(), v3, v3_plain] {
        every_truncation_and_extension_of(meta);
    }
}

fn every_truncation_and_extension_of(meta: LogMeta) {
    let b = meta.encode(DEFAULT_MAX_META_BYTES).unwrap();
    for len in 0..b.len() {
        assert!(
            LogMeta::decode(&b[..len], DEFAULT_MAX_META_BYTES).is_err(),
            "{len}"
        );
    }
    let mut longer = b.clone();
    longer.push(0);
    assert!(matches!(
        LogMeta::decode(&longer, DEFAULT_MAX_META_BYTES),
        Err(MetaFormatError::Trailing { .. })
    ));
}

#[test]
fn every_single_bit_flip_is_refused() {
    let [v3, v3_plain] = samples_v3();
    for meta in [sample(), sample_v2(), LogMeta::default(), v3, v3_plain] {
        let b = meta.encode(DEFAULT_MAX_META_BYTES).unwrap();
        for byte in 0..b.len() {
            for bit in 0..8 {
                let mut bad = b.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    LogMeta::decode(&bad, DEFAULT_MAX_META_BYTES).is_err(),
                    "flip of bit {bit} of byte {byte} was accepted"
                );
            }
        }
    }
}

#[test]
fn slot_bound_is_checked_both_ways() {
    let meta = LogMeta {
        slot: Some(vec![1; 100]),
        ..LogMeta::default()
    };
    assert_eq!(
        meta.encode(99),
        Err(MetaFormatError::SlotTooLarge { len: 100, max: 99 })
    );
    let b = meta.encode(100).unwrap();
    assert_eq!(
        LogMeta::decode(&b, 99),
        Err(MetaFormatError::SlotTooLarge { len: 100, max: 99 })
    );
    // A length field claiming 4 GiB is refused before anything is read or allocated.
    let mut huge = b.clone();
    huge[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        LogMeta::decode(&huge, u64::MAX),
        Err(MetaFormatError::SlotTooLarge { .. })
    ));
}

#[test]
fn fields_a_writer_never_writes_are_refused_even_with_a_good_crc() {
    let b = sample().encode(DEFAULT_MAX_META_BYTES).unwrap();
    let recrc = |mut b: Vec<u8>| {
        let body = b.len() - 4;
        let crc = crc32fast::hash(&b[..body]);
        b[body..].copy_from_slice(&crc.to_le_bytes());
        b
    };
    for (at, value) in [(12, 1u8), (48, 3), (49, 2), (50, 1)] {
        let mut bad = b.clone();
        bad[at] = value;
        assert!(matches!(
            LogMeta::decode(&recrc(bad), DEFAULT_MAX_META_BYTES),
            Err(MetaFormatError::Invalid(_))
        ));
    }
    let mut bad = b;
    bad[8] = 4;
    assert_eq!(
        LogMeta::decode(&recrc(bad), DEFAULT_MAX_META_BYTES),
        Err(MetaFormatError::Version(4))
    );
    // Version 3 with generation 0 (a writer writes 0 as version 1 or 2).
    let mut zero = samples_v3()[1].encode(DEFAULT_MAX_META_BYTES).unwrap();
    let at = zero.len() - 12;
    zero[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    assert!(matches!(
        LogMeta::decode(&recrc(zero), DEFAULT_MAX_META_BYTES),
        Err(MetaFormatError::Invalid(_))
    ));
}

fn any_meta() -> impl Strategy<Value = LogMeta> {
    let intent = prop_oneof![
        Just(MetaIntent::None),
        any::<u64>().prop_map(MetaIntent::TruncateAfter),
        any::<u64>().prop_map(MetaIntent::Reset),
    ];
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        intent,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..2048)),
        any::<u64>(),
        proptest::collection::btree_map("[a-z0-9._-]{1,20}", (any::<u64>(), any::<bool>()), 0..5),
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(
            |(seq, first_lsn, newest_lsn, intent, slot, above, cursors, slot_gen)| LogMeta {
                seq,
                first_lsn,
                newest_lsn,
                intent,
                slot,
                // Read back as the checkpoint: never below the first LSN.
                checkpoint_lsn: first_lsn.saturating_add(above % 3),
                cursors: cursors
                    .into_iter()
                    .map(|(name, (lsn, invalidated))| CursorMeta {
                        name,
                        lsn,
                        invalidated,
                    })
                    .collect(),
                slot_gen,
            },
        )
}

proptest! {
    #[test]
    fn random_fields_round_trip(meta in any_meta()) {
        let b = meta.encode(DEFAULT_MAX_META_BYTES).unwrap();
        prop_assert_eq!(LogMeta::decode(&b, DEFAULT_MAX_META_BYTES), Ok(meta));
    }

    #[test]
    fn random_damage_is_refused_never_a_panic(
        meta in any_meta(),
        at in any::<usize>(),
        xor in 1u8..,
        cut in any::<usize>(),
    ) {
        let b = meta.encode(DEFAULT_MAX_META_BYTES).unwrap();
        let mut bad = b.clone();
        let i = at % bad.len();
        bad[i] ^= xor;
        // One damaged byte: a burst of at most 8 bits, which CRC-32 always detects.
        prop_assert!(LogMeta::decode(&bad, DEFAULT_MAX_META_BYTES).is_err());
        prop_assert!(LogMeta::decode(&b[..cut % b.len()], DEFAULT_MAX_META_BYTES).is_err());
    }

    #[test]
    fn random_bytes_are_refused_or_encode_back_exactly(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Past the magic and version checks, so the later checks see random input too.
        let mut framed = META_MAGIC.to_vec();
        framed.extend_from_slice(&META_VERSION.to_le_bytes());
        framed.extend_from_slice(&bytes);
        for input in [&bytes, &framed] {
            if let Ok(meta) = LogMeta::decode(input, u64::MAX) {
                prop_assert_eq!(&meta.encode(u64::MAX).unwrap(), input);
            }
        }
    }
}

//! Typed records: every serde shape an application would write either round-trips through
//! a real log (`Append::encode` / `Commit::encode`, shutdown, read back with `LogReader`,
//! `Record::decode`) or is refused at encode, before anything is queued. None is written
//! undecodable.

use actix_wal::format::codec;
use actix_wal::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Transfer {
    from: String,
    to: String,
    amount_cents: u64,
    fee: i128,
    rate: f64,
    memo: Option<String>,
    tags: Vec<String>,
    ok: bool,
    initial: char,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair(u32, String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Marker;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Op {
    Noop,
    Debit(u64),
    Move(String, String, u64),
    Put {
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Outer {
    Batch(Vec<Op>),
    Nested(Option<Box<Outer>>),
    Keyed(BTreeMap<String, Op>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Internal {
    Deposit { amount: u64 },
    Close,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    Deposit(u64),
    Rename { name: String },
    Close,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    version: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flattened {
    id: u64,
    #[serde(flatten)]
    meta: Meta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Skips {
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<u32>,
    id: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Renamed {
    account_id: u64,
    #[serde(skip)]
    cached: u32,
    #[serde(default)]
    label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Generic<T> {
    lsn: Lsn,
    item: T,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    RoundTrip,
    Refused,
}

/// One shape: how to encode it, and how to check the record read back.
struct Case {
    name: &'static str,
    expect: Expect,
    encode: Box<dyn Fn() -> Result<Append, WalError>>,
    raw: Box<dyn Fn() -> Result<Vec<u8>, WalError>>,
    check: Box<dyn Fn(&Record)>,
}

fn case<T>(name: &'static str, expect: Expect, value: T) -> Case
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Clone + 'static,
{
    let (a, b, c) = (value.clone(), value.clone(), value);
    Case {
        name,
        expect,
        encode: Box::new(move || Append::encode(&a)),
        raw: Box::new(move || codec::encode(&b)),
        check: Box::new(move |r| {
            let back: T = r
                .decode()
                .unwrap_or_else(|e| panic!("{name}: written but not decodable: {e}"));
            assert_eq!(back, c, "{name}: read back differs");
        }),
    }
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let transfer = Transfer {
        from: "alice".into(),
        to: "bob".into(),
        amount_cents: 1_000,
        fee: -3,
        rate: 0.25,
        memo: Some("rent".into()),
        tags: vec!["a".into(), "b".into()],
        ok: true,
        initial: 'é',
    };
    let mut hash = HashMap::new();
    hash.insert("alice".to_string(), 10u64);
    hash.insert("bob".to_string(), 20u64);
    let mut keyed = BTreeMap::new();
    keyed.insert("k".to_string(), Op::Debit(5));
    vec![
        case("struct", RoundTrip, transfer),
        case("tuple struct", RoundTrip, Pair(7, "x".into())),
        case("unit struct", RoundTrip, Marker),
        case("unit variant", RoundTrip, Op::Noop),
        case("newtype variant", RoundTrip, Op::Debit(9)),
        case(
            "tuple variant",
            RoundTrip,
            Op::Move("a".into(), "b".into(), 3),
        ),
        case(
            "struct variant",
            RoundTrip,
            Op::Put {
                key: b"k".to_vec(),
                value: None,
            },
        ),
        case("option some", RoundTrip, Some(5u16)),
        case("option none", RoundTrip, None::<u16>),
        case("hash map", RoundTrip, hash),
        case("btree map", RoundTrip, keyed.clone()),
        case("hash set", RoundTrip, HashSet::from([1u8, 2, 3])),
        case(
            "nested enums",
            RoundTrip,
            Outer::Nested(Some(Box::new(Outer::Batch(vec![Op::Noop, Op::Debit(1)])))),
        ),
        case("enum in a map", RoundTrip, Outer::Keyed(keyed)),
        case("tuple", RoundTrip, (1u8, -2i64, String::from("z"), ())),
        case(
            "generic with lsn",
            RoundTrip,
            Generic {
                lsn: Lsn(42),
                item: Op::Noop,
            },
        ),
        case(
            "rename, skip, default",
            RoundTrip,
            Renamed {
                account_id: 3,
                cached: 0,
                label: "l".into(),
            },
        ),
        case("adjacently tagged newtype", Refused, Adjacent::Deposit(5)),
        case(
            "adjacently tagged struct",
            Refused,
            Adjacent::Rename { name: "n".into() },
        ),
        case("adjacently tagged unit", Refused, Adjacent::Close),
        case(
            "skip_serializing_if, not skipping",
            RoundTrip,
            Skips {
                note: Some(1),
                id: 2,
            },
        ),
        case(
            "internally tagged struct",
            Refused,
            Internal::Deposit { amount: 5 },
        ),
        case("internally tagged unit", Refused, Internal::Close),
        case("untagged number", Refused, Untagged::Number(5)),
        case("untagged text", Refused, Untagged::Text("t".into())),
        case(
            "flatten",
            Refused,
            Flattened {
                id: 1,
                meta: Meta { version: 2 },
            },
        ),
        case(
            "skip_serializing_if, skipping",
            Refused,
            Skips { note: None, id: 2 },
        ),
        case(
            "serde_json::Value",
            Refused,
            serde_json::json!({"type": "deposit", "amount": 5}),
        ),
    ]
}

/// Every shape through a real log: what encodes is appended, read back after a shutdown
/// and decoded to an equal value; what is refused is refused with a codec error and
/// nothing is queued for it.
#[actix::test]
async fn every_serde_shape_round_trips_or_is_refused_at_encode() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let cases = cases();
    let mut written = Vec::new();
    let mut outcomes = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let raw = (c.raw)();
        match (c.encode)() {
            Ok(append) => {
                assert!(
                    raw.is_ok(),
                    "{}: Append::encode and codec::encode agree",
                    c.name
                );
                let lsn = wal.send(append).await.unwrap();
                written.push((lsn, i));
                outcomes.push((c.name, Expect::RoundTrip));
            }
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        WalError::Codec {
                            step: CodecStep::Encode | CodecStep::WouldNotDecode,
                            ..
                        }
                    ),
                    "{}: refused with a codec error, got {e:?}",
                    c.name
                );
                assert!(
                    std::error::Error::source(&e).is_some(),
                    "{}: the codec's error is kept as the source",
                    c.name
                );
                assert!(raw.is_err(), "{}: codec::encode refuses it too", c.name);
                outcomes.push((c.name, Expect::Refused));
            }
        }
    }
    let stats = wal.stats().await.unwrap();
    assert_eq!(
        stats.next_lsn,
        Lsn(written.len() as u64 + 1),
        "refused values queued nothing"
    );
    wal.shutdown().await.unwrap();

    let records: Vec<Record> = LogReader::open(d.path())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), written.len());
    for (record, (lsn, i)) in records.iter().zip(&written) {
        assert_eq!(record.lsn, *lsn);
        (cases[*i].check)(record);
    }
    // The documented split holds (src/format/codec.rs lists the same shapes).
    let expected: Vec<_> = cases.iter().map(|c| (c.name, c.expect)).collect();
    assert_eq!(outcomes, expected);
}

/// The example: an internally tagged enum encoded to 5 bytes that never decoded.
/// Now refused, with the step and bincode's error as the source.
#[test]
fn internally_tagged_enum_is_refused_with_its_source() {
    let e = codec::encode(&Internal::Deposit { amount: 5 }).unwrap_err();
    let WalError::Codec { step, source } = &e else {
        panic!("expected a codec error, got {e:?}");
    };
    assert_eq!(*step, CodecStep::WouldNotDecode);
    assert!(
        source.to_string().contains("AnyNotSupported")
            || format!("{source:?}").contains("AnyNotSupported"),
        "bincode's own error is kept: {source:?}"
    );
}

/// One refused item refuses the whole transaction; a good one commits all its entries.
#[actix::test]
async fn commit_encode_is_all_or_nothing() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let bad = [Untagged::Number(1), Untagged::Text("x".into())];
    assert!(matches!(
        Commit::encode(&bad),
        Err(WalError::Codec {
            step: CodecStep::WouldNotDecode,
            ..
        })
    ));
    let ops = vec![Op::Debit(10), Op::Move("a".into(), "b".into(), 10)];
    let first = wal.send(Commit::encode(&ops).unwrap()).await.unwrap();
    assert_eq!(first, Lsn(1));
    wal.shutdown().await.unwrap();

    let back: Vec<Op> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap().decode().unwrap())
        .collect();
    assert_eq!(back, ops);
}

/// `AppendBatch::encode`: one refused item refuses the whole batch; a good batch appends
/// every item as its own record, read back typed.
#[actix::test]
async fn append_batch_encode_refuses_the_whole_batch_or_appends_every_item() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let bad = [Untagged::Number(1), Untagged::Text("x".into())];
    assert!(matches!(
        AppendBatch::encode(&bad),
        Err(WalError::Codec {
            step: CodecStep::WouldNotDecode,
            ..
        })
    ));
    let ops = vec![Op::Debit(3), Op::Noop, Op::Debit(4)];
    let first = wal.send(AppendBatch::encode(&ops).unwrap()).await.unwrap();
    assert_eq!(first, Lsn(1));
    wal.shutdown().await.unwrap();
    let back: Vec<(Lsn, Op)> = LogReader::open(d.path())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            assert!(r.txn.is_none(), "a batch's records are not a transaction");
            (r.lsn, r.decode().unwrap())
        })
        .collect();
    assert_eq!(
        back,
        vec![
            (Lsn(1), Op::Debit(3)),
            (Lsn(2), Op::Noop),
            (Lsn(3), Op::Debit(4))
        ]
    );
}

/// Bytes that are not one value of the type asked for are a decode error, not a panic.
#[test]
fn decode_of_wrong_bytes_is_a_typed_error() {
    let bytes = codec::encode(&Op::Debit(7)).unwrap();
    assert!(matches!(
        codec::decode::<Transfer>(&bytes),
        Err(WalError::Codec {
            step: CodecStep::Decode,
            ..
        })
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    let e = codec::decode::<Op>(&longer).unwrap_err();
    assert!(matches!(
        &e,
        WalError::Codec {
            step: CodecStep::Decode,
            ..
        }
    ));
    assert!(e.to_string().contains("trailing"), "{e}");
}

/// A 9-byte payload whose first varint says 2^60 - 1 bytes follow. Decoded as a string
/// (or anything holding one), the codec must refuse it, not allocate what it claims: with
/// no limit, bincode asked for 1 EiB and the allocator aborted the process.
const CLAIMS_AN_EXABYTE: [u8; 9] = [0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F];

#[test]
fn a_length_prefix_past_the_payload_is_a_typed_error_not_an_allocation() {
    for (what, result) in [
        (
            "String",
            codec::decode::<String>(&CLAIMS_AN_EXABYTE).map(drop),
        ),
        (
            "Transfer",
            codec::decode::<Transfer>(&CLAIMS_AN_EXABYTE).map(drop),
        ),
        (
            "Vec<u8>",
            codec::decode::<Vec<u8>>(&CLAIMS_AN_EXABYTE).map(drop),
        ),
        (
            "bytes",
            codec::decode::<serde_bytes_like::Bytes>(&CLAIMS_AN_EXABYTE).map(drop),
        ),
    ] {
        assert!(
            matches!(
                result,
                Err(WalError::Codec {
                    step: CodecStep::Decode,
                    ..
                })
            ),
            "{what}: {result:?}"
        );
    }
    // Through a real log and `Record::decode`, as an application reads a record.
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = LogWriter::open(d.path(), LogOptions::default()).unwrap();
    w.append(&CLAIMS_AN_EXABYTE).unwrap();
    w.sync().unwrap();
    drop(w);
    let record = LogReader::open(d.path()).unwrap().next().unwrap().unwrap();
    assert!(matches!(
        record.decode::<String>(),
        Err(WalError::Codec {
            step: CodecStep::Decode,
            ..
        })
    ));
    // Strings that are there decode whatever their length.
    let long = "x".repeat(3 << 20);
    let bytes = codec::encode(&long).unwrap();
    assert_eq!(codec::decode::<String>(&bytes).unwrap(), long);
}

/// A type whose bytes claim more than they hold: `Append::encode` refuses it
/// (`WouldNotDecode`) instead of letting its own check allocate what the bytes claim.
struct Liar;

impl Serialize for Liar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64((1u64 << 60) - 1)
    }
}

impl<'de> Deserialize<'de> for Liar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Liar, D::Error> {
        String::deserialize(d).map(|_| Liar)
    }
}

#[test]
fn a_value_whose_bytes_claim_more_than_they_hold_is_refused_at_encode() {
    assert!(matches!(
        Append::encode(&Liar),
        Err(WalError::Codec {
            step: CodecStep::WouldNotDecode,
            ..
        })
    ));
}

/// `serde_bytes`-style byte buffers without the crate: a newtype that asks the format for
/// bytes (`deserialize_byte_buf`).
mod serde_bytes_like {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    pub struct Bytes(#[allow(dead_code)] pub Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
}

/// bincode's standard varint of `n` (at least 2^32: the marker 253, then 8 bytes LE).
fn varint_u64_large(n: u64) -> Vec<u8> {
    assert!(n >= 1 << 32);
    let mut b = vec![253];
    b.extend_from_slice(&n.to_le_bytes());
    b
}

/// Runs `f` on a thread of its own (2 MiB of stack, as a runtime's worker has), and
/// panics if it takes more than 20 s.
fn within_20_s<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what}: not done within 20 s"))
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Unit;

#[test]
fn zero_sized_elements_past_the_bound_are_refused_not_decoded_for_ever() {
    // 9 bytes claiming 2^60 elements of zero bytes each: bincode's byte limit counts none
    // of them (a probe's decode of these ran for ever).
    for claim in [1u64 << 32, 1 << 60] {
        let bytes = varint_u64_large(claim);
        let b = bytes.clone();
        let units = within_20_s("Vec<()>", move || {
            codec::decode::<Vec<()>>(&b).map(|v| v.len())
        });
        assert!(matches!(units, Err(WalError::Codec { .. })), "{units:?}");
        let b = bytes.clone();
        let set = within_20_s("HashSet<()>", move || {
            codec::decode::<HashSet<()>>(&b).map(|v| v.len())
        });
        assert!(matches!(set, Err(WalError::Codec { .. })), "{set:?}");
        let b = bytes.clone();
        let structs = within_20_s("Vec<Unit>", move || {
            codec::decode::<Vec<Unit>>(&b).map(|v| v.len())
        });
        assert!(
            matches!(structs, Err(WalError::Codec { .. })),
            "{structs:?}"
        );
    }
    // Within the bound they read back.
    let many = vec![Unit; 1 << 16];
    let bytes = codec::encode(&many).unwrap();
    assert_eq!(codec::decode::<Vec<Unit>>(&bytes).unwrap(), many);
    // Past it, refused at encode: such a value would not read back.
    let too_many = vec![(); (codec::EXTRA_ELEMENTS + 64) as usize];
    let err = codec::encode(&too_many).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::Codec {
                step: codec::CodecStep::WouldNotDecode,
                ..
            }
        ),
        "{err}"
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Deep(Option<Box<Deep>>);

impl Deep {
    fn depth(&self) -> usize {
        let mut n = 0;
        let mut at = self;
        while let Some(next) = &at.0 {
            n += 1;
            at = next;
        }
        n
    }
}

#[test]
fn a_value_nested_past_the_depth_bound_is_refused_not_a_stack_overflow() {
    // 10,001 bytes of a recursive type: each byte one more level (a probe's decode
    // overflowed its thread's stack, which aborts the process).
    let mut bytes = vec![1u8; 10_000];
    bytes.push(0);
    let got = within_20_s("Deep", move || {
        codec::decode::<Deep>(&bytes).map(|d| {
            let n = d.depth();
            // Dropping it is as recursive as decoding it.
            std::mem::forget(d);
            n
        })
    });
    assert!(matches!(got, Err(WalError::Codec { .. })), "{got:?}");
    // Shallower ones read back.
    let mut shallow = Deep(None);
    for _ in 0..(codec::MAX_DEPTH / 2 - 1) {
        shallow = Deep(Some(Box::new(shallow)));
    }
    let bytes = codec::encode(&shallow).unwrap();
    assert_eq!(codec::decode::<Deep>(&bytes).unwrap(), shallow);
}

/// Every value that decodes is taken, whatever its size: bincode's own byte limit counts
/// each integer at its full width (8 bytes for a `u64` written in one) and each length
/// prefix as 8, so a limit near the payload's length refused values just under 64 KiB,
/// 1 MiB and 16 MiB, and payloads of small integers. A probe's Raft entries of about
/// 65.5 KB were refused at encode (`WouldNotDecode`), and a `raft_kv` node stopped.
#[test]
fn values_that_decode_are_taken_whatever_their_size_or_integers() {
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(what: &str, value: T) {
        let bytes = codec::encode(&value).unwrap_or_else(|e| panic!("{what}: encode: {e}"));
        let back: T = codec::decode(&bytes).unwrap_or_else(|e| panic!("{what}: decode: {e}"));
        assert!(back == value, "{what}: another value read back");
    }
    for len in (65_500..=65_540).chain(1_048_540..=1_048_580) {
        round_trip(&format!("a string of {len} bytes"), "s".repeat(len));
        round_trip(&format!("({len} bytes, 7)"), ("t".repeat(len), 7u64));
    }
    round_trip("10,000 u64 zeros", vec![0u64; 10_000]);
    round_trip("4,096 u128 ones", vec![1u128; 4_096]);
    round_trip("20,000 chars", vec!['a'; 20_000]);
    round_trip(
        "1,000 transfers",
        (0..1_000u64)
            .map(|i| (i, i as u32, -(i as i64), i as f32))
            .collect::<Vec<_>>(),
    );
}

//! The typed-record codec: what the round-trip check of `codec::encode` (used by
//! `Append::encode` and `Commit::encode`) costs per record, next to bincode's plain encode
//! and a decode, for a small record and a 1 KiB one.
//!
//! ```text
//! cargo bench --bench codec
//! ```

use actix_wal::format::codec;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Op {
    Debit { account: String, amount_cents: u64 },
    Credit { account: String, amount_cents: u64 },
    Note(Option<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Transfer {
    id: u64,
    ops: Vec<Op>,
}

fn transfer(ops: usize) -> Transfer {
    Transfer {
        id: 42,
        ops: (0..ops)
            .map(|i| match i % 3 {
                0 => Op::Debit {
                    account: format!("acct-{i:06}"),
                    amount_cents: 1_000 + i as u64,
                },
                1 => Op::Credit {
                    account: format!("acct-{i:06}"),
                    amount_cents: 1_000 + i as u64,
                },
                _ => Op::Note(Some("monthly rent".into())),
            })
            .collect(),
    }
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    // 2 ops: a 34-byte record; 50 ops: 786 bytes.
    for ops in [2usize, 50] {
        let value = transfer(ops);
        let bytes = codec::encode(&value).unwrap();
        let label = format!("{}B", bytes.len());
        g.bench_with_input(
            BenchmarkId::new("bincode_encode", &label),
            &value,
            |b, v| {
                b.iter(|| bincode::serde::encode_to_vec(black_box(v), bincode::config::standard()))
            },
        );
        g.bench_with_input(
            BenchmarkId::new("checked_encode", &label),
            &value,
            |b, v| b.iter(|| codec::encode(black_box(v))),
        );
        g.bench_with_input(BenchmarkId::new("decode", &label), &bytes, |b, bytes| {
            b.iter(|| codec::decode::<Transfer>(black_box(bytes)))
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);

//! Four writers at once, each of single records, transactions and batches in turn: the
//! workload the subscriber tests follow live (tests/subscribe.rs, subscribe_shared.rs).
#![allow(dead_code)]

use actix_wal::Wal;

/// Records the writers append in all.
pub const MIXED_RECORDS: usize = 4 * (50 + 50 * 3 + 50 * 2);
/// Of which in transactions.
pub const MIXED_TXN_RECORDS: usize = 4 * 50 * 3;

/// A payload of 3 to 210 bytes that names `i`.
pub fn payload(i: u64) -> Vec<u8> {
    format!("r{i}-{}", "y".repeat((i % 200) as usize)).into_bytes()
}

/// Runs the four writers on `wal` (tokio tasks) to their end: 150 steps each, a record,
/// a transaction of 3 or a batch of 2 in turn. Returns the records written.
pub async fn write_mixed(wal: &Wal) -> usize {
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let wal = wal.clone();
            tokio::spawn(async move {
                let mut written = 0;
                for i in 0..150u64 {
                    written += match i % 3 {
                        0 => {
                            wal.append(payload(w * 1000 + i)).await.unwrap();
                            1
                        }
                        1 => {
                            let entries = (0..3).map(|k| payload(i * 7 + k)).collect();
                            wal.commit(entries).await.unwrap();
                            3
                        }
                        _ => {
                            let records = (0..2).map(|k| payload(i * 11 + k)).collect();
                            wal.append_batch(records).await.unwrap();
                            2
                        }
                    };
                }
                written
            })
        })
        .collect();
    let mut total = 0;
    for w in writers {
        total += w.await.unwrap();
    }
    total
}

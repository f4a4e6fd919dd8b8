//! Compression under power loss, on the simulated disk: the empty segment a compressing
//! log creates again with the `COMPRESSED` flag (before its first frame) replaces the old
//! one by a rename, and a crash must never bring the old one back under records that were
//! acknowledged in the new one, even when the directory `fsync` of that rename failed.

mod sim;

use actix_wal::*;
use sim::{Fault, SimStorage};
use std::path::Path;

const DIR: &str = "/wal";

fn config(storage: SharedStorage) -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(64 * 1024)
        .max_record_bytes(16 * 1024)
        .preallocate(false)
        .storage(storage)
        .compression(Compression::lz4())
}

fn json(i: u64) -> Vec<u8> {
    (0..40)
        .map(|k| format!("{{\"id\":{i},\"k\":{k},\"name\":\"user{}\"}},", k % 7))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test]
async fn a_failed_directory_fsync_of_the_recreated_first_segment_loses_no_acknowledged_record() {
    let sim = SimStorage::new();
    let wal = Wal::open_standalone(DIR, config(sim.shared()))
        .await
        .unwrap();
    // The first batch creates the empty first segment again, with the flag: its rename's
    // directory fsync fails, so that batch fails (nothing acknowledged) and the rename is
    // not durable.
    sim.inject(sim.ops(), Fault::DirSyncError);
    let first = wal.append(json(1)).await;
    assert!(
        first.is_err(),
        "the injected fault must strike the segment's creation: {first:?}"
    );
    // The next append goes into the segment under that name (flagged now): acknowledged.
    let lsn = wal.append(json(2)).await.unwrap();
    let more = wal.append(json(3)).await.unwrap();
    // Power cuts now, under many seeds: the rename is kept or lost at random unless the
    // writer made it durable before it wrote the acknowledged records.
    for seed in 0..64 {
        let image = sim.crash(seed);
        let records: Vec<Record> = LogReader::open_with(Path::new(DIR), image.shared(), 16 * 1024)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for (l, p) in [(lsn, json(2)), (more, json(3))] {
            assert!(
                records.iter().any(|r| r.lsn == l && r.payload == p),
                "seed {seed}: acknowledged LSN {} lost ({} records read)",
                l.0,
                records.len()
            );
        }
    }
    wal.shutdown().await.unwrap();
}

//! Reads stay exact across disk faults (failpoints, one test per binary as the failpoint
//! tests run): after a failed fsync the batch is rewritten into a fresh segment, and after
//! a failed write the log is cut back; the read index follows both, so every
//! acknowledged LSN reads back its payload and nothing unacknowledged is readable.
#![cfg(feature = "failpoints")]

mod common;

use actix_wal::*;
use common::fault_config;
use fail::FailScenario;
use futures::future::join_all;
use std::collections::HashMap;

async fn append_all(wal: &Wal, tag: u32, n: u32) -> Vec<(Result<Lsn, WalError>, Vec<u8>)> {
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("{tag}:{i}:{}", "x".repeat((i % 200) as usize)).into_bytes())
        .collect();
    let results = join_all(payloads.iter().map(|p| wal.append(p.clone()))).await;
    results.into_iter().zip(payloads).collect()
}

#[actix::test]
async fn reads_follow_rewrites_and_cut_backs() {
    let scenario = FailScenario::setup();
    for point in ["flusher::before_sync", "flusher::before_write"] {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::open(d.path(), fault_config()).await.unwrap();
        let mut acked: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut refused = 0;
        for round in 0..6 {
            if round == 2 {
                fail::cfg(point, "1*return(EIO)").unwrap();
            }
            for (r, p) in append_all(&wal, round, 60).await {
                match r {
                    Ok(lsn) => {
                        acked.insert(lsn.0, p);
                    }
                    Err(_) => refused += 1,
                }
            }
            fail::remove(point);
        }
        let end = wal.flush().await.unwrap().0;
        for (&lsn, want) in &acked {
            let got = wal.read(Lsn(lsn)).await.unwrap();
            assert_eq!(&got.payload, want, "{point}: LSN {lsn}");
        }
        assert!(matches!(
            wal.read(Lsn(end + 1)).await,
            Err(WalError::NotFound { .. })
        ));
        let stats = wal.stats().await.unwrap();
        if point == "flusher::before_write" {
            assert!(refused > 0, "a failed write fails its callers");
            assert!(stats.write_failures > 0);
        } else {
            assert!(stats.sync_failures > 0, "the batch was rewritten");
        }
        // Every LSN below the durable end was acknowledged once (LSNs of failed writes
        // are given out again), and reads agree with the offline reader.
        let all = wal.read_range(Lsn(1)..Lsn(end + 1), 1 << 20).await.unwrap();
        assert_eq!(all.len() as u64, end);
        wal.shutdown().await.unwrap();
        let offline: Vec<Record> = LogReader::open(d.path())
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(all, offline, "{point}");
    }
    scenario.teardown();
}

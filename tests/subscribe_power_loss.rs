//! A subscriber never yields a record a power cut could take (issue 22, item 1): the actor
//! pipeline on the simulated disk (`tests/sim`), four writers appending across rollovers,
//! one subscriber following; each time it yields a record, power cuts of the disk as it is
//! at that moment (several crash seeds) are recovered, and every image holds that record
//! with its payload. The same check right after buffered appends are answered (written,
//! not yet fsynced) finds records the simulated disk drops (teeth).

mod sim;

use actix_wal::*;
use futures::StreamExt;
use std::path::Path;

const DIR: &str = "/wal";

fn config(storage: SharedStorage) -> WalConfig {
    WalConfig {
        segment_size_bytes: 4096,
        max_record_bytes: 1024,
        max_batch_bytes: 2048,
        preallocate: false,
        flush_interval_ms: 2,
        storage,
        ..WalConfig::default()
    }
}

/// Recovers `image` and says whether it holds record `lsn` with `payload`.
fn image_holds(image: &sim::SimStorage, lsn: Lsn, payload: &[u8]) -> Result<(), String> {
    let reader = LogReader::open_with(Path::new(DIR), image.shared(), 1024)
        .map_err(|e| format!("the crash image does not open: {e}"))?;
    for r in reader {
        let r = r.map_err(|e| format!("reading the crash image: {e}"))?;
        if r.lsn == lsn {
            return if r.payload == payload {
                Ok(())
            } else {
                Err(format!("LSN {lsn} holds other bytes"))
            };
        }
    }
    Err(format!("LSN {lsn} is not in the crash image"))
}

#[actix::test]
async fn every_record_a_subscriber_yields_survives_a_power_cut_at_that_moment() {
    let sim = sim::SimStorage::new();
    let wal = Wal::open(DIR, config(sim.shared())).await.unwrap();
    let mut sub = wal.subscribe(Lsn(1));
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let wal = wal.clone();
            actix_rt::spawn(async move {
                for i in 0..150u32 {
                    let body = vec![w; 40 + (i as usize * 7) % 300];
                    wal.append(body).await.unwrap();
                }
            })
        })
        .collect();
    let (mut checked, mut images) = (0u64, 0u64);
    let mut problems = Vec::new();
    while checked < 600 {
        let r = tokio::time::timeout(std::time::Duration::from_secs(30), sub.next())
            .await
            .expect("the subscriber stalled")
            .expect("no end while open")
            .unwrap();
        assert_eq!(r.lsn, Lsn(checked + 1), "in order, no gap");
        checked += 1;
        // Every record at the start, then every seventh (the images cost).
        if checked <= 40 || checked % 7 == 0 {
            for seed in 0..3 {
                let image = sim.crash(sim::mix(checked, seed));
                images += 1;
                if let Err(e) = image_holds(&image, r.lsn, &r.payload) {
                    problems.push(format!("record {} (seed {seed}): {e}", r.lsn));
                }
            }
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    wal.shutdown().await.unwrap();
    assert!(images > 200, "only {images} crash images");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Teeth: the same check, right after buffered appends are answered (before their fsync),
/// finds records a power cut takes: it would catch a subscriber that yielded them.
#[actix::test]
async fn the_check_finds_records_not_yet_fsynced() {
    let sim = sim::SimStorage::new();
    let mut cfg = config(sim.shared());
    cfg.flush_interval_ms = 50;
    let wal = Wal::open(DIR, cfg).await.unwrap();
    let mut missing = 0;
    for i in 0..40u32 {
        let body = vec![7u8; 50 + i as usize];
        let lsn = wal
            .send(Append::new(body.clone()).durability(Durability::Buffered))
            .await
            .unwrap();
        for seed in 0..3 {
            let image = sim.crash(sim::mix(u64::from(i), seed));
            missing += usize::from(image_holds(&image, lsn, &body).is_err());
        }
    }
    wal.shutdown().await.unwrap();
    assert!(
        missing > 0,
        "no crash image lacked a record not yet fsynced"
    );
}

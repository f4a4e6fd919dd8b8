//! A failed fsync is answered by rewriting the batch into a fresh segment; these tests
//! make that rewrite fail too, on the simulated disk ([`sim::SimStorage`]), and check the
//! log can go on: nothing acknowledged lost, later appends durable, shutdown clean.

mod sim;

use actix_wal::LogReader;
use actix_wal::{SharedStorage, Storage, Wal, WalConfig};
use sim::SimStorage;
use std::path::Path;

const DIR: &str = "/wal";

fn config(storage: SharedStorage) -> WalConfig {
    let mut cfg = WalConfig::default()
        .segment_size_bytes(1024)
        .max_record_bytes(256)
        .preallocate(false);
    cfg.storage = storage;
    cfg
}

/// A simulated disk holding the log's (empty, durable) directory.
fn new_disk() -> SimStorage {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

fn old(i: u64) -> Vec<u8> {
    format!("record {i:04}").into_bytes()
}

/// Found by the model test: on a new log, a batch's fsync fails and its rewrite (which
/// replaces segment 1, the one the log goes on in) fails at its own fsync. The log must
/// still have a segment 1 to go on in: later appends succeed and shutdown is clean.
#[test]
fn a_failed_rewrite_of_the_first_segment_leaves_a_segment_to_go_on_in() {
    let disk = new_disk();
    actix::System::new().block_on(async move {
        let wal = Wal::open(DIR, config(disk.shared())).await.unwrap();
        disk.inject(disk.ops(), sim::Fault::SyncError);
        disk.inject(disk.ops(), sim::Fault::SyncError);
        let failed = wal.append(old(1)).await;
        assert!(failed.is_err(), "both fsyncs failed, yet {failed:?}");
        let lsn = wal.append(old(1)).await.unwrap();
        wal.shutdown().await.unwrap();
        let got: Vec<_> = LogReader::open_with(DIR, disk.shared(), 256)
            .unwrap()
            .map(|r| r.unwrap().lsn)
            .collect();
        assert_eq!(got, vec![lsn]);
    });
}

/// Issue 23 (slot frames): a segment may hold slot frames before the first record named
/// by its LSN, so a batch can begin past its start in a segment named by its own first
/// LSN. Here the batch's fsync fails and the rewrite's first step (folding the slot's
/// value into `META`, whose fsync fails too) fails before anything was removed: the
/// segment, which holds an acknowledged slot value, must stay as it is, and the rewrite
/// be tried again. Before the fix, the cut-back removed the segment and created it again
/// empty, and the log went on past a hole where the slot frame had been: the record
/// acknowledged after it read as nothing (`left: [], right: [Lsn(1)]`).
#[test]
fn a_rewrite_that_fails_before_its_removal_keeps_the_slot_frames_before_the_batch() {
    let disk = new_disk();
    actix::System::new().block_on(async move {
        // Two fsyncs fail in a row (the batch's, the fold's): allowed, so that the
        // rewrite is tried again rather than the log poisoned.
        let cfg = || WalConfig {
            max_sync_retries: 3,
            ..config(disk.shared())
        };
        let wal = Wal::open(DIR, cfg()).await.unwrap();
        wal.set_meta(b"v1".to_vec()).await.unwrap();
        // A slot frame at the start of segment 1: it takes no LSN, so the next record's
        // batch begins at LSN 1 in segment 1, after it.
        wal.set_meta(b"v2 in segment 1".to_vec()).await.unwrap();
        disk.inject(disk.ops(), sim::Fault::SyncError);
        disk.inject(disk.ops(), sim::Fault::SyncError);
        // Its rewrite is tried again once the fold fails: it may be acknowledged.
        let first = wal.append(old(1)).await;
        // A power cut now: the acknowledged slot value is still there (before the fix,
        // the cut-back had removed its segment with `META` still holding `v1`).
        for seed in 0..8 {
            let image = disk.snapshot(0).crash(seed);
            let opts = actix_wal::LogOptions {
                segment_size_bytes: 1024,
                max_record_bytes: 256,
                preallocate: false,
                recovery_policy: actix_wal::RecoveryPolicy::TolerateTornTail,
                storage: image.shared(),
            };
            let (_w, outcome) = actix_wal::LogWriter::open(Path::new(DIR), opts).unwrap();
            assert_eq!(
                outcome.meta.as_deref(),
                Some(&b"v2 in segment 1"[..]),
                "crash image {seed}"
            );
        }
        let second = wal.append(old(2)).await.unwrap();
        assert_eq!(wal.meta().as_deref(), Some(&b"v2 in segment 1"[..]));
        wal.shutdown().await.unwrap();
        let acked: Vec<_> = first.into_iter().chain([second]).collect();
        let got: Vec<_> = LogReader::open_with(DIR, disk.shared(), 256)
            .unwrap()
            .map(|r| r.unwrap().lsn)
            .collect();
        assert_eq!(got, acked);
        let wal = Wal::open(DIR, cfg()).await.unwrap();
        assert_eq!(wal.meta().as_deref(), Some(&b"v2 in segment 1"[..]));
        wal.shutdown().await.unwrap();
    });
}

/// The same start (a batch beginning after a slot frame in the segment named by its first
/// LSN, its fsync failed), but the rewrite fails after it removed that segment (creating
/// its replacement fails): the cut-back creates the segment again, empty, and the log must
/// go on at its start. Before the fix it went on where the batch had begun, past the slot
/// frame's bytes, now zeros: the records acknowledged after it read as nothing.
#[test]
fn a_rewrite_that_fails_after_its_removal_goes_on_at_the_start_of_the_segment() {
    let disk = new_disk();
    actix::System::new().block_on(async move {
        let wal = Wal::open(DIR, config(disk.shared())).await.unwrap();
        wal.set_meta(b"v1".to_vec()).await.unwrap();
        wal.set_meta(b"v2 in segment 1".to_vec()).await.unwrap();
        // A replace of META (a cursor's creation) carries v2 into the file: the rewrite
        // then has nothing to fold, and goes straight to removing segment 1.
        wal.cursor("c").await.unwrap();
        disk.inject_chain(disk.ops(), sim::Fault::SyncError, sim::Fault::WriteError);
        let failed = wal.append(old(1)).await;
        assert!(failed.is_err(), "the rewrite failed, yet {failed:?}");
        let a = wal.append(old(1)).await.unwrap();
        let b = wal.append(old(2)).await.unwrap();
        wal.shutdown().await.unwrap();
        let got: Vec<_> = LogReader::open_with(DIR, disk.shared(), 256)
            .unwrap()
            .map(|r| r.unwrap().lsn)
            .collect();
        assert_eq!(got, vec![a, b]);
        let wal = Wal::open(DIR, config(disk.shared())).await.unwrap();
        assert_eq!(wal.meta().as_deref(), Some(&b"v2 in segment 1"[..]));
        wal.shutdown().await.unwrap();
    });
}

/// A batch in the middle of segment 1 fails its fsync, and its rewrite fails at its own
/// fsync: the batch fails (its callers are told), and the log goes on. It must not go on
/// in segment 1, the file whose fsync failed (after a failed fsync Linux may have marked
/// its pages clean: nothing written there is known to reach the disk), but in a fresh
/// segment named by the next batch's first LSN, as after any failed fsync. Before the fix
/// the next batch was written and fsynced in segment 1, where the failed one had begun
/// (a fault probe of the public API, 2026-12-07).
#[test]
fn after_a_failed_rewrite_the_log_goes_on_in_a_fresh_segment() {
    let disk = new_disk();
    actix::System::new().block_on(async move {
        let wal = Wal::open(DIR, config(disk.shared())).await.unwrap();
        let first = wal.append(old(1)).await.unwrap();
        let second = wal.append(old(2)).await.unwrap();
        // Work off the commit path (the raise of `META` after the first batch) takes
        // fsyncs too: the faults are armed once the disk has been still for 200 ms.
        let mut still_since = (disk.ops(), std::time::Instant::now());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while still_since.1.elapsed() < std::time::Duration::from_millis(200) {
            assert!(
                std::time::Instant::now() < deadline,
                "the disk never went still"
            );
            actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
            if disk.ops() != still_since.0 {
                still_since = (disk.ops(), std::time::Instant::now());
            }
        }
        // The batch's fsync, then the rewrite's (its fresh segment's, under `.tmp`).
        disk.inject(disk.ops(), sim::Fault::SyncError);
        disk.inject(disk.ops(), sim::Fault::SyncError);
        let failed = wal.append(old(3)).await;
        assert!(failed.is_err(), "both fsyncs failed, yet {failed:?}");
        let third = wal.append(old(3)).await.unwrap();
        let fourth = wal.append(old(4)).await.unwrap();
        wal.shutdown().await.unwrap();
        let got: Vec<_> = LogReader::open_with(DIR, disk.shared(), 256)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.lsn, r.segment_first_lsn, r.payload)
            })
            .collect();
        let want = vec![
            (first, first, old(1)),
            (second, first, old(2)),
            // A fresh segment, named by the first LSN of the batch after the failed one.
            (third, third, old(3)),
            (fourth, third, old(4)),
        ];
        assert_eq!(got, want);
    });
}

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

fn old(i: u64) -> Vec<u8> {
    format!("record {i:04}").into_bytes()
}

/// Found by the model test: on a new log, a batch's fsync fails and its rewrite (which
/// replaces segment 1, the one the log goes on in) fails at its own fsync. The log must
/// still have a segment 1 to go on in: later appends succeed and shutdown is clean.
#[test]
fn a_failed_rewrite_of_the_first_segment_leaves_a_segment_to_go_on_in() {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let disk = sim.clone();
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

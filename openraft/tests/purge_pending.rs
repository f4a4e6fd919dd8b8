//! A purge of entries whose append is not yet durable (a caller of the store that did not
//! wait for the append's callback; openraft itself waits) purges them all the same: it
//! waits for them to be durable, then moves the log's first LSN past them. (The log
//! checkpoints only durable records: the purge answered Ok, the first LSN stayed below
//! the purge point, and the purged entries were read back until the next open.)
//! Feature `failpoints`: actix-wal's `flusher::before_sync` holds the fsync back.
#![cfg(feature = "failpoints")]

use actix_wal_openraft::{WalLogReader, WalLogStore};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{blank_ent, log_id};
use openraft::RaftLogReader;
use std::time::Duration;

mod common;
use common::Config;

type Store = WalLogStore<Config>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_of_entries_not_yet_durable_purges_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Default::default()).await.unwrap();
    store
        .blocking_append((0..3).map(|i| blank_ent::<Config>(1, 1, i)))
        .await
        .unwrap();
    fail::cfg("flusher::before_sync", "sleep(1500)").unwrap();
    // Appended, not waited for: its callback comes after the held fsync.
    let pending = store.blocking_append((3..10).map(|i| blank_ent::<Config>(1, 1, i)));
    let waited = tokio::time::timeout(Duration::from_millis(300), pending).await;
    assert!(waited.is_err(), "the fsync was not held back");
    let purged = store.purge(log_id(1, 1, 6)).await;
    fail::remove("flusher::before_sync");
    purged.unwrap();
    let stats = store.wal().stats().await.unwrap();
    assert_eq!(stats.first_lsn.0, 8, "the first LSN after purging index 6");
    let indexes: Vec<u64> = store
        .try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(indexes, (7..10).collect::<Vec<_>>(), "purged entries read");
    let mut reader = WalLogReader::<Config>::new(store.wal().clone());
    let purged_start = reader.limited_get_log_entries(4, 8).await.unwrap();
    assert!(
        purged_start.is_empty(),
        "a limited read from a purged index"
    );
    store.wal().shutdown().await.unwrap();
}

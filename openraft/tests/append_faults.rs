//! An append after a write that failed (feature `failpoints`: actix-wal's
//! `flusher::before_write` returns an I/O error once). The failed write gives its LSNs back
//! to the log; the store must not take the LSN it expected for the next append as given:
//! an append that does not follow on from what the log holds is refused before anything
//! is written, and the next one that does is taken. (The store kept the LSN it expected
//! from before the failure: an append of index 8 after a failed 5..=7 passed the check,
//! was written at LSN 6, the place of index 5, and from then on every read, and every
//! reopen, failed: "the record at LSN 6 holds the entry of index 8, not of index 5".)
#![cfg(feature = "failpoints")]

use actix_wal_openraft::WalLogStore;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{blank_ent, log_id};
use openraft::RaftLogReader;

mod common;
use common::Config;

type Store = WalLogStore<Config>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_after_a_failed_write_follows_on_from_what_the_log_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Default::default()).await.unwrap();
    store
        .blocking_append((0..5).map(|i| blank_ent::<Config>(1, 1, i)))
        .await
        .unwrap();
    fail::cfg("flusher::before_write", "1*return(EIO)").unwrap();
    let failed = store
        .blocking_append((5..8).map(|i| blank_ent::<Config>(1, 1, i)))
        .await;
    fail::remove("flusher::before_write");
    assert!(failed.is_err(), "the write failed and the callback said so");
    // Index 8 after 4 is a hole: refused, and nothing of it written.
    let refused = store.blocking_append([blank_ent::<Config>(1, 1, 8)]).await;
    assert!(refused.is_err(), "index 8 after 4 was taken");
    // What follows on from 4 is taken.
    store
        .blocking_append((5..8).map(|i| blank_ent::<Config>(1, 1, i)))
        .await
        .unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
    store.wal().shutdown().await.unwrap();
    drop(store);
    let mut store = Store::open(dir.path(), Default::default()).await.unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
    let indexes: Vec<u64> = store
        .try_get_log_entries(0..8)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(indexes, (0..8).collect::<Vec<_>>());
    store.wal().shutdown().await.unwrap();
}

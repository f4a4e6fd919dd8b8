//! openraft's own conformance suite (`openraft::testing::Suite::test_all`) on
//! `WalLogStore`: every test of it, each on a fresh log directory, with a small in-memory
//! state machine (the suite tests the state machine too, so it needs one).

mod common;

use actix_wal_openraft::WalLogStore;
use common::{io_error, Config, MemStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

/// A fresh log directory per test (the guard removes it), and an empty state machine.
struct Builder;

impl StoreBuilder<Config, WalLogStore<Config>, MemStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, WalLogStore<Config>, MemStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(io_error)?;
        let store = WalLogStore::open(dir.path(), Default::default())
            .await
            .map_err(io_error)?;
        Ok((dir, store, MemStateMachine::default()))
    }
}

#[test]
fn openraft_suite_passes_on_wal_log_store() {
    Suite::test_all(Builder).expect("every test of openraft's suite passes");
}

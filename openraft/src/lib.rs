//! # actix-wal-openraft
//!
//! [actix-wal](actix_wal) as [openraft]'s log storage: [`WalLogStore`] implements
//! `RaftLogStorage` and [`WalLogReader`] `RaftLogReader` (openraft 0.9, `storage-v2`) on
//! actix-wal's public API, so the Raft log gets actix-wal's group commit, recovery and
//! checkpoints. The state machine and its snapshots stay the application's.
//!
//! How Raft maps onto the log (details in `docs/replication.md`):
//!
//! - Raft index `i` is LSN `i + 1` (an LSN is never 0): no index map. Entries are encoded with actix-wal's [codec](actix_wal::format::codec).
//! - `append` enqueues the entries ([`Durability::Buffered`](actix_wal::Durability)) and
//!   calls openraft's callback from [`Wal::wait_durable`](actix_wal::Wal::wait_durable)
//!   on the last one, so appends that meet in the queue share one fsync.
//! - The entries appended last (up to [`RECENT_MAX_BYTES`], see
//!   [`WalLogStore::with_recent_bytes`]) stay in memory as the bytes the log was given:
//!   replication reads them from there without waiting for the leader's own `fsync`.
//! - `truncate` is [`Wal::truncate_after`](actix_wal::Wal::truncate_after); `purge` records
//!   the purged log id in the metadata slot, then [`Wal::truncate_before`](actix_wal::Wal::truncate_before)
//!   (or [`Wal::reset`](actix_wal::Wal::reset) when it reaches past the end of the log).
//! - The vote, the committed log id and the last purged log id live in the log's metadata
//!   slot ([`Wal::set_meta`](actix_wal::Wal::set_meta)): the vote and the purge point are
//!   durable before their call returns; the committed log id goes with the next of them.
//!   So a leader restarted in the same term starts with an older committed id: hold
//!   linearizable reads until the last log id at open is applied (`docs/replication.md`).
//!
//! ```no_run
//! # async fn f() -> Result<(), actix_wal_openraft::AdapterError> {
//! use std::io::Cursor; // the default snapshot type of `declare_raft_types!`
//! openraft::declare_raft_types!(pub Config: D = String, R = String);
//! let store = actix_wal_openraft::WalLogStore::<Config>::open("/tmp/raft-log", Default::default()).await?;
//! # let _ = store; Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cuts;
mod error;
mod reader;
mod recent;
mod store;

pub use error::AdapterError;
pub use reader::WalLogReader;
pub use recent::RECENT_MAX_BYTES;
pub use store::{WalLogStore, COMMITTED_WRITE_INTERVAL_MS};

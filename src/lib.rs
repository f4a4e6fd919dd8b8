//! # actix-wal
//!
//! A crash-safe, asynchronous write-ahead log for applications built on actix. Every
//! durable append or commit is answered only after its bytes are fsynced, and many
//! transactions share one fsync (group commit).
//!
//! - [`Wal`] is the handle: [`Wal::open`] recovers the log and starts the actors on the
//!   caller's actix `System`; [`Wal::open_standalone`] gives them a `System` thread of
//!   their own, for tokio applications and plain threads.
//! - Typed records: [`Append::encode`], [`Commit::encode`], [`AppendBatch::encode`] and [`Record::decode`] go
//!   through the [codec](format::codec) (bincode 2), which refuses at encode a value that
//!   would not decode again.
//! - Reads on the open log: [`Wal::read`] and [`Wal::read_range`] return durable records
//!   by LSN through a sparse in-memory index ([`log::LogIndex`]), one `pread` each, on a
//!   reader pool off the queue's thread.
//! - The actors: the [`Queue`] assigns LSNs and gathers batches, the `Flusher` writes and
//!   fsyncs them on its own thread, the `Supervisor` watches the flusher and switches the
//!   log to synchronous degraded mode when it dies, and `Recovery` scans and replays the
//!   log at open. Transaction actors send the [`messages`] to [`Wal::queue`].
//! - The foundation, free of actix: the on-disk [`format`](mod@format), the [`storage`] seam, and the
//!   [`log`] (segments, [`LogReader`], the recovery core, truncation).
//!
//! ```no_run
//! use actix_wal::{Wal, WalConfig};
//! # #[actix::main] async fn main() -> Result<(), actix_wal::WalError> {
//! let wal = Wal::open("/tmp/my-log", WalConfig::default()).await?;
//! let lsn = wal.append(b"hello".to_vec()).await?; // durable: fsynced
//! wal.shutdown().await?;
//! # let _ = lsn; Ok(()) }
//! ```
//!
//! ## What is not public
//!
//! Only the queue and the messages an application sends are public. The messages the
//! actors exchange among themselves (the supervisor's `EnterDegraded` and
//! `AttachFlusher`, the flusher's `WriteBatch`, `StartFlusher`, `FlusherDied`) are the
//! log's own: an application cannot force the log into degraded mode or hand it a
//! flusher. None of them can be named from outside the crate:
//!
//! ```compile_fail
//! use actix_wal::actors::queue::EnterDegraded;
//! ```
//! ```compile_fail
//! let _ = actix_wal::EnterDegraded { generation: 1, reason: String::new() };
//! ```
//! ```compile_fail
//! use actix_wal::actors::queue::AttachFlusher;
//! ```
//! ```compile_fail
//! use actix_wal::actors::flusher::WriteBatch;
//! ```
//! ```compile_fail
//! use actix_wal::actors::supervisor::{FlusherDied, StartFlusher};
//! ```
//!
//! while what an application uses can:
//!
//! ```
//! use actix_wal::{Append, Commit, Flush, GetHealth, GetStats, Queue, SetMode, Shutdown};
//! use actix_wal::{CommitMode, TruncateBefore};
//! fn _takes(_: actix::Addr<Queue>, _: Append, _: Commit, _: Flush, _: GetHealth) {}
//! let _ = (GetStats, SetMode(CommitMode::Sync), Shutdown, TruncateBefore(actix_wal::Lsn(1)));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod actors;
pub mod config;
mod config_builder;
pub mod error;
#[cfg(feature = "failpoints")]
mod failpoint;
pub mod format;
mod health;
pub mod log;
mod lsn;
pub mod messages;
pub mod metrics;
mod queue_thread;
mod standalone;
mod stats;
pub mod storage;
mod wal;

pub use actors::queue::Queue;
pub use config::{QueueThread, WalConfig, WhenFull};
pub use error::{Result, WalError};
pub use format::codec::CodecStep;
pub use health::{Alert, AlertKind, AlertState, GetHealth, Health};
pub use log::{
    LogDir, LogOptions, LogReader, LogWriter, Record, RecoveryOptions, RecoveryOutcome,
    RecoveryPolicy, TxnPosition,
};
pub use lsn::Lsn;
pub use messages::SetMeta;
pub use messages::{
    Append, AppendBatch, AppendOptions, Commit, Durability, DurabilityReply, Flush, GetStats,
    Notify, RecoveryReport, Replayed, Reset, SetMode, Shutdown, TruncateAfter, TruncateBefore,
    WaitDurable,
};
pub use stats::{CommitMode, WalMode, WalStats};
pub use storage::{FsStorage, GroupReadFsStorage, SharedStorage, Storage, StorageFile};
pub use wal::Wal;

/// The Markdown documents, each compiled as the documentation of an item that exists only
/// for `cargo test --doc`: their Rust blocks compile (and run, unless marked `no_run`) in
/// the test command, so a document cannot drift from the API. Blocks that are not Rust are
/// marked `text` or `sh`.
#[cfg(doctest)]
mod markdown_doctests {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/architecture.md")]
    struct Architecture;
    #[doc = include_str!("../docs/format.md")]
    struct Format;
    #[doc = include_str!("../docs/operations.md")]
    struct Operations;
    #[doc = include_str!("../docs/performance.md")]
    struct Performance;
    #[doc = include_str!("../docs/replication.md")]
    struct Replication;
    #[doc = include_str!("../docs/testing.md")]
    struct Testing;
}

//! # actix-wal
//!
//! A crash-safe, asynchronous write-ahead log for applications built on actix. Every
//! durable append or commit is answered only after its bytes are fsynced, and many
//! transactions share one fsync (group commit).
//!
//! - [`Wal`] is the handle: [`Wal::open`] recovers the log and starts the actors on the
//!   caller's actix `System`; [`Wal::open_standalone`] gives them a `System` thread of
//!   their own, for tokio applications and plain threads.
//! - Typed records: [`Append::encode`], [`Commit::encode`] and [`Record::decode`] go
//!   through the [codec](format::codec) (bincode 2), which refuses at encode a value that
//!   would not decode again.
//! - The actors ([`actors`]): the `Queue` assigns LSNs and gathers batches, the `Flusher`
//!   writes and fsyncs them on its own thread, the `Supervisor` watches the flusher and
//!   switches the log to synchronous degraded mode when it dies, and `Recovery` scans and
//!   replays the log at open.
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
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod actors;
pub mod config;
mod config_builder;
pub mod error;
pub mod failpoint;
pub mod format;
pub mod health;
pub mod log;
pub mod lsn;
pub mod metrics;
mod queue_thread;
mod standalone;
pub mod stats;
pub mod storage;
pub mod wal;

pub use actors::queue::{
    Append, AppendOptions, Commit, DurabilityReply, Flush, GetStats, Notify, SetMode, Shutdown,
    TruncateBefore,
};
pub use actors::recovery::{RecoveryReport, Replayed};
pub use config::{Durability, QueueThread, WalConfig, WhenFull};
pub use error::{Result, WalError};
pub use format::codec::CodecStep;
pub use health::{Alert, AlertKind, AlertState, GetHealth, Health};
pub use log::{
    LogDir, LogOptions, LogReader, LogWriter, Record, RecoveryOptions, RecoveryOutcome,
    RecoveryPolicy, TxnPosition,
};
pub use lsn::Lsn;
pub use stats::{WalMode, WalStats};
pub use storage::{FsStorage, SharedStorage, Storage, StorageFile};
pub use wal::Wal;

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
//!   by LSN through a sparse in-memory index, one `pread` each, on a
//!   reader pool off the queue's thread.
//! - The actors: the [`Queue`] assigns LSNs and gathers batches, the `Flusher` writes and
//!   fsyncs them on its own thread, the `Supervisor` watches the flusher and switches the
//!   log to synchronous degraded mode when it dies, and `Recovery` scans and replays the
//!   log at open. Transaction actors send the [`messages`] to [`Wal::queue`].
//! - The foundation, free of actix: the on-disk [`format`](mod@format), the [`storage`] seam,
//!   the synchronous [`LogWriter`] and the offline [`LogReader`] (both recover the log
//!   first), [`LogDir`] (a log directory, locked), and the read-only naming and `META`
//!   helpers in [`files`] (what `walctl` uses). The rest of the lower layer (segments,
//!   batches, the recovery core, truncation) is the crate's own.
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
//! The log's lower layer is not a back door either (issue 20, item 12): the metadata
//! store, the segment writer, the batch planner and the rest of the crate's internals are
//! not public, so nothing outside the crate can write a log's files without its
//! directory lock. `MetaStore::replace` once rewrote a live log's `META` this way (the
//! log then reopened at first LSN 4, three records hidden):
//!
//! ```compile_fail
//! use actix_wal::log::meta::MetaStore;
//! let dir = std::path::Path::new("/tmp/live-log");
//! let (mut w, _) = actix_wal::LogWriter::open(dir, actix_wal::LogOptions::default()).unwrap();
//! let mut store = MetaStore::open_default(actix_wal::storage::default_storage(), dir).unwrap();
//! let mut meta = store.current().cloned().unwrap();
//! meta.first_lsn = 4;
//! store.replace(meta).unwrap(); // no lock: the writer above holds it
//! # w.sync().unwrap();
//! ```
//! ```compile_fail
//! use actix_wal::log::SharedMeta;
//! ```
//! ```compile_fail
//! use actix_wal::log::{Batch, Planner, SegmentWriter};
//! ```
//! ```compile_fail
//! let _ = actix_wal::log::open_log;
//! ```
//! ```compile_fail
//! // The store of a locked directory is not handed out either (it could outlive the lock).
//! fn _f(d: &actix_wal::LogDir) { let _ = d.meta(); }
//! ```
//! ```compile_fail
//! // Nor the rewind steps (the queue's, in order with its batches).
//! let _ = (actix_wal::LogDir::truncate_after, actix_wal::LogDir::reset);
//! ```
//!
//! The read-only helpers a tool needs are public, and `META` is rewritten only through a
//! locked [`LogDir`] (what `walctl repair-meta` does):
//!
//! ```no_run
//! use actix_wal::files::{parse_segment_name, read_meta_copies, segment_name, SegmentEnd};
//! use actix_wal::{storage::default_storage, LogDir};
//! # fn main() -> Result<(), actix_wal::WalError> {
//! assert_eq!(parse_segment_name(&segment_name(7)), Some(7));
//! let dir = std::path::Path::new("/tmp/my-log");
//! let _read = read_meta_copies(&actix_wal::FsStorage, dir)?; // reads only
//! let log = LogDir::open(dir, default_storage())?; // the directory lock
//! log.reload_meta()?;
//! log.update_meta(|m| m.slot = None)?;
//! # let _: Option<SegmentEnd> = None; Ok(()) }
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
// Without the feature `internals` (the crate's own tests), its door is shut too.
#![cfg_attr(
    not(feature = "internals"),
    doc = "```compile_fail\nuse actix_wal::internals::meta::MetaStore;\n```"
)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod actors;
pub mod config;
mod config_builder;
mod cursor;
pub mod error;
#[cfg(feature = "failpoints")]
mod failpoint;
pub mod format;
mod health;
// Private: the lower layer writes segments and `META`; only what takes the directory lock
// (`LogWriter`, `LogDir`) and read-only helpers (`files`) are public. See the module docs.
mod log;
mod lsn;
pub mod messages;
pub mod metrics;
mod progress;
mod queue_thread;
mod replay;
mod standalone;
mod stats;
pub mod storage;
mod subscription;
mod wal;

pub use actors::queue::Queue;
pub use config::{Compression, QueueThread, WalConfig, WhenFull};
pub use cursor::{Cursor, CursorInfo};
pub use error::{Result, WalError};
pub use format::codec::CodecStep;
pub use health::{Alert, AlertKind, AlertState, GetHealth, Health};
pub use log::{
    Adoption, LogDir, LogOptions, LogReader, LogWriter, Record, RecoveryOptions, RecoveryOutcome,
    RecoveryPolicy, SharedRecord, TxnPosition,
};
pub use lsn::Lsn;
pub use messages::SetMeta;
pub use messages::{
    Append, AppendBatch, AppendOptions, Commit, Durability, DurabilityReply, Flush, GetStats,
    Notify, RecoveryReport, Replayed, Reset, SetMode, Shutdown, TruncateAfter, TruncateBefore,
    WaitDurable,
};
pub use replay::{Replay, REPLAY_CHUNK_BYTES};
pub use stats::{CommitMode, WalMode, WalStats};
pub use storage::{FsStorage, GroupReadFsStorage, SharedStorage, Storage, StorageFile};
pub use subscription::{
    SharedSubscription, Subscription, SUBSCRIPTION_CHUNK_BYTES, SUBSCRIPTION_MAX_CHUNK_BYTES,
};
pub use wal::Wal;

/// Read-only helpers over a log directory's files, for tools such as `walctl`: how
/// segment, spare, lock and `META` files are named, the segment list, the `META` reads
/// (both copies and their state), the promises of `META` recovery checks the segments
/// against, and the limits a reader applies. Nothing here writes.
pub mod files {
    pub use crate::log::meta::{
        read_meta, read_meta_copies, read_meta_copy, META_COPY_FILE, META_FILE,
    };
    pub use crate::log::meta::{CopyState, MetaRead};
    pub use crate::log::reader::DEFAULT_MAX_RECORD_BYTES;
    pub use crate::log::scan::{SegmentEnd, MAX_SEGMENT_BYTES};
    pub use crate::log::segment::{
        list_segments, parse_segment_name, segment_name, SegmentFile, LOCK_FILE,
    };
    pub use crate::log::spare::{is_spare_name, spare_name};
    pub use crate::log::{meta_breach, MetaBreach};
}

/// The lower layer itself (segment writer, batch planner, `MetaStore`, scan cursors,
/// spares, rewind steps), for **the crate's own tests and benches only**: unstable, it
/// bypasses the directory lock (a `MetaStore` writes `META` with no lock held), and it is
/// not for applications. Only with the feature `internals`.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::log::*;
}

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

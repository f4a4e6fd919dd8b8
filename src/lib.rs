//! # actix-wal
//!
//! A crash-safe, asynchronous write-ahead log for applications built on actix.
//!
//! Foundation layer (no actix): the on-disk [`format`], the [`storage`] seam, and the
//! [`log`] itself — segment files, [`LogReader`], the recovery core and checkpoint
//! truncation. See `docs/format.md` for the bytes on disk.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod error;
pub mod format;
pub mod log;
pub mod lsn;
pub mod storage;

pub use error::{Result, WalError};
pub use log::{
    LogDir, LogOptions, LogReader, LogWriter, Record, RecoveryOptions, RecoveryOutcome,
    RecoveryPolicy, TxnPosition,
};
pub use lsn::Lsn;
pub use storage::{FsStorage, SharedStorage, Storage, StorageFile};

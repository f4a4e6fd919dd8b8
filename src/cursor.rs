//! Durable named cursors (issue 22, item 3): [`Wal::cursor`] gives a [`Cursor`], the
//! position of one consumer of the log (an archiver, a replica, an index builder) kept in
//! the log's `META` file, so that the consumer resumes where it stopped after a restart,
//! and so that the log keeps every record the consumer has not read yet. A cursor holds
//! segments until it moves past them ([`Cursor::advance`]) or is removed; one that would
//! hold more than `WalConfig::max_cursor_lag_bytes` is invalidated instead
//! ([`WalError::CursorInvalidated`], the `CursorInvalidated` alert).
//! docs/architecture.md ("Cursors and retention") gives the rules.
//!
//! ```no_run
//! # async fn f(wal: actix_wal::Wal) -> Result<(), actix_wal::WalError> {
//! use futures::StreamExt;
//! let cursor = wal.cursor("archiver").await?;
//! let mut records = wal.subscribe(cursor.lsn());
//! while let Some(record) = records.next().await {
//!     let record = record?;
//!     // ... archive the record, durably ...
//!     cursor.advance(actix_wal::Lsn(record.lsn.0 + 1)).await?;
//! }
//! # Ok(()) }
//! ```

use crate::error::WalError;
use crate::format::meta::CursorMeta;
use crate::lsn::Lsn;
use crate::wal::Wal;
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One named cursor of the log ([`Wal::cursor`]): the next LSN its consumer needs,
/// durable in `META`. Cheap to clone; clones share the LSN this handle knows (another
/// handle to the same name from another `Wal::cursor` call learns of an advance made
/// through this one at its own next call: the log refuses an advance below the durable
/// value whatever the handle believes).
///
/// A cursor is not a handle: it does not keep a log from [`Wal::open_standalone`] open.
/// Once the application's last `Wal` is gone (or after [`Wal::shutdown`]), its calls are
/// [`WalError::ShutDown`], as a [`crate::Subscription`] then ends.
#[derive(Debug, Clone)]
pub struct Cursor {
    wal: Wal,
    name: String,
    /// The LSN last made durable through this handle (or found at its creation).
    lsn: Arc<AtomicU64>,
}

impl Cursor {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next LSN its consumer needs, as of its creation or its last advance through
    /// this handle: every record from here on is kept readable (until it is invalidated).
    pub fn lsn(&self) -> Lsn {
        Lsn(self.lsn.load(Ordering::Acquire))
    }

    /// Moves the cursor to `lsn`: the consumer has what it needs of every record below
    /// `lsn`. Durable in `META` before it returns; segments only this cursor held are then
    /// removed (retention runs). `lsn` equal to where it stands changes nothing.
    ///
    /// Refused, changing nothing: `lsn` below where it stands ([`WalError::CursorBackwards`]:
    /// a cursor never moves back), past the durable end ([`WalError::CursorPastEnd`]), a
    /// cursor removed meanwhile ([`WalError::CursorNotFound`]) or invalidated
    /// ([`WalError::CursorInvalidated`]), a log already poisoned or shut down. A failure
    /// while writing `META` ([`WalError::Io`], or [`WalError::Poisoned`] raised by this
    /// call) leaves the outcome unknown: after the next open the cursor stands where it
    /// stood or at `lsn` ([`crate::Wal::cursors`] tells).
    pub async fn advance(&self, lsn: impl Into<Lsn>) -> Result<(), WalError> {
        let lsn: Lsn = lsn.into();
        self.wal
            .send(AdvanceCursor {
                name: self.name.clone(),
                lsn: lsn.0,
            })
            .await?;
        // Clones may advance concurrently: the durable value only grows, so does this.
        self.lsn.fetch_max(lsn.0, Ordering::AcqRel);
        Ok(())
    }

    /// Removes the cursor, durably (an invalidated one too): it holds nothing from here,
    /// and this handle's next advance is [`WalError::CursorNotFound`].
    /// [`WalError::CursorNotFound`] if it is already gone.
    pub async fn remove(&self) -> Result<(), WalError> {
        self.wal.send(RemoveCursor(self.name.clone())).await
    }
}

/// A cursor as [`Wal::cursors`], `Health` and walctl show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorInfo {
    /// Its name.
    pub name: String,
    /// The next LSN its consumer needs.
    pub lsn: Lsn,
    /// Whether it was invalidated (over `max_cursor_lag_bytes`): it holds nothing.
    pub invalidated: bool,
    /// Durable records it has not passed yet: the durable end minus its LSN.
    pub lag_records: u64,
    /// Bytes of segments from the one holding its LSN to the newest: what it keeps on
    /// disk (0 for an invalidated cursor).
    pub lag_bytes: u64,
}

impl Wal {
    /// The cursor `name`, created durably at the log's first LSN if it does not exist, or
    /// the existing one where it stands (after a restart too). Names are 1 to
    /// `WalConfig::max_cursor_name_bytes` bytes of ASCII letters, digits, `.`, `_` and `-`
    /// ([`WalError::InvalidCursorName`]); at most `WalConfig::max_cursors` exist
    /// ([`WalError::TooManyCursors`]). Both limits are checked when a cursor is created:
    /// one made under larger limits is still found after a restart with smaller ones.
    /// An invalidated cursor is
    /// [`WalError::CursorInvalidated`]: remove it ([`Wal::remove_cursor`]) and create it
    /// again.
    pub async fn cursor(&self, name: impl AsRef<str>) -> Result<Cursor, WalError> {
        let meta = self.send(OpenCursor(name.as_ref().to_string())).await?;
        Ok(Cursor {
            // Not a handle: the consumer holding it must not keep a standalone log open
            // (its subscription ends when the application's last handle goes).
            wal: self.detached(),
            name: meta.name,
            lsn: Arc::new(AtomicU64::new(meta.lsn)),
        })
    }

    /// Removes the cursor `name` (valid or invalidated), durably.
    /// [`WalError::CursorNotFound`] if there is none.
    pub async fn remove_cursor(&self, name: impl AsRef<str>) -> Result<(), WalError> {
        self.send(RemoveCursor(name.as_ref().to_string())).await
    }

    /// Every cursor, in order of name, with its lag.
    pub async fn cursors(&self) -> Result<Vec<CursorInfo>, WalError> {
        self.send(ListCursors).await
    }
}

/// Creates or finds a cursor (see [`Wal::cursor`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<CursorMeta, WalError>")]
pub(crate) struct OpenCursor(pub String);

/// Moves a cursor (see [`Cursor::advance`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), WalError>")]
pub(crate) struct AdvanceCursor {
    /// The cursor.
    pub name: String,
    /// Where to.
    pub lsn: u64,
}

/// Removes a cursor (see [`Cursor::remove`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), WalError>")]
pub(crate) struct RemoveCursor(pub String);

/// Lists the cursors (see [`Wal::cursors`]).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<CursorInfo>, WalError>")]
pub(crate) struct ListCursors;

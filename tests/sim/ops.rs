//! The operations the simulated disk counts, records and can fail: the faults to inject,
//! the kinds of mutating operation, and how a recorded one is described.

use std::fmt;

/// A fault injected at the first operation of a compatible kind at or after a chosen
/// operation number. Each fires once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `write_all_at` fails with EIO and writes nothing.
    WriteError,
    /// `write_all_at` writes the first half of the buffer, then fails with EIO.
    ShortWrite,
    /// `write_all_at` writes the first third of the buffer, then fails with ENOSPC.
    NoSpace,
    /// `sync_data` / `sync_all` fails with EIO, with Linux's semantics: the file's pending
    /// writes are marked clean but never reach the disk (a crash keeps each, or not, at
    /// random), and a later fsync "succeeds" without writing them.
    SyncError,
    /// `sync_dir` fails with EIO; the directory's changes stay un-synced.
    DirSyncError,
}

impl Fault {
    pub(crate) fn strikes(self, op: OpKind) -> bool {
        match self {
            Fault::WriteError | Fault::ShortWrite | Fault::NoSpace => op == OpKind::Write,
            Fault::SyncError => matches!(op, OpKind::SyncData | OpKind::SyncAll),
            Fault::DirSyncError => op == OpKind::SyncDir,
        }
    }
}

/// The kinds of mutating operation; each gets an operation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `create_dir_all` that created something.
    MkDir,
    /// `create` (or `lock` creating its file).
    Create,
    /// `rename`.
    Rename,
    /// `remove`.
    Remove,
    /// `sync_dir`.
    SyncDir,
    /// `write_all_at`.
    Write,
    /// `set_len`.
    SetLen,
    /// `allocate`.
    Allocate,
    /// `sync_data`.
    SyncData,
    /// `sync_all`.
    SyncAll,
}

impl OpKind {
    /// Operations on directory entries (segment creation, removal, their fsync).
    pub fn is_namespace(self) -> bool {
        matches!(
            self,
            OpKind::MkDir | OpKind::Create | OpKind::Rename | OpKind::Remove | OpKind::SyncDir
        )
    }
}

/// One mutating operation, as the recorder and the trace describe it.
#[derive(Debug, Clone)]
pub struct OpDesc {
    /// Its kind.
    pub kind: OpKind,
    /// The path (or file name) it touched.
    pub path: String,
    /// Offset or length, where it has one.
    pub arg: u64,
}

impl fmt::Display for OpDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {} {}", self.kind, self.path, self.arg)
    }
}

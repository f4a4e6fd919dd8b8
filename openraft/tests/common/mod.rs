//! What the adapter's tests share: the type config and a small in-memory state machine
//! (its snapshot is the command list, encoded with actix-wal's codec).
#![allow(dead_code)]

use actix_wal::format::codec;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use openraft::{SnapshotMeta, StorageError, StorageIOError, StoredMembership};
use std::io::Cursor;
use std::sync::{Arc, Mutex};

openraft::declare_raft_types!(
    /// String commands and replies, u64 node ids.
    pub Config: D = String, R = String
);

/// What the state machine holds: the commands applied, in order.
#[derive(Debug, Default)]
pub struct Inner {
    pub last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// The commands applied, in log order.
    pub commands: Vec<String>,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
}

/// An in-memory state machine; its snapshot is the command list, encoded with the codec.
#[derive(Debug, Clone, Default)]
pub struct MemStateMachine(pub Arc<Mutex<Inner>>);

pub fn io_error(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write(AnyError::new(&e)).into()
}

impl RaftSnapshotBuilder<Config> for MemStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Config>, StorageError<u64>> {
        let mut sm = self.0.lock().expect("not poisoned");
        sm.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: sm.last_applied,
            last_membership: sm.membership.clone(),
            snapshot_id: format!("snapshot-{}", sm.snapshots_built),
        };
        let bytes = codec::encode(&sm.commands).map_err(io_error)?;
        sm.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<Config> for MemStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let sm = self.0.lock().expect("not poisoned");
        Ok((sm.last_applied, sm.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<Config>> + Send,
    {
        let mut sm = self.0.lock().expect("not poisoned");
        let mut replies = Vec::new();
        for entry in entries {
            sm.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => sm.commands.push(command),
                EntryPayload::Membership(m) => {
                    sm.membership = StoredMembership::new(Some(entry.log_id), m)
                }
            }
            replies.push(format!("applied {}", entry.log_id));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let commands: Vec<String> = codec::decode(&bytes).map_err(io_error)?;
        let mut sm = self.0.lock().expect("not poisoned");
        sm.commands = commands;
        sm.last_applied = meta.last_log_id;
        sm.membership = meta.last_membership.clone();
        sm.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<Config>>, StorageError<u64>> {
        let sm = self.0.lock().expect("not poisoned");
        Ok(sm.snapshot.clone().map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// A small seeded generator (xorshift), so that a failure names its seed.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n` (0 for `n` of 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

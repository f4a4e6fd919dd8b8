//! The state machine: a `BTreeMap` of keys to values with the table of idempotent writes
//! (`dedup`), and its snapshot (both, in `snapshot_body`'s format), written to
//! `DIR/snapshot` before openraft may purge the log below it.

use crate::dedup::{DedupTable, Seen};
use crate::identity::Member;
use crate::snapshot_body;
use crate::snapshot_data::SnapshotData;
use crate::{NodeId, Request, Response, TypeConfig, WriteResult};
use actix_wal::format::codec;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The first bytes of a snapshot file; a CRC-32 of the rest follows, then the body, whose
/// [`Stored::body`] is a `snapshot_body` of version 2.
const SNAPSHOT_MAGIC: &[u8; 4] = b"RKV2";
/// The same, in files written before the dedup table: their body is the map alone.
const SNAPSHOT_MAGIC_V1: &[u8; 4] = b"RKV1";

/// The map and how far into the log it is.
#[derive(Debug, Default)]
struct Data {
    /// The last entry applied.
    last_applied: Option<LogId<NodeId>>,
    /// The last membership applied.
    membership: StoredMembership<NodeId, Member>,
    /// Keys to values.
    map: BTreeMap<String, Vec<u8>>,
    /// The results of idempotent writes, per client (bounded: `dedup`).
    dedup: DedupTable,
}

/// A snapshot as kept in `DIR/snapshot`: openraft's metadata and the body
/// (`snapshot_body`: version 2 in `RKV2` files, the map alone in `RKV1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    meta: SnapshotMeta<NodeId, Member>,
    body: Vec<u8>,
}

/// The bytes of a [`Stored`] before its body (the metadata, then the body's length), so
/// that a file is written from a borrowed body: `head ++ body` is `codec::encode` of the
/// `Stored`, without the body's encoding and check by decoding (two passes over each of
/// its bytes, one at a time, and a copy).
fn stored_head(meta: &SnapshotMeta<NodeId, Member>, body_len: usize) -> std::io::Result<Vec<u8>> {
    let mut head = codec::encode(meta).map_err(std::io::Error::other)?;
    // A sequence's length: a u64, as serde gives it to bincode.
    let len = codec::encode(&(body_len as u64)).map_err(std::io::Error::other)?;
    head.extend_from_slice(&len);
    Ok(head)
}

/// The current snapshot, in memory: its body (version 2) shared with every send that
/// reads it (`snapshot_data`), never copied for one.
#[derive(Debug, Clone)]
struct Current {
    meta: SnapshotMeta<NodeId, Member>,
    body: Arc<Vec<u8>>,
}

/// The state machine. Cheap to clone (one `Arc`): openraft holds one clone, the HTTP
/// handlers another.
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The map. A std lock: it is never held across an `.await`, and a read is a lookup.
    data: RwLock<Data>,
    /// The last snapshot built or installed.
    snapshot: Mutex<Option<Current>>,
    /// Where snapshots are written (`None` for the memory log, which restarts empty).
    file: Option<PathBuf>,
    /// Makes snapshot ids unique on this node.
    snapshot_seq: AtomicU64,
    /// Held while a snapshot is written and made current, so a snapshot built from an
    /// older state never replaces a newer one installed meanwhile (in memory or on disk).
    publishing: tokio::sync::Mutex<()>,
}

/// A storage error about the state machine or a snapshot.
fn sm_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&e).into()
}

impl StateMachine {
    /// The state machine, starting from the snapshot in `file` if there is one.
    pub async fn open(file: Option<PathBuf>) -> Result<StateMachine, Box<dyn std::error::Error>> {
        let mut data = Data::default();
        let mut snapshot = None;
        if let Some(path) = &file {
            if let Some((mut stored, version)) = read_snapshot(path)? {
                (data.map, data.dedup) = if version == 1 {
                    let decoded = snapshot_body::decode_v1(&stored.body)?;
                    // What openraft sends to followers is version 2.
                    stored.body = snapshot_body::encode(&decoded.0, &decoded.1)?;
                    decoded
                } else {
                    snapshot_body::decode(&stored.body)?
                };
                data.last_applied = stored.meta.last_log_id;
                data.membership = stored.meta.last_membership.clone();
                snapshot = Some(Current {
                    meta: stored.meta,
                    body: Arc::new(stored.body),
                });
            }
        }
        Ok(StateMachine {
            inner: Arc::new(Inner {
                data: RwLock::new(data),
                snapshot: Mutex::new(snapshot),
                file,
                snapshot_seq: AtomicU64::new(0),
                publishing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The value of `key`, as applied here.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        // A poisoned lock means a panic mid-apply: nothing here is worth serving then.
        let data = self.inner.data.read().expect("state machine lock poisoned");
        data.map.get(key).cloned()
    }

    /// The index of the last entry the snapshot loaded at start (or built since) covers.
    fn snapshot_index(&self) -> Option<u64> {
        let snapshot = self.inner.snapshot.lock().expect("snapshot lock poisoned");
        snapshot.as_ref()?.meta.last_log_id.map(|l| l.index)
    }

    /// At start: an error naming the snapshot file if the log was purged up to `purged`
    /// and the snapshot loaded does not reach it (the file deleted or older). openraft
    /// would fail later, reading entries that are gone, and say only that (a probe saw
    /// "Failed to get log entries, expected index: [0, 64), got [Some(40), ...)").
    pub fn check_covers_purged(&self, purged: Option<u64>, id: NodeId) -> Result<(), String> {
        let held = self.snapshot_index();
        if purged <= held {
            return Ok(());
        }
        let file = self
            .inner
            .file
            .as_ref()
            .map_or("the snapshot file".into(), |f| f.display().to_string());
        let holds = held.map_or("no snapshot".into(), |i| format!("a snapshot to index {i}"));
        Err(format!(
            "the log was purged up to index {}, but {file} holds {holds}: the state below \
             the log is gone; restore the snapshot file, or remove node {id} from the \
             cluster and join a node with an empty directory",
            purged.unwrap_or(0)
        ))
    }

    /// How many keys the map holds.
    pub fn key_count(&self) -> usize {
        self.inner
            .data
            .read()
            .expect("state machine lock poisoned")
            .map
            .len()
    }

    /// Whether `key` is in the map, and how many keys are.
    pub fn contains(&self, key: &str) -> (bool, usize) {
        let data = self.inner.data.read().expect("state machine lock poisoned");
        (data.map.contains_key(key), data.map.len())
    }

    /// Makes `stored` the current snapshot unless a newer one already is: written to the
    /// snapshot file (if any) durably first (a temporary file, fsync, rename, fsync of the
    /// directory) on the blocking pool, as the Raft tasks share a thread. Returns whether
    /// it became current.
    async fn publish(&self, stored: Current) -> Result<bool, StorageError<NodeId>> {
        let _turn = self.inner.publishing.lock().await;
        let current = self.current_last_log_id();
        if current.is_some() && current > stored.meta.last_log_id {
            return Ok(false);
        }
        let stored = match self.inner.file.clone() {
            // Written on the blocking pool: the body is the whole map.
            Some(path) => {
                let written = tokio::task::spawn_blocking(move || {
                    let w = stored_head(&stored.meta, stored.body.len())
                        .and_then(|head| write_snapshot(&path, &[&head, &stored.body]));
                    (stored, w)
                })
                .await;
                let (stored, w) = written.map_err(sm_error)?;
                w.map_err(sm_error)?;
                stored
            }
            None => stored,
        };
        *self.inner.snapshot.lock().expect("snapshot lock poisoned") = Some(stored);
        Ok(true)
    }

    fn current_last_log_id(&self) -> Option<LogId<NodeId>> {
        let snapshot = self.inner.snapshot.lock().expect("snapshot lock poisoned");
        snapshot.as_ref().and_then(|s| s.meta.last_log_id)
    }
}

/// `path`'s snapshot and the version of its body (1 or 2), if the file exists; an error
/// if it is damaged.
fn read_snapshot(path: &Path) -> Result<Option<(Stored, u8)>, Box<dyn std::error::Error>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("read {}: {e}", path.display()).into()),
    };
    let version = match bytes.get(..4) {
        Some(m) if m == SNAPSHOT_MAGIC => 2,
        Some(m) if m == SNAPSHOT_MAGIC_V1 => 1,
        _ => return Err(format!("{} is not a raft_kv snapshot", path.display()).into()),
    };
    if bytes.len() < 8 {
        return Err(format!("{} is not a raft_kv snapshot", path.display()).into());
    }
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if crc32fast::hash(&bytes[8..]) != crc {
        return Err(format!("{}: CRC mismatch (damaged snapshot)", path.display()).into());
    }
    Ok(Some((codec::decode(&bytes[8..])?, version)))
}

/// Writes a snapshot file whose encoded `Stored` is `parts`, one after the other.
fn write_snapshot(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    let mut crc = crc32fast::Hasher::new();
    for part in parts {
        crc.update(part);
    }
    file.write_all(SNAPSHOT_MAGIC)?;
    file.write_all(&crc.finalize().to_le_bytes())?;
    for part in parts {
        file.write_all(part)?;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // A copy of the state under the lock (one pass over the values' bytes), encoded
        // and checked off it and off the Raft tasks' threads (several passes, and a
        // decode): writes go on meanwhile.
        let (map, dedup, last_log_id, last_membership) = {
            let data = self.inner.data.read().expect("state machine lock poisoned");
            let copy = (data.map.clone(), data.dedup.clone());
            (copy.0, copy.1, data.last_applied, data.membership.clone())
        };
        let encoded =
            tokio::task::spawn_blocking(move || snapshot_body::encode(&map, &dedup)).await;
        let body = encoded.map_err(sm_error)?.map_err(sm_error)?;
        let seq = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
            None => format!("--{seq}"),
        };
        let stored = Current {
            meta: SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id,
            },
            body: Arc::new(body),
        };
        let snapshot = Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(SnapshotData::shared(&stored.body)),
        };
        // Durable before openraft learns of it: it purges the log up to it next.
        self.publish(stored).await?;
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), StorageError<NodeId>>
    {
        let data = self.inner.data.read().expect("state machine lock poisoned");
        Ok((data.last_applied, data.membership.clone()))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        let mut data = self
            .inner
            .data
            .write()
            .expect("state machine lock poisoned");
        let mut replies = Vec::new();
        for entry in entries {
            data.last_applied = Some(entry.log_id);
            let mut response = Response::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Request::Set { writes }) => {
                    data.map.extend(writes);
                }
                EntryPayload::Normal(Request::SetOnce { writes }) => {
                    let data = &mut *data;
                    for w in writes {
                        let seen = w.once.as_ref().map_or(Seen::New, |id| data.dedup.seen(id));
                        response.results.push(match seen {
                            Seen::New => {
                                if let Some(id) = &w.once {
                                    data.dedup.record(id, entry.log_id.index);
                                }
                                data.map.insert(w.key, w.value);
                                WriteResult::Applied
                            }
                            Seen::Applied(index) => WriteResult::Duplicate(index),
                            Seen::Forgotten => WriteResult::Stale,
                        });
                    }
                }
                EntryPayload::Membership(m) => {
                    data.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            replies.push(response);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotData>, StorageError<NodeId>> {
        Ok(Box::new(SnapshotData::receiving()))
    }

    #[tracing::instrument(level = "debug", skip(self, snapshot))]
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError<NodeId>> {
        let started = std::time::Instant::now();
        let body = snapshot.into_body();
        // Decoded on the blocking pool: the body is the whole map, and the Raft tasks
        // (heartbeats among them) share the async threads.
        let decoding = body.clone();
        let decoded = tokio::task::spawn_blocking(move || snapshot_body::decode(&decoding)).await;
        let decoded = decoded.map_err(sm_error)?;
        let (map, dedup) =
            decoded.map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let bytes = body.len();
        let stored = Current {
            meta: meta.clone(),
            body,
        };
        // Durable before openraft installs it: it purges the log up to it next.
        self.publish(stored).await?;
        let mut data = self
            .inner
            .data
            .write()
            .expect("state machine lock poisoned");
        data.map = map;
        data.dedup = dedup;
        data.last_applied = meta.last_log_id;
        data.membership = meta.last_membership.clone();
        drop(data);
        // What `--snapshot-install-ms-per-mib` must cover (docs/replication.md).
        println!(
            "installed snapshot {} ({bytes} bytes) in {} ms",
            meta.snapshot_id,
            started.elapsed().as_millis()
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let stored = self
            .inner
            .snapshot
            .lock()
            .expect("snapshot lock poisoned")
            .clone();
        // The body shared, not copied: a follower's catch-up reads the whole of it.
        Ok(stored.map(|s| Snapshot {
            snapshot: Box::new(SnapshotData::shared(&s.body)),
            meta: s.meta,
        }))
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

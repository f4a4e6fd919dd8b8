//! Group commit above Raft: concurrent PUTs gathered into one log entry.
//!
//! openraft 0.9.25 waits for each log append's flush callback before it runs its next
//! storage command, and a leader turns each `client_write` into an append of its own: one
//! fsync per write, in series, however many clients wait. So the PUT handlers hand their
//! writes to one task, which proposes everything that arrived while the previous entry
//! was being committed as one entry (`Request::Set` with many writes) and answers each
//! writer when that entry is committed and applied. One proposal is in flight at a time;
//! the writes that queue behind it make the next one.

use crate::{NodeId, Raft, Request, TypeConfig};
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::BasicNode;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Writes waiting for a proposal at most; a PUT beyond it waits for room.
const MAX_QUEUED_WRITES: usize = 4_096;

/// Why a write was not committed.
#[derive(Debug, Clone)]
pub enum WriteError {
    /// This node does not lead: where to go instead.
    Forward(ForwardToLeader<NodeId, BasicNode>),
    /// Anything else (no quorum answer, the node stopping): the text to answer with.
    Failed(String),
}

/// One write waiting for its entry.
struct Pending {
    key: String,
    value: Vec<u8>,
    reply: oneshot::Sender<Result<u64, WriteError>>,
}

/// The handle PUT handlers write through. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
    /// With `max_writes` 1: no gathering; each write is its own concurrent `client_write`.
    direct: Option<Raft>,
}

impl Batcher {
    /// Starts the proposing task on the current runtime: at most `max_writes` writes and
    /// about `max_bytes` of keys and values in one entry. With `max_writes` 1 each write
    /// goes to Raft at once instead, concurrently with the others.
    pub fn start(raft: Raft, max_writes: usize, max_bytes: usize) -> Batcher {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_WRITES);
        let direct = (max_writes <= 1).then(|| raft.clone());
        tokio::spawn(propose(raft, rx, max_writes.max(1), max_bytes));
        Batcher { tx, direct }
    }

    /// Writes `key`: resolves with the Raft index of the entry that carried it, once that
    /// entry is committed and applied here.
    pub async fn write(&self, key: String, value: Vec<u8>) -> Result<u64, WriteError> {
        if let Some(raft) = &self.direct {
            let writes = vec![(key, value)];
            return outcome(raft.client_write(Request::Set { writes }).await);
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || WriteError::Failed("the node is stopping".into());
        self.tx
            .send(Pending { key, value, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The proposing loop: waits for a first write, takes whatever else is queued (within the
/// bounds), proposes it as one entry, answers every writer, and starts over.
async fn propose(raft: Raft, mut rx: mpsc::Receiver<Pending>, max_writes: usize, max_bytes: usize) {
    while let Some(first) = rx.recv().await {
        let mut bytes = first.key.len() + first.value.len();
        let mut batch = vec![first];
        while batch.len() < max_writes && bytes < max_bytes {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.key.len() + p.value.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let mut writes = Vec::with_capacity(batch.len());
        for p in batch {
            writes.push((p.key, p.value));
            replies.push(p.reply);
        }
        let span = tracing::debug_span!("propose", writes = writes.len(), bytes);
        let proposed = raft
            .client_write(Request::Set { writes })
            .instrument(span)
            .await;
        let answer = outcome(proposed);
        for reply in replies {
            // A writer that stopped waiting (its client went away) needs no answer.
            let _ = reply.send(answer.clone());
        }
    }
}

/// A `client_write`'s outcome as the writers' answer: the entry's index, or why not.
fn outcome(
    proposed: Result<
        ClientWriteResponse<TypeConfig>,
        RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    >,
) -> Result<u64, WriteError> {
    match proposed {
        Ok(r) => Ok(r.log_id.index),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
            Err(WriteError::Forward(to))
        }
        Err(e) => Err(WriteError::Failed(e.to_string())),
    }
}

//! Group commit above Raft: concurrent PUTs gathered into one log entry.
//!
//! openraft 0.9.25 waits for each log append's flush callback before it runs its next
//! storage command, and a leader turns each `client_write` into an append of its own: one
//! fsync per write, in series, however many clients wait. So the PUT handlers hand their
//! writes to one task, which proposes everything that arrived while the previous entry
//! was being committed as one entry (`Request::Set` with many writes) and answers each
//! writer when that entry is committed and applied. One proposal is in flight at a time;
//! the writes that queue behind it make the next one.

use crate::dedup::ClientSeq;
use crate::identity::Member;
use crate::{NodeId, Raft, Request, TypeConfig, Write, WriteResult};
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::raft::ClientWriteResponse;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Writes waiting for a proposal at most; a PUT beyond it waits for room.
const MAX_QUEUED_WRITES: usize = 4_096;

/// Why a write was not committed.
#[derive(Debug, Clone)]
pub enum WriteError {
    /// This node does not lead: where to go instead.
    Forward(ForwardToLeader<NodeId, Member>),
    /// Anything else (no quorum answer, the node stopping): the text to answer with.
    Failed(String),
    /// Its `Client-Seq` is older than the results kept for its client (`dedup`): not
    /// applied, and whether an earlier attempt was is no longer known.
    Stale,
}

/// A committed write: the index of the entry that applied it, and whether that was an
/// earlier attempt (a retry with the same `Client-Id` and `Client-Seq`).
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// The entry that applied the write.
    pub index: u64,
    /// True when this attempt was not applied because an earlier one was.
    pub replay: bool,
}

/// One write waiting for its entry.
struct Pending {
    write: Write,
    reply: oneshot::Sender<Result<Written, WriteError>>,
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

    /// Writes `key` (at most once per `once`, see `dedup`): resolves with the Raft index
    /// of the entry that applied it, once the entry that carried it is committed and
    /// applied here.
    pub async fn write(
        &self,
        key: String,
        value: Vec<u8>,
        once: Option<ClientSeq>,
    ) -> Result<Written, WriteError> {
        let write = Write { key, value, once };
        if let Some(raft) = &self.direct {
            let proposed = raft.client_write(request(vec![write])).await;
            return outcome(proposed).and_then(|(index, results)| written(index, &results, 0));
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || WriteError::Failed("the node is stopping".into());
        self.tx
            .send(Pending { write, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The proposing loop: waits for a first write, takes whatever else is queued (within the
/// bounds), proposes it as one entry, answers every writer, and starts over.
async fn propose(raft: Raft, mut rx: mpsc::Receiver<Pending>, max_writes: usize, max_bytes: usize) {
    while let Some(first) = rx.recv().await {
        let mut bytes = weight(&first.write);
        let mut batch = vec![first];
        while batch.len() < max_writes && bytes < max_bytes {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += weight(&p.write);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let mut writes = Vec::with_capacity(batch.len());
        for p in batch {
            writes.push(p.write);
            replies.push(p.reply);
        }
        let span = tracing::debug_span!("propose", writes = writes.len(), bytes);
        let proposed = raft.client_write(request(writes)).instrument(span).await;
        let answer = outcome(proposed);
        for (i, reply) in replies.into_iter().enumerate() {
            let this = match &answer {
                Ok((index, results)) => written(*index, results, i),
                Err(e) => Err(e.clone()),
            };
            // A writer that stopped waiting (its client went away) needs no answer.
            let _ = reply.send(this);
        }
    }
}

/// A write's bytes toward an entry's bound: key, value and client id.
fn weight(w: &Write) -> usize {
    w.key.len() + w.value.len() + w.once.as_ref().map_or(0, |c| c.client.len() + 8)
}

/// The entry for `writes`: the old `Set` when none carries a client id (the format
/// older nodes read), else `SetOnce`.
fn request(writes: Vec<Write>) -> Request {
    if writes.iter().all(|w| w.once.is_none()) {
        let writes = writes.into_iter().map(|w| (w.key, w.value)).collect();
        Request::Set { writes }
    } else {
        Request::SetOnce { writes }
    }
}

/// The answer to the `i`th writer of an entry committed at `index` whose writes had
/// `results` (empty for a `Set`: all applied).
fn written(index: u64, results: &[WriteResult], i: usize) -> Result<Written, WriteError> {
    match results.get(i).copied().unwrap_or(WriteResult::Applied) {
        WriteResult::Applied => Ok(Written {
            index,
            replay: false,
        }),
        WriteResult::Duplicate(first) => Ok(Written {
            index: first,
            replay: true,
        }),
        WriteResult::Stale => Err(WriteError::Stale),
    }
}

/// A `client_write`'s outcome: the entry's index and its writes' results, or why not.
fn outcome(
    proposed: Result<
        ClientWriteResponse<TypeConfig>,
        RaftError<NodeId, ClientWriteError<NodeId, Member>>,
    >,
) -> Result<(u64, Vec<WriteResult>), WriteError> {
    match proposed {
        Ok(r) => Ok((r.log_id.index, r.data.results)),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
            Err(WriteError::Forward(to))
        }
        Err(e) => Err(WriteError::Failed(e.to_string())),
    }
}

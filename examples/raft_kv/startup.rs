//! What a node does once it serves: `--init` (ask every peer for its identity, then make
//! them the first voters) or `--join` (`members::join`), each a [`Task`] that stops the
//! server if it fails, so the exit status says so.

use crate::identity::Member;
use crate::network::Network;
use crate::{NodeId, Raft};
use openraft::error::{InitializeError, RaftError};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest `--init` waits for every peer to answer who it is.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two tries to reach a peer that did not answer.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A startup step running beside the server, and what became of it.
pub struct Task {
    task: tokio::task::JoinHandle<()>,
    /// Why it failed, once it did (it stopped the server then).
    failed: Arc<Mutex<Option<String>>>,
}

impl Task {
    /// Runs `step`: prints what it returns on success; on failure records the error,
    /// prints it and stops the server.
    pub fn spawn(
        server: actix_web::dev::ServerHandle,
        step: impl Future<Output = Result<String, String>> + 'static,
    ) -> Task {
        let failed = Arc::new(Mutex::new(None));
        let record = failed.clone();
        let task = actix_rt::spawn(async move {
            match step.await {
                Ok(done) => println!("{done}"),
                Err(e) => {
                    eprintln!("raft_kv: {e}");
                    *record.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    server.stop(true).await;
                }
            }
        });
        Task { task, failed }
    }

    /// Stops the step if it still runs (the server stopped for another reason); the
    /// error that stopped the server, if the step failed.
    pub fn stop(self) -> Option<String> {
        self.task.abort();
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.clone()
    }
}

/// `--init` on a node whose log is empty: asks each peer of `peers` for its identity
/// (retrying one that does not answer yet, until [`INIT_TIMEOUT`]), then initializes the
/// cluster with all of them as voters, each under the incarnation it gave. `me`: this
/// node's own entry, which needs no asking.
pub async fn init(
    raft: Raft,
    network: Network,
    peers: BTreeMap<NodeId, SocketAddr>,
    me: (NodeId, Member),
) -> Result<String, String> {
    let deadline = Instant::now() + INIT_TIMEOUT;
    let mut nodes = BTreeMap::from([me.clone()]);
    for (id, addr) in peers.iter().filter(|(id, _)| **id != me.0) {
        let addr = addr.to_string();
        let incarnation = loop {
            match network.identity_of(*id, &addr).await {
                Ok(them) => break them.incarnation,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("init: no identity from every peer: {e}"));
                }
                Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
            }
        };
        nodes.insert(*id, Member { addr, incarnation });
    }
    let voters = nodes.len();
    match raft.initialize(nodes).await {
        Ok(()) => Ok(format!("initialized: {voters} voters")),
        // The node has a log or a vote by now (another node's init reached it first).
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            Ok("initialized already".to_owned())
        }
        Err(e) => Err(format!("initialize: {e}")),
    }
}

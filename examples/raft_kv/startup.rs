//! What a node does once it serves: `--init` (ask every peer for its identity, then make
//! them the first voters) or `--join` (`members::join`), each a [`Task`] that stops the
//! server if it fails, so the exit status says so; and, on every node, naming the
//! members whose incarnation `--init` could not learn ([`name_the_unnamed`]), and, on the
//! leader, finishing a membership change cut short between its two steps.

use crate::identity::Member;
use crate::network::Network;
use crate::{NodeId, Raft};
use openraft::error::{InitializeError, RaftError};
use openraft::{ChangeMembers, RaftMetrics, ServerState};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest `--init` waits for a majority of its peers to answer who they are.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `--init` still waits for the others once a majority has answered.
pub const INIT_GRACE: Duration = Duration::from_secs(3);
/// How often the leader tries to name members whose incarnation is not known yet.
pub const NAMING_PERIOD: Duration = Duration::from_secs(1);
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

/// `--init` on a node whose log is empty: asks each peer of `peers` for its identity,
/// round after round, until all have answered, or a majority has and [`INIT_GRACE`] has
/// passed since (a peer that is down must not keep the others from starting; it is
/// named with incarnation 0 until [`name_the_unnamed`] names it), or [`INIT_TIMEOUT`]
/// has passed with no majority; then initializes the cluster with all of them as voters.
/// `me`: this node's own entry, which needs no asking.
pub async fn init(
    raft: Raft,
    network: Network,
    peers: BTreeMap<NodeId, SocketAddr>,
    me: (NodeId, Member),
) -> Result<String, String> {
    let deadline = Instant::now() + INIT_TIMEOUT;
    let majority = peers.len() / 2 + 1;
    let mut nodes = BTreeMap::from([me.clone()]);
    let mut majority_at = None;
    let mut last_error = String::new();
    loop {
        for (id, addr) in &peers {
            if nodes.contains_key(id) {
                continue;
            }
            let addr = addr.to_string();
            match network.identity_of(*id, &addr).await {
                Ok(them) => {
                    let incarnation = them.incarnation;
                    nodes.insert(*id, Member { addr, incarnation });
                }
                Err(e) => last_error = e,
            }
        }
        if nodes.len() >= majority && majority_at.is_none() {
            majority_at = Some(Instant::now());
        }
        let graced = majority_at.is_some_and(|at| at.elapsed() >= INIT_GRACE);
        if nodes.len() == peers.len().max(1) || graced {
            break;
        }
        if majority_at.is_none() && Instant::now() >= deadline {
            return Err(format!(
                "init: {} of {} peers answered within {INIT_TIMEOUT:?}, not a majority: \
                 {last_error}",
                nodes.len(),
                peers.len()
            ));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    let unnamed: Vec<NodeId> = peers
        .iter()
        .filter(|(id, _)| !nodes.contains_key(id))
        .map(|(id, _)| *id)
        .collect();
    for id in &unnamed {
        let addr = peers[id].to_string();
        nodes.insert(
            *id,
            Member {
                addr,
                incarnation: 0,
            },
        );
    }
    let voters = nodes.len();
    match raft.initialize(nodes).await {
        Ok(()) if unnamed.is_empty() => Ok(format!("initialized: {voters} voters")),
        Ok(()) => Ok(format!(
            "initialized: {voters} voters, {unnamed:?} not named yet (down at init)"
        )),
        // The node has a log or a vote by now (another node's init reached it first).
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            Ok("initialized already".to_owned())
        }
        Err(e) => Err(format!("initialize: {e}")),
    }
}

/// A membership change whose leader lost leadership (or crashed) between openraft's two
/// steps leaves the membership joint: openraft runs the second step from the call that
/// asked for the change, and nothing else finishes it, while every later change is
/// refused (`members_rules::check_settled`: 409, retry) and a leader needs a majority in
/// both configurations. The leader finishes it: the voters of the joint's last
/// configuration (the change's goal), voters left out kept as learners (whether the
/// change removed them is not known; `remove-node` removes them). A probe left clusters
/// joint for good by killing the leader a few ms into `voters remove 3`.
async fn finish_a_change_cut_short(raft: &Raft, m: &RaftMetrics<NodeId, Member>) {
    let joint = m.membership_config.membership().get_joint_config();
    let Some(goal) = joint.last().filter(|_| joint.len() > 1).cloned() else {
        return;
    };
    // Not committed yet, another change running, leadership lost: the next round tries
    // again.
    let finish = ChangeMembers::ReplaceAllVoters(goal.clone());
    if raft.change_membership(finish, true).await.is_ok() {
        println!("finished a membership change cut short: voters {goal:?}");
    }
}

/// While this node leads, names every member the membership has with incarnation 0
/// (down at `--init`): asks it for its identity every [`NAMING_PERIOD`] and, once it
/// answers, writes its incarnation into the membership (`SetNodes`, voters unchanged).
/// Runs for the life of the process.
pub async fn name_the_unnamed(raft: Raft, network: Network) {
    loop {
        tokio::time::sleep(NAMING_PERIOD).await;
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            continue;
        }
        finish_a_change_cut_short(&raft, &m).await;
        let unnamed: Vec<(NodeId, String)> = m
            .membership_config
            .membership()
            .nodes()
            .filter(|(_, n)| n.incarnation == 0)
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        for (id, addr) in unnamed {
            let Ok(them) = network.identity_of(id, &addr).await else {
                continue;
            };
            let node = Member {
                addr,
                incarnation: them.incarnation,
            };
            let set = ChangeMembers::SetNodes(BTreeMap::from([(id, node)]));
            // Another change in progress, or leadership lost: the next round tries again.
            if raft.change_membership(set, true).await.is_ok() {
                println!("named node {id}: incarnation {:016x}", them.incarnation);
            }
        }
    }
}

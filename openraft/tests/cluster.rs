//! Three openraft nodes in one process on `WalLogStore`, over an in-memory network: the
//! adapter under a running Raft. A node stopped while the others purge their logs comes
//! back from its directory and catches up by snapshot (its purge passes the end of its
//! log: `reset`); the leader stopped, the others elect one and keep taking writes.
//! (Processes, HTTP and `kill -9` are `examples/raft_kv.rs` and its cluster tests.)

mod common;

use actix_wal_openraft::WalLogStore;
use common::{Config, MemStateMachine};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest};
use openraft::raft::{InstallSnapshotResponse, VoteRequest, VoteResponse};
use openraft::{AnyError, BasicNode, Raft, SnapshotPolicy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Generous: the waits end as soon as the cluster gets there.
const WAIT: Option<Duration> = Some(Duration::from_secs(30));

/// The running nodes, by id: the network delivers an RPC by calling the target's `Raft`.
#[derive(Clone, Default)]
struct Router(Arc<Mutex<BTreeMap<u64, Raft<Config>>>>);

struct Conn {
    target: u64,
    router: Router,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl Conn {
    /// The target's Raft, or `Unreachable` while it is stopped.
    fn raft(&self) -> Result<Raft<Config>, Unreachable> {
        let nodes = self.router.0.lock().unwrap();
        let down = || Unreachable::new(&AnyError::error(format!("node {} is down", self.target)));
        nodes.get(&self.target).cloned().ok_or_else(down)
    }
}

fn remote<E: std::error::Error>(
    target: u64,
) -> impl Fn(RaftError<u64, E>) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
    move |e| RemoteError::new(target, e).into()
}

impl RaftNetwork<Config> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Config>,
        _: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        let raft = self.raft()?;
        raft.append_entries(rpc).await.map_err(remote(self.target))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Config>,
        _: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        let raft = self.raft()?;
        raft.install_snapshot(rpc)
            .await
            .map_err(remote(self.target))
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, _: RPCOption) -> RpcResult<VoteResponse<u64>> {
        let raft = self.raft()?;
        raft.vote(rpc).await.map_err(remote(self.target))
    }
}

impl RaftNetworkFactory<Config> for Router {
    type Network = Conn;

    async fn new_client(&mut self, target: u64, _: &BasicNode) -> Conn {
        Conn {
            target,
            router: self.clone(),
        }
    }
}

/// A node: its Raft, its log store's directory, and its state machine (kept across a
/// restart, as a state machine that persists itself would be).
struct Node {
    id: u64,
    raft: Raft<Config>,
    store_wal: actix_wal::Wal,
    dir: PathBuf,
    sm: MemStateMachine,
}

async fn start(id: u64, dir: &Path, sm: MemStateMachine, router: &Router) -> Node {
    let config = openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        // Snapshot every 20 entries and keep no log behind it: purges happen.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(20),
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    };
    let store = WalLogStore::<Config>::open(dir, Default::default())
        .await
        .expect("log opens");
    let store_wal = store.wal().clone();
    let config = Arc::new(config.validate().expect("valid config"));
    let raft = Raft::new(id, config, router.clone(), store, sm.clone())
        .await
        .expect("raft starts");
    router.0.lock().unwrap().insert(id, raft.clone());
    Node {
        id,
        raft,
        store_wal,
        dir: dir.to_path_buf(),
        sm,
    }
}

/// Stops a node: out of the network, Raft shut down, its log closed.
async fn stop(node: Node, router: &Router) -> (PathBuf, MemStateMachine) {
    router.0.lock().unwrap().remove(&node.id);
    node.raft.shutdown().await.expect("raft stops");
    drop(node.raft);
    node.store_wal.shutdown().await.expect("log shuts down");
    (node.dir, node.sm)
}

/// Writes `put from` .. `put to` one at a time; the log index of the last one (`None` if
/// none). Taken from the responses, not from metrics, which are published later and may
/// still show an older index when the call returns.
async fn write(leader: &Raft<Config>, from: u64, to: u64) -> Option<u64> {
    let mut last = None;
    for i in from..to {
        let written = leader
            .client_write(format!("put {i}"))
            .await
            .expect("write committed");
        last = Some(written.log_id.index);
    }
    last
}

async fn leader_of(nodes: &[&Node]) -> u64 {
    let metrics = nodes[0]
        .raft
        .wait(WAIT)
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await;
    metrics
        .expect("a leader is elected")
        .current_leader
        .expect("leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_catches_up_by_snapshot_and_the_cluster_survives_losing_its_leader() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let router = Router::default();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(
            start(
                i as u64 + 1,
                dir.path(),
                MemStateMachine::default(),
                &router,
            )
            .await,
        );
    }
    let members: BTreeMap<u64, BasicNode> = (1..=3).map(|id| (id, BasicNode::default())).collect();
    nodes[0]
        .raft
        .initialize(members)
        .await
        .expect("cluster initializes");
    let leader = leader_of(&[&nodes[0]]).await;
    let leader_raft = nodes[leader as usize - 1].raft.clone();
    write(&leader_raft, 0, 30).await;

    // Stop a follower; the others take 100 more writes, snapshot and purge past it.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let stopped = nodes.remove(follower as usize - 1);
    let stopped_last = stopped
        .raft
        .metrics()
        .borrow()
        .last_log_index
        .expect("a log");
    let (dir, sm) = stop(stopped, &router).await;
    let written = write(&leader_raft, 30, 130).await;
    // The snapshot and the purge after it run in the background: wait for them (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let purged = leader_raft.metrics().borrow().purged.map(|p| p.index);
        if purged > Some(stopped_last) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the leader did not purge past the stopped node's last index {stopped_last} within 30 s: {purged:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Back from its directory: it installs the leader's snapshot, then takes the rest.
    let back = start(follower, &dir, sm, &router).await;
    let want = written;
    back.raft
        .wait(WAIT)
        .applied_index_at_least(want, "the restarted node caught up")
        .await
        .expect("caught up");
    let stats = back.store_wal.stats().await.unwrap();
    let last = back.raft.metrics().borrow().last_log_index.expect("a log");
    assert_eq!(
        stats.next_lsn.0,
        last + 2,
        "index i at LSN i + 1 after the snapshot's reset"
    );
    assert!(
        stats.first_lsn.0 > stopped_last + 2,
        "the snapshot's purge passed the end of the log: first LSN {}, old last index {stopped_last}",
        stats.first_lsn
    );
    nodes.insert(follower as usize - 1, back);

    // Stop the leader: the two others elect one and keep taking writes.
    let old = nodes.remove(leader as usize - 1);
    stop(old, &router).await;
    let rest: Vec<&Node> = nodes.iter().collect();
    let new_leader = rest[0]
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != leader),
            "a new leader",
        )
        .await
        .expect("re-elected")
        .current_leader
        .unwrap();
    let new_raft = nodes
        .iter()
        .find(|n| n.raft.metrics().borrow().id == new_leader)
        .unwrap()
        .raft
        .clone();
    let want = write(&new_raft, 130, 150).await;
    for node in &nodes {
        node.raft
            .wait(WAIT)
            .applied_index_at_least(want, "applied")
            .await
            .expect("applied everywhere");
        let commands = node.sm.0.lock().unwrap().commands.clone();
        let expected: Vec<String> = (0..150).map(|i| format!("put {i}")).collect();
        assert_eq!(
            commands,
            expected,
            "node {} applied every write once, in order",
            node.raft.metrics().borrow().id
        );
    }
    for node in nodes {
        stop(node, &router).await;
    }
}

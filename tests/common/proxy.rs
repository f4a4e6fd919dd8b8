//! Fault-injecting TCP proxies between raft_kv nodes, one per directed link: node `from`
//! sends its RPCs for node `to` to the link's port (`raft_kv --peer-via`), and the proxy
//! forwards them to `to`'s real address. Cutting a link black-holes it, as a partition
//! does: connections open on it stop carrying bytes (what was in flight is lost) and new
//! ones are accepted and then hear nothing; healing closes those held connections, so
//! the sender sees them fail and opens fresh ones. Clients reach every node directly,
//! never through a proxy, so a node cut off from its peers still answers them.
//!
//! Portable (no root, no network namespaces, no `tc`): the tests run as any user.
//! Included with `#[path = "common/proxy.rs"] mod proxy;` beside `raft.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One directed link's proxy.
struct Link {
    /// Where `from` sends what it means for `to`.
    addr: SocketAddr,
    /// True while the link is cut.
    cut: watch::Sender<bool>,
}

/// The proxies of a cluster: a link for every ordered pair of distinct nodes.
pub struct Links {
    links: BTreeMap<(u64, u64), Link>,
}

impl Links {
    /// Starts a proxy for every ordered pair of `nodes` (`(id, real address)`), all
    /// links whole. Must be called inside a tokio runtime, which runs the proxies.
    pub async fn start(nodes: &[(u64, SocketAddr)]) -> Links {
        let mut links = BTreeMap::new();
        for &(from, _) in nodes {
            for &(to, target) in nodes {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind a proxy port");
                let addr = listener.local_addr().expect("local_addr");
                let (cut, _) = watch::channel(false);
                tokio::spawn(serve(listener, target, cut.clone()));
                links.insert((from, to), Link { addr, cut });
            }
        }
        Links { links }
    }

    /// `--peer-via` for node `from`: `to=proxy,...` for every other node.
    pub fn via(&self, from: u64) -> String {
        self.links
            .iter()
            .filter(|((f, _), _)| *f == from)
            .map(|((_, to), link)| format!("{to}={}", link.addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Cuts (or heals) the link from `from` to `to`, one direction.
    pub fn set_cut(&self, from: u64, to: u64, cut: bool) {
        if let Some(link) = self.links.get(&(from, to)) {
            link.cut.send_replace(cut);
        }
    }

    /// Cuts every link to and from `node`: it hears no peer and no peer hears it.
    pub fn isolate(&self, node: u64) {
        for &(from, to) in self.links.keys() {
            if from == node || to == node {
                self.set_cut(from, to, true);
            }
        }
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        for link in self.links.values() {
            link.cut.send_replace(false);
        }
    }

    /// The links cut now, as `(from, to)`.
    pub fn cut_links(&self) -> Vec<(u64, u64)> {
        self.links
            .iter()
            .filter(|(_, l)| *l.cut.borrow())
            .map(|(k, _)| *k)
            .collect()
    }
}

/// Accepts connections on one link for as long as the runtime runs.
async fn serve(listener: TcpListener, target: SocketAddr, cut: watch::Sender<bool>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        // Nagle off both ways: heartbeats are small and the node turns it off too.
        let _ = inbound.set_nodelay(true);
        tokio::spawn(pipe(inbound, target, cut.subscribe()));
    }
}

/// Carries one connection while the link is whole; holds it silent while it is cut and
/// drops it once healed.
async fn pipe(mut inbound: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    if !*cut.borrow_and_update() {
        // A node that is down (killed): the connection closes, as a refused one would.
        let Ok(mut outbound) = TcpStream::connect(target).await else {
            return;
        };
        let _ = outbound.set_nodelay(true);
        tokio::select! {
            _ = copy_bidirectional(&mut inbound, &mut outbound) => return,
            _ = cut.wait_for(|c| *c) => {}
        }
        // Cut mid-connection: the target side goes (its half is lost with the partition).
        drop(outbound);
    }
    // Black hole: hold the sender's connection without a byte until the link heals.
    let _ = cut.wait_for(|c| !*c).await;
    drop(inbound);
}

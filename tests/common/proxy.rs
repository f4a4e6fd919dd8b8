//! Fault-injecting TCP proxies between raft_kv nodes, one per directed link: node `from`
//! sends its RPCs for node `to` to the link's port (`raft_kv --peer-via`), and the proxy
//! forwards them to `to`'s real address. Cutting a link black-holes it, as a partition
//! does: connections open on it stop carrying bytes (what was in flight is lost) and new
//! ones are accepted and then hear nothing; healing closes those held connections, so
//! the sender sees them fail and opens fresh ones. Clients reach every node directly,
//! never through a proxy, so a node cut off from its peers still answers them.
//!
//! A link can also be slowed to a rate (`set_rate`: the bytes from `from` to `to` pass at
//! most that many per second, all its connections together, as over one slow link), and
//! counts the bytes it carried from `from` to `to` (`sent`), and the request bodies among
//! them by path (`body_bytes`: it reads the HTTP/1.1 requests' heads for their path and
//! `Content-Length`).
//!
//! Portable (no root, no network namespaces, no `tc`): the tests run as any user.
//! Included with `#[path = "common/proxy.rs"] mod proxy;` beside `raft.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// One directed link's proxy.
struct Link {
    /// Where `from` sends what it means for `to`.
    addr: SocketAddr,
    /// True while the link is cut.
    cut: watch::Sender<bool>,
    /// The pace of its bytes from `from` to `to`, and how many it carried.
    flow: Arc<Flow>,
}

/// One link's bytes from `from` to `to`: their rate, and their count.
#[derive(Default)]
struct Flow {
    /// Bytes per second at most (0: as fast as they come).
    rate: AtomicU64,
    /// When the link is free for the next bytes (a slow link is one queue for all its
    /// connections).
    free_at: Mutex<Option<Instant>>,
    /// Bytes carried.
    sent: AtomicU64,
    /// Request body bytes carried, by the request's path.
    bodies: Mutex<BTreeMap<String, u64>>,
}

impl Flow {
    /// Counts `n` bytes, and waits until a link at the rate would have carried them.
    async fn pass(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return;
        }
        let done = {
            let mut free_at = self.free_at.lock().expect("flow lock poisoned");
            let now = Instant::now();
            let start = free_at.map_or(now, |f| f.max(now));
            let done = start + Duration::from_secs_f64(n as f64 / rate as f64);
            *free_at = Some(done);
            done
        };
        tokio::time::sleep_until(done).await;
    }
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
                let flow = Arc::new(Flow::default());
                tokio::spawn(serve(listener, target, cut.clone(), flow.clone()));
                links.insert((from, to), Link { addr, cut, flow });
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

    /// Slows the link from `from` to `to` to `bytes_per_sec` (0: no limit), one direction
    /// (what `to` answers is not slowed).
    pub fn set_rate(&self, from: u64, to: u64, bytes_per_sec: u64) {
        if let Some(link) = self.links.get(&(from, to)) {
            link.flow.rate.store(bytes_per_sec, Ordering::Relaxed);
        }
    }

    /// Request body bytes the link from `from` to `to` carried so far for `path`.
    pub fn body_bytes(&self, from: u64, to: u64, path: &str) -> u64 {
        self.links.get(&(from, to)).map_or(0, |l| {
            let bodies = l.flow.bodies.lock().expect("flow lock poisoned");
            bodies.get(path).copied().unwrap_or(0)
        })
    }

    /// Bytes the link from `from` to `to` carried in that direction so far.
    pub fn sent(&self, from: u64, to: u64) -> u64 {
        self.links
            .get(&(from, to))
            .map_or(0, |l| l.flow.sent.load(Ordering::Relaxed))
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
async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    cut: watch::Sender<bool>,
    flow: Arc<Flow>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        // Nagle off both ways: heartbeats are small and the node turns it off too.
        let _ = inbound.set_nodelay(true);
        tokio::spawn(pipe(inbound, target, cut.subscribe(), flow.clone()));
    }
}

/// Carries one connection while the link is whole; holds it silent while it is cut and
/// drops it once healed.
async fn pipe(
    mut inbound: TcpStream,
    target: SocketAddr,
    mut cut: watch::Receiver<bool>,
    flow: Arc<Flow>,
) {
    if !*cut.borrow_and_update() {
        // A node that is down (killed): the connection closes, as a refused one would.
        let Ok(mut outbound) = TcpStream::connect(target).await else {
            return;
        };
        let _ = outbound.set_nodelay(true);
        let (mut from_in, mut to_in) = inbound.split();
        let (mut from_out, mut to_out) = outbound.split();
        tokio::select! {
            // Either side closing ends the connection (HTTP never half-closes).
            _ = forward(&mut from_in, &mut to_out, &flow) => return,
            _ = tokio::io::copy(&mut from_out, &mut to_in) => return,
            _ = cut.wait_for(|c| *c) => {}
        }
        // Cut mid-connection: the target side goes (its half is lost with the partition).
        drop(outbound);
    }
    // Black hole: hold the sender's connection without a byte until the link heals.
    let _ = cut.wait_for(|c| !*c).await;
    drop(inbound);
}

/// Copies `from` to `to` through `flow` (counted, and paced at its rate) until `from`
/// ends or either fails.
async fn forward(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    flow: &Flow,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut requests = Requests::default();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        requests.feed(&buf[..n], flow);
        flow.pass(n).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Reads one connection's HTTP/1.1 requests as they pass: each head for its path and
/// `Content-Length`, then that many body bytes, counted for the path.
#[derive(Default)]
struct Requests {
    /// The head read so far (empty between requests).
    head: Vec<u8>,
    /// The path of the request whose body is passing.
    path: String,
    /// Body bytes still to come.
    body_left: u64,
    /// A head this long or one without a length: stop reading (a test's proxy sees only
    /// raft_kv's requests, which always have one).
    lost: bool,
}

impl Requests {
    fn feed(&mut self, mut bytes: &[u8], flow: &Flow) {
        while !bytes.is_empty() && !self.lost {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len() as u64);
                let mut bodies = flow.bodies.lock().expect("flow lock poisoned");
                *bodies.entry(self.path.clone()).or_default() += n;
                self.body_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            let before = self.head.len();
            self.head.extend_from_slice(bytes);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                self.lost = self.head.len() > 64 * 1024;
                return;
            };
            let head = String::from_utf8_lossy(&self.head[..end]).into_owned();
            self.path = head
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let length = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<u64>().ok())?
            });
            match length {
                Some(len) => self.body_left = len,
                None => self.lost = true,
            }
            // What followed the head in these bytes is body (or the next request).
            bytes = &bytes[end + 4 - before..];
            self.head.clear();
        }
    }
}

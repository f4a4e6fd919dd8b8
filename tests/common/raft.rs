//! Shared by the raft_kv process tests (`tests/raft_cluster.rs`, `raft_auth.rs`,
//! `raft_restart_reads.rs`): the example binary, a three-node cluster of `raft_kv`
//! processes on loopback with its shared secret, HTTP helpers. Included with
//! `#[path = "common/raft.rs"] mod raft;`.
#![allow(dead_code)]

#[path = "examples.rs"]
mod examples;
#[path = "http_head.rs"]
mod http_head;

pub use examples::build_example;

use reqwest::redirect::Policy;
use reqwest::StatusCode;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Longest wait for a node to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a leader, for writes to resume, for a restarted node to catch up.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one HTTP request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The example binary, built (or found up to date) once per test process.
pub fn example_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_example("raft_kv"))
}

/// Writes a fresh cluster secret (32 bytes from /dev/urandom as 64 hex digits and a
/// newline) to `path`, created with mode 0600.
pub fn write_secret(path: &Path) {
    let mut bytes = [0u8; 32];
    let mut urandom = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    std::io::Read::read_exact(&mut urandom, &mut bytes).expect("read /dev/urandom");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).expect("create the secret file");
    writeln!(file, "{hex}").expect("write the secret");
}

/// One node: its id, address, directory, and its process while it runs.
pub struct Node {
    pub id: u64,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// `--peers`, the same for every node.
    pub peers: String,
    /// Flags after the common ones (later ones override earlier ones in clap).
    pub extra: Vec<String>,
    /// The cluster's secret file.
    pub secret: PathBuf,
}

impl Node {
    /// Starts the node; returns once it prints `listening on`.
    pub fn start(&mut self, init: bool) {
        let mut cmd = self.command();
        cmd.args(["--heartbeat-ms", "100", "--workers", "1"]);
        // clap refuses a flag given twice: the default only when `extra` has none.
        if !self.extra.iter().any(|a| a == "--election-ms") {
            cmd.args(["--election-ms", "500"]);
        }
        cmd.args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if init {
            cmd.arg("--init");
        }
        let mut child = cmd.spawn().expect("spawn raft_kv");
        let stdout = child.stdout.take().expect("piped stdout");
        // The guard owns the process before anything can panic.
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        // Reads stdout to its end, so the node never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("listening on ") => return,
                Ok(_) => {}
                Err(e) => panic!("node {} did not print its address: {e}", self.id),
            }
        }
    }

    /// The node's binary with its id, address, directory, peers and secret.
    fn command(&self) -> Command {
        let mut cmd = Command::new(example_binary());
        cmd.args(["--id", &self.id.to_string()])
            .args(["--addr", &self.addr.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--peers", &self.peers])
            .arg("--cluster-secret-file")
            .arg(&self.secret);
        cmd
    }

    /// Runs the node's binary with its id, address, directory, peers and secret (no
    /// other flag) until it exits: a start that must fail. Its output.
    pub fn run_to_exit(&self) -> std::process::Output {
        self.command()
            .stdin(Stdio::null())
            .output()
            .expect("run raft_kv")
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill raft_kv");
            child.wait().expect("reap raft_kv");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Three nodes on free loopback ports under `root` (`n1`..`n3`, the secret in `secret`),
/// not started. `extra` goes to every node's command line.
pub fn cluster(root: &Path, extra: &[&str]) -> Vec<Node> {
    let addrs = free_addrs(3);
    let peers = (0..3)
        .map(|i| format!("{}={}", i + 1, addrs[i]))
        .collect::<Vec<_>>()
        .join(",");
    let secret = root.join("secret");
    write_secret(&secret);
    (0..3)
        .map(|i| Node {
            id: i as u64 + 1,
            addr: addrs[i],
            dir: root.join(format!("n{}", i + 1)),
            child: None,
            peers: peers.clone(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            secret: secret.clone(),
        })
        .collect()
}

/// Three nodes under `root` (`extra` on every command line) started, node 1 with
/// `--init`; the nodes, their addresses, and the leader's id once one leads.
pub async fn started_cluster(root: &Path, extra: &[&str]) -> (Vec<Node>, Vec<SocketAddr>, u64) {
    let mut nodes = cluster(root, extra);
    for (i, node) in nodes.iter_mut().enumerate() {
        node.start(i == 0);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let (lead, _, _) = leader(&client(), &addrs, None).await;
    (nodes, addrs, lead)
}

/// Free loopback addresses (bound, read, released).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr"))
        .collect()
}

/// An HTTP client that does not follow redirects, with `REQUEST_TIMEOUT`.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

/// A node's `/raft/state`, if it answers.
pub async fn raft_state(http: &reqwest::Client, addr: SocketAddr) -> Option<serde_json::Value> {
    let r = http
        .get(format!("http://{addr}/raft/state"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// The leader as seen by the live nodes (one that says it leads), its term and applied index.
pub async fn leader(
    http: &reqwest::Client,
    live: &[SocketAddr],
    not: Option<u64>,
) -> (u64, u64, u64) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        for addr in live {
            if let Some(s) = raft_state(http, *addr).await {
                if s["state"] == "Leader" && Some(s["id"].as_u64().unwrap_or(0)) != not {
                    let n = |k: &str| s[k].as_u64().unwrap_or(0);
                    return (n("id"), n("term"), n("last_applied"));
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader among {live:?} within {WAIT_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// PUTs `value` following 307s from `hint`; true on 200. Moves `hint` to the leader.
pub async fn put(
    http: &reqwest::Client,
    addrs: &[SocketAddr],
    hint: &mut usize,
    key: &str,
    value: &str,
) -> bool {
    for _hop in 0..3 {
        let url = format!("http://{}/kv/{key}", addrs[*hint]);
        match http.put(url).body(value.to_owned()).send().await {
            Ok(r) if r.status() == StatusCode::OK => return true,
            Ok(r) if r.status() == StatusCode::TEMPORARY_REDIRECT => {
                let to = r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("");
                match addrs
                    .iter()
                    .position(|a| to.starts_with(&format!("http://{a}/")))
                {
                    Some(i) => *hint = i,
                    None => break,
                }
            }
            _ => break,
        }
    }
    *hint = (*hint + 1) % addrs.len();
    false
}

/// The `raft_kv_admin` example (the membership command line), built once per test
/// process as [`example_binary`] builds `raft_kv`.
pub fn admin_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_example("raft_kv_admin"))
}

/// One HTTP message read from `s`: its head, then as many body bytes as its
/// `Content-Length` says; the bytes and where the head ends. None if the stream ends first.
pub async fn read_message(s: &mut tokio::net::TcpStream) -> Option<(Vec<u8>, usize)> {
    use tokio::io::AsyncReadExt;
    let mut msg = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = msg.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&msg[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while msg.len() < head_end + length {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
        }
    }
    Some((msg, head_end))
}

/// One HTTP/1.1 request to `addr` on a fresh connection with exactly these header lines
/// (a `Host` too, if any), then `Content-Length` and `Connection: close`: its status and
/// body, or None if the node closed the connection without an answer or took longer than
/// [`REQUEST_TIMEOUT`].
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    use tokio::io::AsyncWriteExt;
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let head = http_head::request_head(method, target, headers, body.len());
        s.write_all(head.as_bytes()).await.ok()?;
        s.write_all(body).await.ok()?;
        let (msg, head_end) = read_message(&mut s).await?;
        let status = String::from_utf8_lossy(&msg[..head_end])
            .split(' ')
            .nth(1)?
            .parse()
            .ok()?;
        Some((status, msg[head_end..].to_vec()))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}

//! The cluster under test: three `raft_kv` processes on loopback ports, with a fresh
//! secret and directories, started, restarted and killed when dropped.

use crate::{Args, WAIT};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// Writes a fresh cluster secret to `path` (32 bytes from /dev/urandom, hex), created
/// with mode 0600 as raft_kv requires.
fn write_secret(path: &Path) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    writeln!(opts.open(path)?, "{hex}")
}

/// A three-node cluster of raft_kv processes; killed when dropped.
pub(crate) struct Cluster {
    bin: PathBuf,
    store: String,
    pub(crate) addrs: Vec<SocketAddr>,
    dirs: Vec<PathBuf>,
    pub(crate) children: Vec<Option<Child>>,
    extra: Vec<String>,
}

impl Cluster {
    pub(crate) fn start(
        args: &Args,
        bin: &Path,
        root: &Path,
        store: &str,
    ) -> Result<Cluster, String> {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        drop(listeners);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let dirs = (1..=3)
            .map(|i| root.join(format!("{store}-{stamp}-n{i}")))
            .collect();
        std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let secret = root.join(format!("{store}-{stamp}-secret"));
        write_secret(&secret).map_err(|e| format!("{}: {e}", secret.display()))?;
        let extra = vec![
            format!("--cluster-secret-file={}", secret.display()),
            format!("--heartbeat-ms={}", args.heartbeat_ms),
            format!("--election-ms={}", args.election_ms),
            format!("--snapshot-logs={}", args.snapshot_logs),
            format!("--batch-writes={}", args.batch_writes),
            format!("--election={}", args.election),
            format!("--request-timeout-ms={}", args.request_timeout_ms),
        ];
        let mut cluster = Cluster {
            bin: bin.to_owned(),
            store: store.to_owned(),
            addrs,
            dirs,
            children: vec![None, None, None],
            extra,
        };
        for i in 0..3 {
            cluster.start_node(i)?;
        }
        Ok(cluster)
    }

    fn peers(&self) -> String {
        let peers: Vec<String> = self
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect();
        peers.join(",")
    }

    /// Starts node `i` (id `i + 1`; node 1 with `--init`); returns once it listens.
    pub(crate) fn start_node(&mut self, i: usize) -> Result<(), String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--id",
            &(i + 1).to_string(),
            "--addr",
            &self.addrs[i].to_string(),
        ])
        .arg("--dir")
        .arg(&self.dirs[i])
        .args(["--peers", &self.peers(), "--store", &self.store])
        .args(&self.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if i == 0 {
            cmd.arg("--init");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        self.children[i] = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("listening on ") => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("node {} did not start: {e}", i + 1)),
            }
        }
    }

    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }
}

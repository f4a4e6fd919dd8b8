//! `walctl verify`, `stat` and `meta` beside a live log: the writer removes segments (checkpoints)
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
    // `meta` reads no records, so it takes no bound on them.
    let bound: &[&str] = match cmd {
        "meta" => &[],
        _ => &["--max-record-bytes", "256"],
    };
    let out = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg(cmd)
        .args(bound)
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
    answer_beside_a_writer(&["verify", "stat"]).await;
}

/// `walctl meta` beside the same writer: each checkpoint replaces `META.copy`, then
/// `META`, so a read between the two found the copies disagreeing and `meta` exited 1,
/// "damaged log: META stale" (36 of 299 runs in the eighth session's probe of the docs).
/// It now reads both copies again while they disagree, as `verify` reads a file again.
#[actix::test]
async fn meta_answers_beside_a_writer_that_replaces_meta() {
    answer_beside_a_writer(&["meta"]).await;
}

/// Runs each of `cmds` `RUNS` times (or for 120 s) beside a writer that appends and
/// checkpoints every 20 appends on 4 KiB segments; fails the test on any exit but 0.
async fn answer_beside_a_writer(cmds: &'static [&'static str]) {
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
            for cmd in cmds {
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
        cmds.len() * RUNS
    );
}

//! The single-writer lock belongs to the log directory, not to its `LOCK` file: deleting
//! `LOCK` while a log is open lets no second writer in, in this process or another, and
//! the running writer notices (it locks a new `LOCK` again) and loses nothing.

use actix_wal::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "ACTIX_WAL_LOCK_CHILD_DIR";
const CHILD_ROLE: &str = "ACTIX_WAL_LOCK_CHILD_ROLE";

fn config() -> WalConfig {
    WalConfig {
        // Small segments: the writer rolls over (and checks its lock) while it runs.
        segment_size_bytes: 64 * 1024,
        max_record_bytes: 1024,
        max_batch_bytes: 16 * 1024,
        ..WalConfig::default()
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The writer: appends from 4 tasks, printing each acknowledgement, until its standard
/// input closes; then reports its health and how shutdown went.
fn writer(dir: &str) {
    let stop = Arc::new(AtomicBool::new(false));
    let (eof_tx, eof_rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = eof_tx.send(());
    });
    actix::System::new().block_on(async move {
        let wal = Wal::open(dir, config())
            .await
            .expect("writer opens the log");
        say("OPEN");
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let (wal, stop) = (wal.clone(), stop.clone());
                actix_rt::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let payload = format!("w{t}:{i}");
                        i += 1;
                        match wal.append(payload.clone().into_bytes()).await {
                            Ok(lsn) => say(&format!("ACK {} {payload}", lsn.0)),
                            Err(e) => {
                                say(&format!("FAIL {e}"));
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        let _ = eof_rx.await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let health = wal.health().await.expect("health");
        say(&format!("HEALTH {}", health.healthy));
        match wal.shutdown().await {
            Ok(()) => say("SHUTDOWN ok"),
            Err(e) => say(&format!("SHUTDOWN error {e}")),
        }
    });
}

/// The second opener: says whether it was let in. If it was, it writes, as a second
/// writer would.
fn second(dir: &str) {
    actix::System::new().block_on(async move {
        match Wal::open(dir, config()).await {
            Err(WalError::Locked { .. }) => say("LOCKED"),
            Err(e) => say(&format!("ERROR {e}")),
            Ok(wal) => {
                say("OPENED");
                for i in 0..500u32 {
                    let _ = wal.append(format!("intruder:{i}").into_bytes()).await;
                }
                let _ = wal.shutdown().await;
            }
        }
    });
}

/// The children's body: runs only when the parent sets the environment.
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok("writer") => writer(&dir),
        Ok("second") => second(&dir),
        other => panic!("unknown role {other:?}"),
    }
}

fn spawn_child(dir: &Path, role: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["lock_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Collects the writer's lines until `until` holds for the collected state or the
/// generous deadline passes.
fn collect(
    rx: &mpsc::Receiver<String>,
    acked: &mut HashMap<u64, String>,
    lines: &mut Vec<String>,
    until: impl Fn(&HashMap<u64, String>, &[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !until(acked, lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let mut parts = line.splitn(3, ' ');
                if let (Some("ACK"), Some(lsn), Some(payload)) =
                    (parts.next(), parts.next(), parts.next())
                {
                    let lsn: u64 = lsn.parse().expect("an LSN");
                    assert!(
                        acked.insert(lsn, payload.to_string()).is_none(),
                        "LSN {lsn} acknowledged twice"
                    );
                } else {
                    lines.push(line);
                }
            }
            Err(_) => break,
        }
    }
}

#[test]
fn a_second_process_is_refused_after_lock_is_deleted_and_nothing_acknowledged_is_lost() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut first, rx) = spawn_child(dir, "writer");
    let mut acked = HashMap::new();
    let mut lines = Vec::new();
    collect(&rx, &mut acked, &mut lines, |a, _| a.len() >= 2_000);
    // (The test harness prints `test lock_child ... ` before the child's first line.)
    assert!(
        lines.iter().any(|l| l.ends_with("OPEN")),
        "writer: {lines:?}"
    );
    assert!(acked.len() >= 2_000, "the writer acknowledged too little");

    std::fs::remove_file(dir.join("LOCK")).expect("the open log has a LOCK file");
    let (second, second_rx) = spawn_child(dir, "second");
    let out = second.wait_with_output().unwrap();
    // Every line, to the end of its output: the reader thread ends at end of file, which
    // comes once the process has exited (reading only what had arrived by then raced it).
    let said: Vec<String> = second_rx.iter().collect();
    assert!(out.status.success(), "second opener failed: {said:?}");
    assert!(
        said.iter().any(|l| l.ends_with("LOCKED")) && !said.iter().any(|l| l.ends_with("OPENED")),
        "a second process opened the log after LOCK was deleted: {said:?}"
    );

    // The writer keeps going (rolling over, which checks its lock), then stops.
    let so_far = acked.len();
    collect(&rx, &mut acked, &mut lines, |a, _| {
        a.len() >= so_far + 2_000
    });
    drop(first.stdin.take());
    collect(&rx, &mut acked, &mut lines, |_, l| {
        l.iter().any(|l| l.starts_with("SHUTDOWN"))
    });
    assert!(first.wait().unwrap().success());
    assert!(
        lines.iter().any(|l| l == "HEALTH true"),
        "writer: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "SHUTDOWN ok"),
        "writer: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("FAIL")),
        "writer: {lines:?}"
    );
    assert!(
        dir.join("LOCK").exists(),
        "the writer did not lock a new LOCK file"
    );

    let records: HashMap<u64, Vec<u8>> = LogReader::open(dir)
        .unwrap()
        .map(|r| r.map(|r| (r.lsn.0, r.payload)))
        .collect::<Result<_, _>>()
        .expect("the log reads back whole");
    for (lsn, payload) in &acked {
        assert_eq!(
            records.get(lsn).map(Vec::as_slice),
            Some(payload.as_bytes()),
            "acknowledged LSN {lsn} lost or overwritten"
        );
    }
    assert_eq!(records.len(), acked.len(), "records nobody acknowledged");
}

#[test]
fn a_second_opener_in_this_process_is_refused_after_lock_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = storage::default_storage();
    let held = LogDir::open(tmp.path(), storage.clone()).unwrap();
    std::fs::remove_file(tmp.path().join("LOCK")).unwrap();
    match LogDir::open(tmp.path(), storage.clone()) {
        Err(WalError::Locked { .. }) => {}
        other => panic!("second opener: {other:?}"),
    }
    // The holder notices the missing file and locks a new one.
    held.verify("health check").unwrap();
    assert!(tmp.path().join("LOCK").exists());
    drop(held);
    LogDir::open(tmp.path(), storage).expect("free once the holder is gone");
}

#[test]
fn the_holder_learns_its_directory_was_renamed_and_the_new_one_is_not_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("log");
    let storage = storage::default_storage();
    let held = LogDir::open(&path, storage.clone()).unwrap();
    held.verify("health check").unwrap();
    std::fs::rename(&path, tmp.path().join("moved")).unwrap();
    match held.verify("health check") {
        Err(WalError::FileRemoved { op, path: p }) => {
            assert_eq!(op, "health check");
            assert_eq!(p, path);
        }
        other => panic!("verify after the rename: {other:?}"),
    }
    // A directory created at the path is another directory: it can be opened, and the
    // holder still refuses it as its own.
    let other = LogDir::open(&path, storage).expect("a new directory at the path");
    assert!(matches!(
        held.verify("health check"),
        Err(WalError::FileRemoved { .. })
    ));
    drop(other);
}

#[test]
fn a_lock_released_while_this_process_starts_children_is_free_again() {
    // A child process another thread starts holds a copy of every descriptor between its
    // fork and its exec, and an `flock` belongs to the open file description: a lock just
    // released can look held for that moment. A reopen must not report it as held.
    let tmp = tempfile::tempdir().unwrap();
    let storage = storage::default_storage();
    let stop = Arc::new(AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut started = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut c) = Command::new("true").spawn() {
                    let _ = c.wait();
                    started += 1;
                }
            }
            started
        })
    };
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut reopened = 0u64;
    while Instant::now() < deadline {
        let held = LogDir::open(tmp.path(), storage.clone()).expect("free after the drop");
        drop(held);
        reopened += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let started = spawner.join().unwrap();
    assert!(
        started > 10 && reopened > 10,
        "{started} children, {reopened} reopens"
    );
}

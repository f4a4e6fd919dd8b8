//! Process crashes: a child process appends durably from 16 actors and prints each
//! acknowledged record; the parent kills it with SIGKILL at a random moment, 20 rounds in
//! a row on the same log, and checks after each round that recovery keeps every
//! acknowledged record, once, at its LSN. With the `failpoints` feature, flusher faults
//! (panics, stalls, fsync failures) are injected into the child at random rounds.
//! `CRASH_COMPRESSION=1` (inherited by the child): the log compresses (LZ4), and each
//! payload carries a JSON-like tail of about 300 bytes so that its frame is stored
//! compressed.

use actix::prelude::*;
use actix_wal::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "ACTIX_WAL_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "ACTIX_WAL_CRASH_CHILD_ROUND";
const CHILD_FAULT: &str = "ACTIX_WAL_CRASH_CHILD_FAULT";
/// How long the parent waits for a child's first acknowledgement before it draws the
/// moment of the kill (bounded: a fault may keep a child from acknowledging at all).
const FIRST_ACK_WAIT: Duration = Duration::from_secs(10);

struct Appender {
    queue: Addr<actix_wal::Queue>,
    name: String,
}

impl Actor for Appender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let queue = self.queue.clone();
        let name = self.name.clone();
        ctx.spawn(
            async move {
                let tail = compressible_tail();
                for i in 0u64.. {
                    let payload = format!("{name}:{i}{tail}");
                    match queue.send(Append::new(payload.clone().into_bytes())).await {
                        Ok(Ok(lsn)) => {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "ACK {} {payload}", lsn.0);
                            let _ = out.flush();
                        }
                        Ok(Err(_)) => actix_rt::time::sleep(Duration::from_millis(1)).await,
                        Err(_) => return,
                    }
                }
            }
            .into_actor(self),
        );
    }
}

/// Whether `CRASH_COMPRESSION=1` asks for a compressing log.
fn compressing() -> bool {
    std::env::var("CRASH_COMPRESSION").as_deref() == Ok("1")
}

/// What each payload ends with: nothing, or (compressing) a JSON-like tail without spaces
/// that LZ4 stores in fewer bytes.
fn compressible_tail() -> String {
    if !compressing() {
        return String::new();
    }
    (0..6)
        .map(|k| format!(",{{\"key\":\"field{k}\",\"value\":\"value{k}\",\"ok\":true}}"))
        .collect()
}

/// The child's body: runs only when the parent sets the environment.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let round = std::env::var(CHILD_ROUND).unwrap_or_default();
    #[cfg(feature = "failpoints")]
    let _scenario = {
        let s = fail::FailScenario::setup();
        if let Ok(spec) = std::env::var(CHILD_FAULT) {
            if let Some((point, action)) = spec.split_once('=') {
                fail::cfg(point, action).unwrap();
            }
        }
        s
    };
    let sys = actix::System::new();
    sys.block_on(async move {
        let cfg = WalConfig {
            segment_size_bytes: 32 * 1024,
            max_record_bytes: 1024,
            max_batch_bytes: 8 * 1024,
            flusher_stall_timeout_ms: 100,
            restart_backoff_initial_ms: 5,
            restart_backoff_max_ms: 20,
            compression: if compressing() {
                Compression::Lz4 { min_bytes: 64 }
            } else {
                Compression::None
            },
            ..WalConfig::default()
        };
        let wal = Wal::open(&dir, cfg).await.expect("child opens the log");
        let _actors: Vec<_> = (0..16)
            .map(|a| {
                Appender {
                    queue: wal.queue().clone(),
                    name: format!("r{round}a{a}"),
                }
                .start()
            })
            .collect();
        // Run until killed.
        actix_rt::time::sleep(Duration::from_secs(60)).await;
    });
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[cfg(feature = "failpoints")]
fn fault_for(rng: &mut u64) -> Option<&'static str> {
    const FAULTS: [&str; 5] = [
        "flusher::before_write=1*panic(crash-loop fault)",
        "flusher::before_sync=3*panic(crash-loop fault)",
        "flusher::before_sync=1*return(EIO)",
        "flusher::before_write=1*sleep(300)",
        "segment::before_create=1*panic(crash-loop fault)",
    ];
    match xorshift(rng) % 3 {
        0 => None,
        _ => Some(FAULTS[(xorshift(rng) % FAULTS.len() as u64) as usize]),
    }
}

#[cfg(not(feature = "failpoints"))]
fn fault_for(_: &mut u64) -> Option<&'static str> {
    None
}

#[test]
fn sigkill_crash_loop_loses_no_acknowledged_record() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut acked: HashMap<u64, String> = HashMap::new();
    let mut total_faults = 0;
    for round in 0..20 {
        let fault = fault_for(&mut rng);
        total_faults += usize::from(fault.is_some());
        let mut cmd = Command::new(&exe);
        cmd.args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, d.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(f) = fault {
            cmd.env(CHILD_FAULT, f);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        // Most rounds kill the child while it appends: the moment is drawn from its first
        // acknowledgement on (a loaded machine may take long to start it). One round in
        // four draws it from the spawn, so that some kills land in the open and recovery.
        let mut lines = Vec::new();
        let from_spawn = round > 0 && xorshift(&mut rng).is_multiple_of(4);
        if !from_spawn {
            let until = Instant::now() + FIRST_ACK_WAIT;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(l) => {
                        let ack = l.starts_with("ACK ");
                        lines.push(l);
                        if ack {
                            break;
                        }
                    }
                    Err(_) => break, // no acknowledgement in time, or the child is gone
                }
            }
        }
        let run_ms = 150 + xorshift(&mut rng) % 350;
        std::thread::sleep(Duration::from_millis(run_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let mut this_round = 0;
        for l in lines {
            // Only whole lines count: a line cut by the kill has no payload yet.
            let mut parts = l.splitn(3, ' ');
            if let (Some("ACK"), Some(lsn), Some(payload)) =
                (parts.next(), parts.next(), parts.next())
            {
                if let Ok(lsn) = lsn.parse::<u64>() {
                    acked.insert(lsn, payload.to_string());
                    this_round += 1;
                }
            }
        }
        assert!(
            this_round > 0 || round > 0 || fault.is_some(),
            "round {round}: the child acknowledged nothing"
        );
        // Recovery on the crashed log, then check every acknowledged record.
        let (w, outcome) = LogWriter::open(
            d.path(),
            LogOptions {
                segment_size_bytes: 32 * 1024,
                max_record_bytes: 1024,
                ..LogOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("round {round} (fault {fault:?}): recovery failed: {e}"));
        drop(w);
        let records: HashMap<u64, Vec<u8>> = LogReader::open(d.path())
            .unwrap()
            .map(|r| r.map(|r| (r.lsn.0, r.payload)))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("round {round}: log unreadable after recovery: {e}"));
        assert_eq!(records.len() as u64, outcome.records);
        for (lsn, payload) in &acked {
            match records.get(lsn) {
                Some(p) => assert_eq!(
                    p,
                    payload.as_bytes(),
                    "round {round} (fault {fault:?}): LSN {lsn} holds other bytes"
                ),
                None => panic!(
                    "round {round} (fault {fault:?}): acknowledged LSN {lsn} ({payload}) lost"
                ),
            }
        }
    }
    assert!(
        acked.len() > 100,
        "the loop acknowledged too little to mean anything: {}",
        acked.len()
    );
    if cfg!(feature = "failpoints") {
        assert!(total_faults > 0);
    }
    if compressing() {
        // The records were stored compressed (frame flag bit 0), not only appended.
        let compressed = LogReader::open(d.path())
            .unwrap()
            .map(|r| r.unwrap())
            .filter(|r| {
                let seg = d.path().join(files::segment_name(r.segment_first_lsn.0));
                std::fs::read(seg).unwrap()[r.frame_offset as usize + 23] == 1
            })
            .count();
        assert!(compressed > 100, "{compressed} frames stored compressed");
    }
}

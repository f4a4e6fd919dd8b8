//! Network faults, pauses and crashes under a recorded workload, checked for
//! linearizability per key. Three `raft_kv` processes talk to each other through
//! fault-injecting proxies (`common/proxy.rs`, one per directed link, `--peer-via`);
//! clients reach every node directly. Eight clients PUT unique values and GET keys
//! (`common/history.rs`) while seeded nemeses strike in rounds:
//!
//! - `IsolateLeader`: the leader's links to and from both followers cut; clients still
//!   reach it (its PUTs cannot commit, its linearizable GETs cannot confirm leadership).
//! - `IsolateFollower`: one follower's links cut.
//! - `PauseLeader`: SIGSTOP, then SIGCONT.
//! - `KillRestart`: `kill -9` of the leader or a follower, restarted from its directory.
//!
//! Each round heals everything and waits for a leader. At the end: every key is read
//! once more through the leader, and each key's history (the final read included) must be
//! linearizable (`common/linearizable.rs`, a bounded WGL search: an undecided key fails
//! the test), every key with an acknowledged PUT must read back a value, and a stale read
//! made by hand from the recorded history must be caught.
//!
//! `RAFT_NEMESIS_SEED=N` replays a schedule (the faults, their order, targets and
//! durations; not the clients' timing); `RAFT_NEMESIS_ROUNDS=N` runs more rounds (4 by
//! default: each nemesis once, in the seed's order); `RAFT_NEMESES=PauseLeader,...` draws
//! from the nemeses named only (the same seed gives another schedule then).

#[path = "common/history.rs"]
mod history;
#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/raft.rs"]
mod raft;

use history::linearizable::{check, Call, Op, Verdict};
use history::{run_client, Recorder, Rng, Workload};
use proxy::Links;
use raft::{client, cluster, leader, raft_state, Node};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The workload: small per-key histories (about 16 operations on each of 4 keys at a time).
const WORKLOAD: Workload = Workload {
    clients: 8,
    keys_per_group: 4,
    ops_per_group: 64,
    think_ms: 20,
    max_ops: 2_000_000,
};
/// Rounds by default (`RAFT_NEMESIS_ROUNDS` for more).
const DEFAULT_ROUNDS: usize = 4;
/// Most events the checker visits for one key before calling it undecided.
const MAX_STEPS_PER_KEY: u64 = 2_000_000;
/// How long the clients run on a whole cluster before the first fault and after each heal.
const SETTLE: Duration = Duration::from_millis(1_000);

/// Timeout of a workload request: shorter than the faults, so that clients stuck on a
/// cut-off or paused leader give up and find the new one while the fault lasts.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(1_000);

/// An HTTP client for the workload: no redirects followed, `CLIENT_TIMEOUT`.
fn workload_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CLIENT_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

/// A fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nemesis {
    IsolateLeader,
    IsolateFollower,
    PauseLeader,
    KillRestart,
}

const NEMESES: [Nemesis; 4] = [
    Nemesis::IsolateLeader,
    Nemesis::IsolateFollower,
    Nemesis::PauseLeader,
    Nemesis::KillRestart,
];

/// One round of the schedule, all drawn from the seed.
#[derive(Debug, Clone, Copy)]
struct Round {
    nemesis: Nemesis,
    /// How long the fault lasts, ms.
    hold_ms: u64,
    /// `KillRestart`: how long the node stays down, ms (at most `hold_ms`; under about
    /// 1.7 s a killed leader comes back before another is elected).
    down_ms: u64,
    /// `IsolateFollower`: which follower (0 or 1, in id order). `KillRestart`: 0 kills
    /// the leader, 1 or 2 a follower.
    pick: u64,
}

/// The nemeses `RAFT_NEMESES` names (`IsolateLeader,PauseLeader`, say), or all four.
fn nemeses_wanted() -> Vec<Nemesis> {
    let Ok(names) = std::env::var("RAFT_NEMESES") else {
        return NEMESES.to_vec();
    };
    let wanted: Vec<Nemesis> = names
        .split(',')
        .map(|name| {
            *NEMESES
                .iter()
                .find(|n| format!("{n:?}") == name.trim())
                .unwrap_or_else(|| panic!("RAFT_NEMESES: no nemesis `{name}` in {NEMESES:?}"))
        })
        .collect();
    assert!(!wanted.is_empty(), "RAFT_NEMESES names none");
    wanted
}

/// The schedule of `seed`: each of `nemeses` once per `nemeses.len()` rounds, in a
/// shuffled order.
fn schedule(seed: u64, rounds: usize, nemeses: &[Nemesis]) -> Vec<Round> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(rounds);
    while out.len() < rounds {
        let mut order = nemeses.to_vec();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for nemesis in order {
            out.push(Round {
                nemesis,
                hold_ms: 2_000 + rng.below(3_000),
                down_ms: 200 + rng.below(2_000),
                pick: rng.below(3),
            });
        }
    }
    out.truncate(rounds);
    out
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v}: not a number: {e}")),
    )
}

fn signal(node: &Node, sig: rustix::process::Signal) {
    let pid = node.child.as_ref().expect("the node runs").id();
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a child's pid is positive");
    rustix::process::kill_process(pid, sig).expect("signal the node");
}

/// Ms until a node other than `old` says it leads (polling every 20 ms), if within `within`.
async fn new_leader_ms(
    http: &reqwest::Client,
    addrs: &[SocketAddr],
    old: u64,
    within: Duration,
) -> Option<u64> {
    let start = Instant::now();
    while start.elapsed() < within {
        for (i, addr) in addrs.iter().enumerate() {
            if i as u64 + 1 == old {
                continue;
            }
            if let Some(s) = raft_state(http, *addr).await {
                if s["state"] == "Leader" {
                    return Some(start.elapsed().as_millis() as u64);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Waits until every node answers and all name the same leader, which says it leads:
/// `(leader, term, ms waited)`. A deposed leader that has not heard of the new term yet
/// still says it leads, so one node's word is not enough.
async fn agreed_leader(http: &reqwest::Client, addrs: &[SocketAddr]) -> (u64, u64, u64) {
    let start = Instant::now();
    loop {
        let mut states = Vec::with_capacity(addrs.len());
        for addr in addrs {
            states.push(raft_state(http, *addr).await);
        }
        let named: Vec<Option<u64>> = states
            .iter()
            .map(|s| s.as_ref().and_then(|s| s["leader"].as_u64()))
            .collect();
        if let Some(Some(id)) = named.first() {
            let leads = states
                .get(*id as usize - 1)
                .and_then(|s| s.as_ref())
                .is_some_and(|s| s["state"] == "Leader");
            if leads && named.iter().all(|n| *n == Some(*id)) {
                let term = states[*id as usize - 1]
                    .as_ref()
                    .map_or(0, |s| s["term"].as_u64().unwrap_or(0));
                return (*id, term, start.elapsed().as_millis() as u64);
            }
        }
        assert!(
            start.elapsed() < raft::WAIT_TIMEOUT,
            "the nodes agree on no leader within {:?}: {named:?}",
            raft::WAIT_TIMEOUT
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `key` at `addrs[*at]`, moving `at` to the next node and retrying until a node
/// answers 200 or 404 (a leader: followers answer 307).
async fn final_read(
    http: &reqwest::Client,
    addrs: &[SocketAddr],
    at: &mut usize,
    key: &str,
) -> Option<u64> {
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while Instant::now() < deadline {
        match http
            .get(format!("http://{}/kv/{key}", addrs[*at]))
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => {
                let text = r.text().await.expect("a value");
                return Some(text.trim().parse().expect("values are numbers"));
            }
            Ok(r) if r.status() == StatusCode::NOT_FOUND => return None,
            _ => {
                *at = (*at + 1) % addrs.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    panic!(
        "{key}: no leader answered a read within {:?}",
        raft::WAIT_TIMEOUT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_pauses_and_kills_keep_every_key_linearizable() {
    let seed = env_u64("RAFT_NEMESIS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let rounds = env_u64("RAFT_NEMESIS_ROUNDS").map_or(DEFAULT_ROUNDS, |n| n as usize);
    let plan = schedule(seed, rounds, &nemeses_wanted());
    println!("raft_partitions: seed {seed} (replay: RAFT_NEMESIS_SEED={seed}), {rounds} rounds");

    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(root.path(), &[]);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let links = Links::start(&nodes.iter().map(|n| (n.id, n.addr)).collect::<Vec<_>>()).await;
    for node in &mut nodes {
        let via = links.via(node.id);
        node.extra.extend(["--peer-via".to_string(), via]);
    }
    tokio::task::block_in_place(|| {
        nodes[0].start(true);
        nodes[1].start(false);
        nodes[2].start(false);
    });
    let http = client();
    leader(&http, &addrs, None).await;

    let rec = Recorder::new();
    let clients: Vec<_> = (0..WORKLOAD.clients)
        .map(|c| {
            let seed = seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9);
            tokio::spawn(run_client(
                rec.clone(),
                addrs.clone(),
                WORKLOAD,
                seed,
                workload_client(),
            ))
        })
        .collect();
    tokio::time::sleep(SETTLE).await;

    for (r, round) in plan.iter().enumerate() {
        let (lead, term, _) = agreed_leader(&http, &addrs).await;
        let before = rec.counts.snapshot();
        let hold = Duration::from_millis(round.hold_ms);
        let followers: Vec<u64> = (1..=3).filter(|&id| id != lead).collect();
        let mut took_over_ms = None;
        let fault_at = Instant::now();
        let target = match round.nemesis {
            Nemesis::IsolateLeader => {
                links.isolate(lead);
                took_over_ms = new_leader_ms(&http, &addrs, lead, hold).await;
                tokio::time::sleep(hold.saturating_sub(fault_at.elapsed())).await;
                lead
            }
            Nemesis::IsolateFollower => {
                let f = followers[(round.pick % 2) as usize];
                links.isolate(f);
                tokio::time::sleep(hold).await;
                f
            }
            Nemesis::PauseLeader => {
                let node = &nodes[lead as usize - 1];
                signal(node, rustix::process::Signal::STOP);
                took_over_ms = new_leader_ms(&http, &addrs, lead, hold).await;
                tokio::time::sleep(hold.saturating_sub(fault_at.elapsed())).await;
                signal(node, rustix::process::Signal::CONT);
                lead
            }
            Nemesis::KillRestart => {
                let victim = if round.pick == 0 {
                    lead
                } else {
                    followers[(round.pick - 1) as usize]
                };
                let down = Duration::from_millis(round.down_ms.min(round.hold_ms));
                let killed_at = Instant::now();
                tokio::task::block_in_place(|| nodes[victim as usize - 1].kill());
                if victim == lead {
                    took_over_ms = new_leader_ms(&http, &addrs, lead, down).await;
                }
                tokio::time::sleep(down.saturating_sub(killed_at.elapsed())).await;
                tokio::task::block_in_place(|| nodes[victim as usize - 1].start(false));
                tokio::time::sleep(hold.saturating_sub(killed_at.elapsed())).await;
                victim
            }
        };
        let during = rec.counts.snapshot();
        // The leader cut off, paused or killed long enough, and no other took over: an
        // availability finding (not a safety one): what each node says, before healing.
        let leader_gone = match round.nemesis {
            Nemesis::IsolateLeader | Nemesis::PauseLeader => true,
            // A killed leader is back within 2.2 s, about the time an election takes.
            Nemesis::KillRestart | Nemesis::IsolateFollower => false,
        };
        if leader_gone && took_over_ms.is_none() {
            println!("round {r}: no other leader within {} ms:", round.hold_ms);
            for addr in &addrs {
                let s = raft_state(&http, *addr).await;
                println!(
                    "  {addr}: {}",
                    s.map_or("no answer".into(), |s| s.to_string())
                );
            }
        }
        links.heal_all();
        let (after_lead, after_term, agreed_ms) = agreed_leader(&http, &addrs).await;
        tokio::time::sleep(SETTLE).await;
        let after = rec.counts.snapshot();
        let d = |a: [u64; 5], b: [u64; 5]| -> Vec<u64> { (0..5).map(|i| a[i] - b[i]).collect() };
        println!(
            "round {r}: {:?} on node {target} for {} ms{} (leader {lead} term {term}; \
             another leader after {took_over_ms:?} ms; {agreed_ms} ms after healing all \
             name leader {after_lead} term {after_term}); [put ok, put unknown, put \
             refused, get ok, get dropped] during {:?}, in the {} ms after {:?}",
            round.nemesis,
            round.hold_ms,
            if round.nemesis == Nemesis::KillRestart {
                format!(", down {} ms", round.down_ms.min(round.hold_ms))
            } else {
                String::new()
            },
            d(during, before),
            SETTLE.as_millis(),
            d(after, during),
        );
    }

    rec.stop();
    for c in clients {
        c.await.expect("client task");
    }
    links.heal_all();
    agreed_leader(&http, &addrs).await;
    let counts = rec.counts.snapshot();
    let mut by_key: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for (key, op) in rec.history.lock().expect("history").drain(..) {
        by_key.entry(key).or_default().push(op);
    }
    // Every key read once more, after everything, as a client of its own.
    let reader = rec.new_client();
    let mut lost = Vec::new();
    let mut at = 0;
    for (key, ops) in by_key.iter_mut() {
        let invoke_ns = rec.now_ns();
        let seen = final_read(&http, &addrs, &mut at, key).await;
        let complete_ns = rec.now_ns();
        let acked = ops
            .iter()
            .any(|o| matches!(o.call, Call::Put(_)) && o.complete_ns.is_some());
        if acked && seen.is_none() {
            lost.push(key.clone());
        }
        ops.push(Op {
            client: reader,
            invoke_ns,
            complete_ns: Some(complete_ns),
            call: Call::Get(seen),
        });
    }

    let started = Instant::now();
    let mut bad = Vec::new();
    let (mut most_ops, mut most_steps) = (0, 0);
    for (key, ops) in &by_key {
        let verdict = check(ops, MAX_STEPS_PER_KEY);
        most_ops = most_ops.max(ops.len());
        match verdict {
            Verdict::Linearizable { steps } => most_steps = most_steps.max(steps),
            other => bad.push((key.clone(), other)),
        }
    }
    println!(
        "raft_partitions: seed {seed}: {} keys, {} operations ({} PUTs acknowledged, {} \
         unknown, {} refused and left out, {} GETs answered, {} left out); longest key history {most_ops} \
         operations, most steps {most_steps}; checked in {} ms",
        by_key.len(),
        by_key.values().map(Vec::len).sum::<usize>(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        started.elapsed().as_millis(),
    );
    for (key, verdict) in bad.iter().take(3) {
        let mut ops = by_key[key].clone();
        ops.sort_by_key(|o| o.invoke_ns);
        println!("{key}: {verdict:?}");
        for o in ops {
            println!("  {o:?}");
        }
    }
    assert!(
        bad.is_empty() && lost.is_empty(),
        "seed {seed}: {} keys not shown linearizable ({:?}), acknowledged keys read as \
         absent: {lost:?}",
        bad.len(),
        bad.iter().map(|(k, _)| k).collect::<Vec<_>>(),
    );
    assert!(
        counts[0] > 0 && counts[3] > 0,
        "no acknowledged PUT or answered GET"
    );

    // Teeth: a GET made up after everything that returns a value acknowledged earlier
    // and overwritten by a later acknowledged PUT (one that began after it was
    // acknowledged): the checker must refuse every such history.
    let mut stale_tried = 0;
    for ops in by_key.values() {
        let acked: Vec<(u64, u64, u64)> = ops
            .iter()
            .filter_map(|o| match (o.call, o.complete_ns) {
                (Call::Put(v), Some(c)) => Some((o.invoke_ns, c, v)),
                _ => None,
            })
            .collect();
        let Some(&(_, first_done, first_v)) = acked.iter().min_by_key(|a| a.1) else {
            continue;
        };
        if !acked.iter().any(|&(inv, _, _)| inv > first_done) {
            continue;
        }
        let end = ops.iter().filter_map(|o| o.complete_ns).max().unwrap_or(0);
        let mut forged = ops.clone();
        forged.push(Op {
            client: u64::MAX,
            invoke_ns: end + 1,
            complete_ns: Some(end + 2),
            call: Call::Get(Some(first_v)),
        });
        let verdict = check(&forged, MAX_STEPS_PER_KEY);
        assert!(
            matches!(verdict, Verdict::NotLinearizable { .. }),
            "seed {seed}: a stale read of {first_v} was not refused: {verdict:?}"
        );
        stale_tried += 1;
    }
    println!("raft_partitions: {stale_tried} hand-made stale reads, each refused");
    assert!(
        stale_tried > 0,
        "no key had two acknowledged PUTs in sequence"
    );
}

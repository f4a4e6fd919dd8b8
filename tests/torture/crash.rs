//! One workload seed through its generations: crash images taken before every
//! mutating operation, the points chosen among them, and each image recovered and checked.

use crate::case::Origin;
use crate::setup::{Engine, Found, Params, Setup, DIR, MAX_RECORD_BYTES};
use crate::sim::broken::BrokenStorage;
use crate::sim::check::{
    before_last_batch, read_log, recover, verify, verify_held, Expect, Rec, Violation,
};
use crate::sim::oracle::{Event, Oracle, Tag};
use crate::sim::slot_check::verify_slot;
use crate::sim::{mix, Rng, SimStorage, Snapshot};
use crate::workload::{run_actors, run_writer};
use actix_wal::{RecoveryPolicy, WalError};
use std::path::Path;

/// Recovers a crash image and checks it: the records, idempotence, a crash during
/// recovery, and (sometimes) a bit flip before the last batch. Returns the records.
pub(crate) fn check_image(
    setup: &Setup,
    p: &Params,
    image: &SimStorage,
    expect: &Expect<'_>,
    rng: &mut Rng,
    found: &mut Found,
) -> Result<Vec<Rec>, Vec<Violation>> {
    let dir = Path::new(DIR);
    let pristine = image.fork();
    let storage = setup.storage(image);
    let opts = setup.log_options(p, storage.clone());
    // What an offline reader sees before recovery runs (it writes nothing). A directory a
    // crash took before the log was ever made holds no log: recovery creates it, empty.
    let offline_storage = match setup.reader_broken {
        Some(b) => BrokenStorage::wrap(pristine.shared(), b),
        None => setup.storage(&pristine),
    };
    let offline = match offline_storage.is_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        _ => read_log(&offline_storage, dir, MAX_RECORD_BYTES),
    };
    image.record(|| 0);
    let first = recover(&storage, dir, &opts);
    let during = image.take_snapshots();
    let slot = match first {
        Err(e) => return Err(vec![Violation::RecoveryFailed(e.to_string())]),
        Ok(o) => {
            if o.bytes_cut > 0 {
                found.torn_tails += 1;
            }
            o.meta
        }
    };
    let recs = read_log(&storage, dir, MAX_RECORD_BYTES)
        .map_err(|e| vec![Violation::ReadFailed(e.to_string())])?;
    let mut v = verify(&recs, expect);
    // The metadata slot: the last value acknowledged, or one sent after it.
    v.extend(verify_slot(slot.as_deref(), expect.events));
    // The named cursor as recovery left it: every acknowledged record from it on is kept.
    if let Ok(Some(m)) = actix_wal::files::read_meta(storage.as_ref(), dir) {
        if let Some(c) = m.cursor(crate::workload::CURSOR).filter(|c| !c.invalidated) {
            v.extend(verify_held(&recs, expect, c.lsn));
        }
    }
    if setup.policy == RecoveryPolicy::TolerateTornTail {
        if let Some(why) = disagreement(&offline, &recs) {
            v.push(Violation::ReaderDisagrees(why));
        }
    }
    // Idempotent: recovering the recovered log changes nothing.
    match recover(&storage, dir, &opts).and_then(|_| read_log(&storage, dir, MAX_RECORD_BYTES)) {
        Ok(again) if again == recs => {}
        Ok(again) => v.push(Violation::NotIdempotent(format!(
            "second recovery: {} records, first: {}",
            again.len(),
            recs.len()
        ))),
        Err(e) => v.push(Violation::NotIdempotent(format!(
            "second recovery failed: {e}"
        ))),
    }
    // A crash during recovery, then recovery again: the same records.
    if !during.is_empty() {
        let snap = &during[rng.below(during.len() as u64) as usize];
        let img = snap.crash(rng.next_u64());
        let st = setup.storage(&img);
        let o = setup.log_options(p, st.clone());
        found.recovery_crashes += 1;
        match recover(&st, dir, &o).and_then(|_| read_log(&st, dir, MAX_RECORD_BYTES)) {
            Ok(again) if again == recs => {}
            Ok(again) => v.push(Violation::NotIdempotent(format!(
                "crash at recovery op {} ({}): {} records, clean recovery: {}",
                snap.op,
                snap.desc,
                again.len(),
                recs.len()
            ))),
            Err(e) => v.push(Violation::NotIdempotent(format!(
                "recovery after a crash at recovery op {} ({}) failed: {e}",
                snap.op, snap.desc
            ))),
        }
    }
    // A bit flipped at rest before the last batch is reported.
    if rng.chance(1, 3) {
        let ranges = before_last_batch(image, dir, &recs);
        let total: u64 = ranges.iter().map(|(_, a, b)| b - a).sum();
        if total > 0 {
            let mut at = rng.below(total);
            for (name, a, b) in &ranges {
                if at < b - a {
                    let f = image.fork();
                    let path = dir.join(name);
                    let bit = rng.below(8) as u8;
                    f.flip_bit(&path, a + at, bit);
                    let st = setup.storage(&f);
                    let o = setup.log_options(p, st.clone());
                    found.flips += 1;
                    match recover(&st, dir, &o) {
                        Err(e) if e.is_corruption() => {}
                        other => v.push(Violation::FlipMissed(format!(
                            "bit {bit} of byte {} of {name}: recovery gave {:?}",
                            a + at,
                            other.map(|o| o.records)
                        ))),
                    }
                    break;
                }
                at -= b - a;
            }
        }
    }
    drop(pristine);
    if v.is_empty() {
        Ok(recs)
    } else {
        Err(v)
    }
}

/// How the records `LogReader` read on a crash image before recovery differ from those of
/// the log recovery opened, if they do: in number, or the first LSN or payload that
/// differs, or the reader's error.
fn disagreement(offline: &Result<Vec<Rec>, WalError>, recovered: &[Rec]) -> Option<String> {
    let offline = match offline {
        Ok(r) => r,
        Err(e) => {
            return Some(format!(
                "the reader failed where recovery opened the log: {e}"
            ))
        }
    };
    let key = |r: &Rec| (r.lsn, r.payload.clone(), r.txn);
    if offline.len() == recovered.len()
        && offline.iter().zip(recovered).all(|(a, b)| key(a) == key(b))
    {
        return None;
    }
    let first_diff = offline
        .iter()
        .zip(recovered)
        .position(|(a, b)| key(a) != key(b));
    let span = |r: &[Rec]| match (r.first(), r.last()) {
        (Some(a), Some(b)) => format!("{}..={}", a.lsn, b.lsn),
        _ => "none".into(),
    };
    Some(format!(
        "the reader read {} records (LSNs {}), recovery opened {} (LSNs {}){}",
        offline.len(),
        span(offline),
        recovered.len(),
        span(recovered),
        first_diff.map_or(String::new(), |i| format!(
            "; they differ first at LSN {}",
            recovered[i].lsn
        ))
    ))
}

/// Chooses the crash points to check: the end of the run, then a third at random, a third
/// among the operations where ordering matters most (namespace and size changes) and a
/// third just before an fsync (where un-synced data can tear).
pub(crate) fn choose_points(snaps: &[Snapshot], n: usize, rng: &mut Rng) -> Vec<usize> {
    if snaps.len() <= n {
        return (0..snaps.len()).collect();
    }
    let of = |pred: &dyn Fn(crate::sim::OpKind) -> bool| -> Vec<usize> {
        (0..snaps.len())
            .filter(|&i| pred(snaps[i].desc.kind))
            .collect()
    };
    let namespace = of(&|k| {
        k.is_namespace() || matches!(k, crate::sim::OpKind::SetLen | crate::sim::OpKind::Allocate)
    });
    let fsync = of(&|k| {
        matches!(
            k,
            crate::sim::OpKind::SyncData | crate::sim::OpKind::SyncAll
        )
    });
    let mut out = vec![snaps.len() - 1];
    while out.len() < n {
        let pool = match rng.below(3) {
            0 if !namespace.is_empty() => &namespace,
            1 if !fsync.is_empty() => &fsync,
            _ => {
                let i = rng.below(snaps.len() as u64) as usize;
                if !out.contains(&i) {
                    out.push(i);
                }
                continue;
            }
        };
        let i = pool[rng.below(pool.len() as u64) as usize];
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

/// Runs one workload seed through all its generations.
pub(crate) fn run_seed(setup: &Setup, seed: u64, stop_at_first: bool) -> Found {
    let mut rng = Rng::new(seed);
    let p = Params::new(&mut rng, setup.engine);
    let mut found = Found::default();
    let mut base = SimStorage::new();
    let mut required: Vec<Rec> = Vec::new();
    for gen in 0..setup.gens {
        let gen_seed = mix(seed, u64::from(gen) + 1000);
        let oracle = Oracle::default();
        let sim = base;
        sim.record(oracle.probe());
        let ran = match setup.engine {
            Engine::Actors => run_actors(setup, &p, gen, gen_seed, &sim, &oracle),
            Engine::Writer => run_writer(setup, &p, gen, gen_seed, &sim, &oracle),
        };
        let mut snaps = sim.take_snapshots();
        if let Err(e) = ran {
            found.kinds.push("recovery-failed");
            found.violations.push(format!(
                "TORTURE_SEED={}:{seed} gen {gen}: {e}",
                setup.engine.name()
            ));
            return found;
        }
        snaps.push(sim.snapshot(oracle.mark()));
        let points = choose_points(&snaps, setup.points_per_gen, &mut rng);
        let mut next: Option<(SimStorage, Vec<Rec>)> = None;
        for &i in &points {
            let snap = &snaps[i];
            let events = oracle.upto(snap.mark);
            let expect = Expect {
                required: &required,
                events: &events,
            };
            for s in 0..setup.seeds_per_point {
                let image_seed = mix(gen_seed, (snap.op << 8) | s);
                let image = snap.crash(image_seed);
                let keep = image.fork();
                let check_rng = rng.clone();
                found.crash_points += 1;
                match check_image(setup, &p, &image, &expect, &mut rng, &mut found) {
                    Ok(recs) => {
                        let last = i == snaps.len() - 1;
                        if next.is_none() || last || rng.chance(1, 4) {
                            next = Some((keep, recs));
                        }
                    }
                    Err(vs) => {
                        let window = snaps[i.saturating_sub(8)..=i]
                            .iter()
                            .map(|s| format!("#{} {}", s.op, s.desc))
                            .collect::<Vec<_>>()
                            .join(", ");
                        found.kinds.extend(vs.iter().map(Violation::kind));
                        if std::env::var_os("TORTURE_VERBOSE").is_some() {
                            eprintln!(
                                "--- gen {gen}: every operation, with the events seen before it"
                            );
                            let all = oracle.upto(oracle.mark());
                            let mut shown = 0;
                            for s in &snaps {
                                while shown < s.mark as usize {
                                    eprintln!("      event {shown}: {:?}", all[shown]);
                                    shown += 1;
                                }
                                eprintln!("  #{} {}", s.op, s.desc);
                            }
                        }
                        let history = attempt_history(&events, &vs);
                        let origin = Origin {
                            engine: setup.engine,
                            seed,
                            gen,
                            op: snap.op,
                            desc: snap.desc.to_string(),
                            image_seed,
                        };
                        // The generation's operations up to the crash, each with how many
                        // of the workload's events came before it (for the saved case).
                        let ops: Vec<String> = snaps[..=i]
                            .iter()
                            .map(|s| format!("#{} {} (after event {})", s.op, s.desc, s.mark))
                            .collect();
                        let saved =
                            save_case(setup, &origin, &p, &keep, &expect, &check_rng, &vs, &ops);
                        found.violations.push(format!(
                            "TORTURE_SEED={}:{seed} gen {gen}, crash before op #{} ({}), image seed {image_seed}: {}\n    ops before it: {window}{history}{saved}",
                            setup.engine.name(),
                            snap.op,
                            snap.desc,
                            summarize(&vs),
                        ));
                        if stop_at_first {
                            return found;
                        }
                    }
                }
            }
        }
        match next {
            Some((image, recs)) => {
                base = image;
                required = recs;
            }
            None => return found,
        }
    }
    found
}

/// Saves a failing case of an unbroken setup (the teeth tests' broken variants fail on
/// purpose) so that it replays exactly; returns the line that says where, or why not.
#[allow(clippy::too_many_arguments)]
fn save_case(
    setup: &Setup,
    origin: &Origin,
    p: &Params,
    image: &SimStorage,
    expect: &Expect<'_>,
    check_rng: &Rng,
    vs: &[Violation],
    ops: &[String],
) -> String {
    // The teeth runs (a broken disk or reader, a split transaction, another policy) are
    // meant to fail: their cases are not kept.
    if setup.broken.is_some()
        || setup.reader_broken.is_some()
        || setup.split_txn
        || setup.policy != RecoveryPolicy::TolerateTornTail
    {
        return String::new();
    }
    match crate::case::save(origin, p, image, expect, check_rng, &summarize(vs), ops) {
        Ok(dir) => format!(
            "\n    crash image saved: TORTURE_IMAGE={} replays it",
            dir.display()
        ),
        Err(e) => format!("\n    saving the crash image failed: {e}"),
    }
}

/// For a ghost or a duplicate: what the workload saw of that attempt.
pub(crate) fn attempt_history(events: &[Event], vs: &[Violation]) -> String {
    let Some(attempt) = vs.iter().find_map(|v| match v {
        Violation::Ghost { tag } | Violation::Duplicate { tag } => Some(tag.attempt()),
        _ => None,
    }) else {
        return String::new();
    };
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        let line = match e {
            Event::Submitted(t) if t[0].attempt() == attempt => "submitted".to_string(),
            Event::Failed(t) if t[0].attempt() == attempt => "failed".to_string(),
            Event::Acked { lsn, payloads } => match Tag::decode(&payloads[0]) {
                Some(t) if t.attempt() == attempt => format!("acked at LSN {lsn}"),
                _ => continue,
            },
            _ => continue,
        };
        out.push_str(&format!("\n    event {i}: {line}"));
    }
    out
}

/// One line for the violations of one image: how many of each kind, and the first few.
pub(crate) fn summarize(vs: &[Violation]) -> String {
    let mut kinds: Vec<&str> = vs.iter().map(Violation::kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let counts: Vec<String> = kinds
        .iter()
        .map(|k| format!("{k} x{}", vs.iter().filter(|v| v.kind() == *k).count()))
        .collect();
    let first: Vec<String> = vs.iter().take(3).map(|v| format!("{v:?}")).collect();
    format!("{} [{}]", counts.join(", "), first.join("; "))
}

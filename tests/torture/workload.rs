//! The two workloads a seed runs for one generation: concurrent clients through the
//! actor pipeline, or the synchronous `LogWriter`, both recording what they saw.

use crate::setup::{arm_faults, definite, make_entries, Params, Setup, DIR, MAX_RECORD_BYTES};
use crate::sim::oracle::{Event, Kind, Oracle, Tag};
use crate::sim::{mix, Rng, SimStorage};
use actix_wal::LogWriter;
use actix_wal::{Append, CommitMode, Durability, Lsn, Wal, WalConfig};
use futures::future::join_all;
use std::time::Duration;

/// Whether generation `gen` of the actor workload's log compresses (LZ4 from the
/// smallest threshold, 32 bytes: the workload's payloads are short; transactions, whose
/// entries share their tags' bytes, are the frames stored compressed): one generation in
/// three, drawn from the seed (so a log mixes compressed and plain generations);
/// `TORTURE_COMPRESSION=1` every generation, `=0` none.
pub(crate) fn compression(seed: u64, gen: u32) -> actix_wal::Compression {
    let on = match std::env::var("TORTURE_COMPRESSION").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => Rng::new(mix(mix(seed, 79), u64::from(gen))).chance(1, 3),
    };
    if on {
        actix_wal::Compression::Lz4 {
            min_bytes: actix_wal::format::compress::MIN_COMPRESS_BYTES,
        }
    } else {
        actix_wal::Compression::None
    }
}

/// The named cursor the actor workload moves (issue 22).
pub(crate) const CURSOR: &str = "torture";

/// One client of the actor workload: durable appends, transactions, buffered appends
/// acknowledged by a later flush, mode switches, truncations and (with truncations) moves
/// of the named cursor `torture` that holds records below them. A definite failure is
/// retried once, sometimes later.
pub(crate) async fn actor_client(
    wal: Wal,
    p: Params,
    gen: u32,
    client: u16,
    seed: u64,
    oracle: Oracle,
) {
    let mut rng = Rng::new(mix(seed, u64::from(client)));
    let mut buffered: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut retry: Option<(Vec<Tag>, Vec<Vec<u8>>, Kind)> = None;
    for seq in 0..p.ops_per_client {
        let r = rng.below(100);
        if r < 4 && p.truncate {
            if let Ok(s) = wal.stats().await {
                let t = s.durable_lsn.0.saturating_sub(rng.below(30));
                oracle.push(Event::Truncate(t));
                if wal.truncate_before(Lsn(t)).await.is_ok() {
                    oracle.push(Event::Checkpointed(t));
                }
            }
            continue;
        }
        if r < 6 && p.truncate {
            // The named cursor moves to a recent durable LSN: segments below it may go.
            if let (Ok(s), Ok(c)) = (wal.stats().await, wal.cursor(CURSOR).await) {
                // Often below the checkpoints (asked at up to 30 below the durable end),
                // so that it holds what they would remove.
                let to = (s.durable_lsn.0 + 1).saturating_sub(rng.below(80));
                if to > c.lsn().0 {
                    oracle.push(Event::CursorAdvance(to));
                    if c.advance(Lsn(to)).await.is_ok() {
                        oracle.push(Event::CursorAt(to));
                    }
                }
            }
            continue;
        }
        if (8..11).contains(&r) && client == 0 {
            // The metadata slot (issue 23): one client, so the calls are ordered. Values
            // are unique, of 0 to 299 bytes (some larger than a small segment's room).
            let len = rng.below(300) as usize;
            let mut value = format!("meta:{gen}:{seq}:").into_bytes();
            value.resize(value.len() + len, b'm');
            oracle.push(Event::MetaSet(value.clone()));
            match wal.set_meta(value.clone()).await {
                Ok(()) => oracle.push(Event::MetaAcked(value)),
                Err(e) if definite(&e) => {}
                Err(_) => return,
            }
            continue;
        }
        if r < 8 {
            let mode = if rng.chance(1, 2) {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            let _ = wal.set_mode(mode).await;
            continue;
        }
        if r < 14 {
            if let Ok(d) = wal.flush().await {
                // Buffered LSNs are given out again after a failed write: trust them only
                // if no write has failed so far.
                let clean = wal.stats().await.is_ok_and(|s| s.write_failures == 0);
                for (lsn, payload) in buffered.drain(..) {
                    if clean && lsn <= d.0 {
                        oracle.push(Event::Acked {
                            lsn,
                            payloads: vec![payload],
                        });
                    }
                }
            }
            continue;
        }
        let (tags, payloads, kind) = match retry.take() {
            Some(x) if rng.chance(1, 2) => x,
            _ => {
                let kind = if r < 40 { Kind::Commit } else { Kind::Append };
                let (t, pl) = make_entries(&mut rng, &p, gen, client, seq, kind);
                (t, pl, kind)
            }
        };
        let is_buffered = kind == Kind::Append && r >= 90;
        oracle.push(Event::Submitted(tags.clone()));
        let res = match kind {
            Kind::Commit => wal.commit(payloads.clone()).await,
            Kind::Append if is_buffered => {
                wal.send(Append::new(payloads[0].clone()).durability(Durability::Buffered))
                    .await
            }
            Kind::Append => wal.append(payloads[0].clone()).await,
        };
        match res {
            Ok(lsn) if is_buffered => buffered.push((lsn.0, payloads[0].clone())),
            Ok(lsn) => oracle.push(Event::Acked {
                lsn: lsn.0,
                payloads,
            }),
            Err(e) if definite(&e) => {
                oracle.push(Event::Failed(tags.clone()));
                if !is_buffered {
                    retry = Some((tags, payloads, kind));
                }
            }
            // Poisoned or shut down: the outcome is unknown, and the log takes no more.
            Err(_) => return,
        }
    }
}

/// One generation of the actor workload on `sim` (which must hold the crash image).
pub(crate) fn run_actors(
    setup: &Setup,
    p: &Params,
    gen: u32,
    seed: u64,
    sim: &SimStorage,
    oracle: &Oracle,
) -> Result<(), String> {
    let storage = setup.storage(sim);
    let p = p.clone();
    let sim = sim.clone();
    let oracle = oracle.clone();
    let faults = setup.always_faults || Rng::new(mix(seed, 77)).chance(1, 3);
    let compression = compression(seed, gen);
    let fault = setup.fault;
    actix::System::new().block_on(async move {
        let cfg = WalConfig {
            segment_size_bytes: p.segment_size_bytes,
            max_record_bytes: MAX_RECORD_BYTES,
            max_batch_bytes: (p.segment_size_bytes as usize - 32).min(2048),
            preallocate: p.preallocate,
            flush_interval_ms: 2,
            storage,
            compression,
            ..WalConfig::default()
        };
        // The slot as the last generation left it (checked then): durable, the value every
        // crash of this generation starts from, its open's recovery included.
        if let Some(v) = slot_at_start(&cfg.storage) {
            oracle.push(Event::MetaSet(v.clone()));
            oracle.push(Event::MetaAcked(v));
        }
        let wal = Wal::open(DIR, cfg)
            .await
            .map_err(|e| format!("Wal::open on the crashed image: {e}"))?;

        if p.truncate {
            // Found where the last generation left it (or created at the first LSN).
            let c = wal
                .cursor(CURSOR)
                .await
                .map_err(|e| format!("the cursor on the crashed image: {e}"))?;
            oracle.push(Event::CursorAt(c.lsn().0));
            // The last generation's checkpoint: records below it that the cursor held may
            // go once the cursor moves on (as if a truncation were asked, the cursor known).
            let s = wal
                .stats()
                .await
                .map_err(|e| format!("stats on the crashed image: {e}"))?;
            oracle.push(Event::Truncate(s.checkpoint_lsn.0));
        }
        if faults {
            let span = u64::from(p.clients) * u64::from(p.ops_per_client) * 2;
            arm_faults(&sim, fault, &mut Rng::new(mix(seed, 78)), sim.ops(), span);
        }
        let clients = (0..p.clients)
            .map(|c| actor_client(wal.clone(), p.clone(), gen, c, seed, oracle.clone()));
        actix_rt::time::timeout(Duration::from_secs(120), join_all(clients))
            .await
            .map_err(|_| "workload did not finish within 120 s".to_string())?;
        let _ = wal.shutdown().await;
        Ok(())
    })
}

/// One generation of the `LogWriter` workload: deterministic.
pub(crate) fn run_writer(
    setup: &Setup,
    p: &Params,
    gen: u32,
    seed: u64,
    sim: &SimStorage,
    oracle: &Oracle,
) -> Result<(), String> {
    let opts = setup.log_options(p, setup.storage(sim));
    let (mut w, _) = LogWriter::open(DIR, opts)
        .map_err(|e| format!("LogWriter::open on the crashed image: {e}"))?;
    let mut rng = Rng::new(mix(seed, 1));
    if setup.always_faults || rng.chance(1, 3) {
        let span = u64::from(p.ops_per_client) * 2;
        arm_faults(sim, setup.fault, &mut rng, sim.ops(), span);
    }
    type Pending = (Vec<Tag>, Vec<Vec<u8>>, u64);
    let mut batch: Vec<Pending> = Vec::new();
    let mut retry: Vec<Pending> = Vec::new();
    let mut durable = 0u64;
    let append = |w: &mut LogWriter, tags: &[Tag], payloads: &[Vec<u8>], split: bool| {
        if tags[0].kind == Kind::Append {
            w.append(&payloads[0])
        } else if split {
            // Broken: a transaction as separate records, each synced on its own.
            let first = w.append(&payloads[0])?;
            for pl in &payloads[1..] {
                w.sync()?;
                w.append(pl)?;
            }
            Ok(first)
        } else {
            w.append_transaction(payloads)
        }
    };
    for seq in 0..p.ops_per_client {
        if p.truncate && rng.chance(1, 25) && durable > 0 {
            let t = durable.saturating_sub(rng.below(30));
            oracle.push(Event::Truncate(t));
            if w.truncate_before(Lsn(t)).is_ok() {
                oracle.push(Event::Checkpointed(t));
            }
        }
        let (tags, payloads) = if !retry.is_empty() && rng.chance(1, 2) {
            let (t, pl, _) = retry.remove(0);
            (t, pl)
        } else {
            let kind = if rng.chance(1, 3) {
                Kind::Commit
            } else {
                Kind::Append
            };
            make_entries(&mut rng, p, gen, 0, seq, kind)
        };
        oracle.push(Event::Submitted(tags.clone()));
        match append(&mut w, &tags, &payloads, setup.split_txn) {
            Ok(lsn) => batch.push((tags, payloads, lsn.0)),
            Err(e) if definite(&e) => {
                // A split transaction's sync failed midway.
                oracle.push(Event::Failed(tags.clone()));
                for (t, pl, _) in batch.drain(..) {
                    oracle.push(Event::Failed(t.clone()));
                    retry.push((t, pl, 0));
                }
                continue;
            }
            Err(_) => return Ok(()),
        }
        if rng.chance(1, 3) || seq + 1 == p.ops_per_client {
            match w.sync() {
                Ok(d) => {
                    durable = d.0;
                    for (_, pl, lsn) in batch.drain(..) {
                        oracle.push(Event::Acked { lsn, payloads: pl });
                    }
                }
                Err(e) if definite(&e) => {
                    for (t, pl, _) in batch.drain(..) {
                        oracle.push(Event::Failed(t.clone()));
                        if rng.chance(2, 3) {
                            retry.push((t, pl, 0));
                        }
                    }
                }
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// The metadata slot a crash image holds, read without writing: `META`'s value, or the
/// log's newest slot frame when its generation is higher (docs/format.md, "Slot frames").
fn slot_at_start(storage: &actix_wal::SharedStorage) -> Option<Vec<u8>> {
    let dir = std::path::Path::new(DIR);
    let file = actix_wal::files::read_meta(storage.as_ref(), dir).ok()??;
    let mut reader =
        actix_wal::LogReader::open_with(dir, storage.clone(), MAX_RECORD_BYTES).ok()?;
    for r in reader.by_ref() {
        r.ok()?;
    }
    match reader.slot_frame() {
        Some((generation, bytes)) if generation > file.slot_gen => Some(bytes.to_vec()),
        _ => file.slot,
    }
}

//! A failing crash case, saved so that it replays exactly: the crash image (every file, as
//! `sim::image` writes it), the seed's parameters, what the checks expect (the records
//! recovered before the generation, the workload's events up to the crash), the state of
//! the checks' random numbers, and the violations seen. An `actors:` seed does not replay
//! its batches (they depend on thread timing), but its saved case does: `TORTURE_IMAGE=DIR`
//! checks the saved image again, byte for byte (docs/testing.md, "Replaying a seed").

use crate::crash::{check_image, summarize};
use crate::setup::{Engine, Found, Params, Setup};
use crate::sim::check::{Expect, Rec};
use crate::sim::oracle::{Event, Kind, Tag};
use crate::sim::{Rng, SimStorage};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where failing cases are saved: `target/torture-cases/` (or under `CARGO_TARGET_DIR`).
pub(crate) fn cases_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("torture-cases")
}

/// What identifies a failing case and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) engine: Engine,
    pub(crate) seed: u64,
    pub(crate) gen: u32,
    /// The operation the crash came before, and its description.
    pub(crate) op: u64,
    pub(crate) desc: String,
    pub(crate) image_seed: u64,
}

/// A saved case, loaded.
pub(crate) struct Case {
    pub(crate) origin: Origin,
    pub(crate) params: Params,
    pub(crate) image: SimStorage,
    required: Vec<Rec>,
    events: Vec<Event>,
    check_rng: u64,
    /// The violations when it was saved (or, in a fixture, what must be seen now), as
    /// [`summarize`] puts them; empty: none.
    pub(crate) violations: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn tags_json(tags: &[Tag]) -> Value {
    tags.iter()
        .map(|t| json!([t.kind as u8, t.gen, t.client, t.seq, t.idx, t.count]))
        .collect()
}

fn tags_of(v: &Value) -> Option<Vec<Tag>> {
    v.as_array()?
        .iter()
        .map(|t| {
            let n = |i: usize| t.get(i).and_then(Value::as_u64);
            Some(Tag {
                kind: if n(0)? == 0 {
                    Kind::Append
                } else {
                    Kind::Commit
                },
                gen: n(1)? as u16,
                client: n(2)? as u16,
                seq: n(3)? as u32,
                idx: n(4)? as u16,
                count: n(5)? as u16,
            })
        })
        .collect()
}

/// Saves a failing case under [`cases_dir`]; returns its directory. `image` is the crash
/// image before recovery touched it; `check_rng` the checks' random numbers before it;
/// `ops` the generation's operations up to the crash (for reading only: not replayed).
pub(crate) fn save(
    origin: &Origin,
    p: &Params,
    image: &SimStorage,
    expect: &Expect<'_>,
    check_rng: &Rng,
    violations: &str,
    ops: &[String],
) -> std::io::Result<PathBuf> {
    let dir = cases_dir().join(format!(
        "{}-{}-gen{}-op{}-{}",
        origin.engine.name(),
        origin.seed,
        origin.gen,
        origin.op,
        origin.image_seed
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    image.save_image(&dir.join("image"))?;
    let required: Vec<Value> = expect
        .required
        .iter()
        .map(|r| {
            json!({"lsn": r.lsn, "payload": hex(&r.payload), "txn": r.txn.map(|(i, c)| [i, c]),
                   "segment": r.segment, "frame_offset": r.frame_offset})
        })
        .collect();
    let events: Vec<Value> = expect
        .events
        .iter()
        .map(|e| match e {
            Event::Submitted(t) => json!({"submitted": tags_json(t)}),
            Event::Failed(t) => json!({"failed": tags_json(t)}),
            Event::Acked { lsn, payloads } => json!({"acked": {"lsn": lsn,
                "payloads": payloads.iter().map(|p| hex(p)).collect::<Vec<_>>()}}),
            Event::Truncate(l) => json!({"truncate": l}),
            Event::Checkpointed(l) => json!({"checkpointed": l}),
            Event::CursorAt(l) => json!({"cursor_at": l}),
            Event::CursorAdvance(l) => json!({"cursor_advance": l}),
            Event::MetaSet(v) => json!({"meta_set": hex(v)}),
            Event::MetaAcked(v) => json!({"meta_acked": hex(v)}),
        })
        .collect();
    let case = json!({
        "replay": format!("TORTURE_IMAGE={} cargo test --all-features --test torture acknowledged -- --nocapture", dir.display()),
        "engine": origin.engine.name(),
        "seed": origin.seed,
        "gen": origin.gen,
        "op": origin.op,
        "desc": origin.desc,
        "image_seed": origin.image_seed,
        "params": {
            "segment_size_bytes": p.segment_size_bytes,
            "preallocate": p.preallocate,
            "clients": p.clients,
            "ops_per_client": p.ops_per_client,
            "max_body": p.max_body,
            "truncate": p.truncate,
        },
        "check_rng": check_rng.state(),
        "violations": violations,
        "required": required,
        "events": events,
        "ops": ops,
    });
    std::fs::write(
        dir.join("case.json"),
        serde_json::to_string_pretty(&case).map_err(std::io::Error::other)?,
    )?;
    Ok(dir)
}

/// Loads a case saved by [`save`] (or a fixture in its shape).
pub(crate) fn load(dir: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(dir.join("case.json"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("case.json: {e}"))?;
    let bad = |what: &str| format!("case.json: bad or missing {what}");
    let u = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).ok_or_else(|| bad(k));
    let engine = match v.get("engine").and_then(Value::as_str) {
        Some("actors") => Engine::Actors,
        Some("writer") => Engine::Writer,
        _ => return Err(bad("engine")),
    };
    let pv = v.get("params").ok_or_else(|| bad("params"))?;
    let params = Params {
        segment_size_bytes: u(pv, "segment_size_bytes")?,
        preallocate: pv
            .get("preallocate")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("preallocate"))?,
        clients: u(pv, "clients")? as u16,
        ops_per_client: u(pv, "ops_per_client")? as u32,
        max_body: u(pv, "max_body")?,
        truncate: pv
            .get("truncate")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("truncate"))?,
    };
    let required = v
        .get("required")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("required"))?
        .iter()
        .map(|r| {
            Some(Rec {
                lsn: r.get("lsn")?.as_u64()?,
                payload: unhex(r.get("payload")?.as_str()?)?,
                txn: match r.get("txn")? {
                    Value::Null => None,
                    t => Some((t.get(0)?.as_u64()? as u16, t.get(1)?.as_u64()? as u16)),
                },
                segment: r.get("segment")?.as_u64()?,
                frame_offset: r.get("frame_offset")?.as_u64()?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("required record"))?;
    let events = v
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("events"))?
        .iter()
        .map(|e| {
            if let Some(t) = e.get("submitted") {
                return Some(Event::Submitted(tags_of(t)?));
            }
            if let Some(t) = e.get("failed") {
                return Some(Event::Failed(tags_of(t)?));
            }
            if let Some(a) = e.get("acked") {
                return Some(Event::Acked {
                    lsn: a.get("lsn")?.as_u64()?,
                    payloads: a
                        .get("payloads")?
                        .as_array()?
                        .iter()
                        .map(|p| unhex(p.as_str()?))
                        .collect::<Option<_>>()?,
                });
            }
            if let Some(l) = e.get("truncate") {
                return Some(Event::Truncate(l.as_u64()?));
            }
            if let Some(l) = e.get("cursor_at") {
                return Some(Event::CursorAt(l.as_u64()?));
            }
            if let Some(l) = e.get("cursor_advance") {
                return Some(Event::CursorAdvance(l.as_u64()?));
            }
            if let Some(v) = e.get("meta_set") {
                return Some(Event::MetaSet(unhex(v.as_str()?)?));
            }
            if let Some(v) = e.get("meta_acked") {
                return Some(Event::MetaAcked(unhex(v.as_str()?)?));
            }
            Some(Event::Checkpointed(e.get("checkpointed")?.as_u64()?))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("event"))?;
    let image = SimStorage::load_image(&dir.join("image"))
        .map_err(|e| format!("{}: {e}", dir.join("image").display()))?;
    Ok(Case {
        origin: Origin {
            engine,
            seed: u(&v, "seed")?,
            gen: u(&v, "gen")? as u32,
            op: u(&v, "op")?,
            desc: v
                .get("desc")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            image_seed: u(&v, "image_seed")?,
        },
        params,
        image,
        required,
        events,
        check_rng: u(&v, "check_rng")?,
        violations: v
            .get("violations")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// Checks a loaded case's image again, as the torture run checked it (the default
/// setup of its engine); returns the violations' summary (empty: none).
pub(crate) fn replay(case: &Case) -> String {
    let setup = Setup::new(case.origin.engine);
    let expect = Expect {
        required: &case.required,
        events: &case.events,
    };
    let mut rng = Rng::from_state(case.check_rng);
    let mut found = Found::default();
    match check_image(
        &setup,
        &case.params,
        &case.image.fork(),
        &expect,
        &mut rng,
        &mut found,
    ) {
        Ok(_) => String::new(),
        Err(vs) => summarize(&vs),
    }
}

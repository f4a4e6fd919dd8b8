//! raft-engine (TiKV's log engine) as TiKV writes its Raft logs: each committer is a
//! region of its own that builds a `LogBatch` of its next entry and calls
//! `Engine::write(batch, sync = true)`. Concurrent writers form a write group
//! (write_barrier.rs): the leader appends every member's batch and syncs once.

use crate::run::{run_threads, Figures, Timing};
use protobuf::well_known_types::BytesValue;
use raft_engine::{Config, Engine, LogBatch, MessageExt};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// raft-engine's entries are protobuf messages with an index: a `BytesValue` whose first
/// 8 bytes hold the entry's index (little endian), the rest the payload.
#[derive(Clone)]
pub struct Entries;

/// Bytes at the front of each entry that hold its index.
const INDEX_BYTES: usize = 8;

impl MessageExt for Entries {
    type Entry = BytesValue;

    fn index(e: &BytesValue) -> u64 {
        let mut b = [0u8; INDEX_BYTES];
        if let Some(head) = e.value.get(..INDEX_BYTES) {
            b.copy_from_slice(head);
        }
        u64::from_le_bytes(b)
    }
}

fn engine_err(e: raft_engine::Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// `threads` committers of `payload` bytes (at least the 8 of the index) on a raft-engine
/// in `dir`, at its default settings.
pub fn run(dir: &Path, threads: usize, payload: usize, timing: Timing) -> io::Result<Figures> {
    let config = Config {
        dir: dir.display().to_string(),
        ..Config::default()
    };
    let engine = Arc::new(Engine::open(config).map_err(engine_err)?);
    let payload = payload.max(INDEX_BYTES);
    let totals = run_threads(
        threads,
        timing,
        |i| {
            let engine = engine.clone();
            let region = i as u64 + 1;
            let record = vec![0xA5u8; payload];
            let mut batch = LogBatch::default();
            let mut next_index = 1u64;
            move || {
                let mut entry = BytesValue::new();
                entry.value = record.clone();
                entry.value[..INDEX_BYTES].copy_from_slice(&next_index.to_le_bytes());
                batch
                    .add_entries::<Entries>(region, &[entry])
                    .map_err(engine_err)?;
                engine.write(&mut batch, true).map_err(engine_err)?;
                next_index += 1;
                Ok(())
            }
        },
        || {},
    )?;
    let note = format!("{threads} threads, defaults");
    Ok(totals.figures("raft-engine", note, threads, payload, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The run's commits are in the engine: reopened, its regions' entries add up to at
    /// least the commits counted (the warm-up's commits come before them).
    #[test]
    fn commits_are_in_the_engine_when_it_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let timing = Timing {
            warmup: Duration::from_millis(50),
            window: Duration::from_millis(300),
        };
        let threads = 4;
        let f = run(dir.path(), threads, 256, timing).unwrap();
        assert!(f.commits > 0, "{f:?}");
        assert_eq!(f.errors, 0);
        let engine = Engine::open(Config {
            dir: dir.path().display().to_string(),
            ..Config::default()
        })
        .unwrap();
        let entries: u64 = (1..=threads as u64)
            .map(|r| engine.last_index(r).unwrap_or(0))
            .sum();
        assert!(
            entries >= f.commits,
            "{entries} entries, {} commits",
            f.commits
        );
    }
}

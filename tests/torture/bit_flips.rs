//! Exhaustive: every bit of a small log flipped in turn, and each flip caught.

use crate::setup::{make_entries, Params, DIR, MAX_RECORD_BYTES};
use crate::sim::check::{before_last_batch, read_log, recover};
use crate::sim::oracle::Kind;
use crate::sim::{Rng, SimStorage};
use actix_wal::LogWriter;
use actix_wal::{LogOptions, RecoveryPolicy};
use std::path::Path;

/// Flips every bit of every segment of a ~3 KiB log (several segments, records and
/// transactions, several write batches), one at a time, and checks that each is caught:
/// recovery under `AbsoluteConsistency` refuses the log, the reader never returns a record
/// that differs from what was written, and under the default policy a flip before the last
/// write batch is refused too (in the last batch it reads as a torn write and is cut).
#[test]
fn every_bit_flip_of_a_small_log_is_caught() {
    let dir = Path::new(DIR);
    let sim = SimStorage::new();
    let opts = LogOptions {
        segment_size_bytes: 1024,
        max_record_bytes: MAX_RECORD_BYTES,
        preallocate: false,
        storage: sim.shared(),
        ..LogOptions::default()
    };
    let p = Params {
        segment_size_bytes: 1024,
        preallocate: false,
        clients: 1,
        ops_per_client: 0,
        max_body: 60,
        truncate: false,
    };
    let (mut w, _) = LogWriter::open(DIR, opts.clone()).unwrap();
    let mut rng = Rng::new(7);
    let mut seq = 0;
    while w.next_lsn().0 < 50 {
        for _ in 0..rng.range(1, 4) {
            let kind = if seq % 3 == 0 {
                Kind::Commit
            } else {
                Kind::Append
            };
            let (_, payloads) = make_entries(&mut rng, &p, 0, 0, seq, kind);
            if kind == Kind::Commit {
                w.append_transaction(&payloads).unwrap();
            } else {
                w.append(&payloads[0]).unwrap();
            }
            seq += 1;
        }
        w.sync().unwrap();
    }
    drop(w);
    let good = read_log(&sim.shared(), dir, MAX_RECORD_BYTES).unwrap();
    let guarded = before_last_batch(&sim, dir, &good);
    let segments: Vec<String> = sim
        .names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    assert!(segments.len() >= 3, "the log spans several segments");
    let mut bits = 0u64;
    let mut missed = Vec::new();
    for name in &segments {
        let path = dir.join(name);
        let len = sim.read_file(&path).unwrap().len() as u64;
        for byte in 0..len {
            let before_tail = guarded
                .iter()
                .any(|(n, a, b)| n == name && (*a..*b).contains(&byte));
            for bit in 0..8u8 {
                bits += 1;
                let f = sim.fork();
                f.flip_bit(&path, byte, bit);
                let st = f.shared();
                if let Ok(reader) =
                    actix_wal::LogReader::open_with(dir, st.clone(), MAX_RECORD_BYTES)
                {
                    for (i, r) in reader.enumerate() {
                        let Ok(r) = r else { break };
                        let same = good
                            .get(i)
                            .is_some_and(|g| g.lsn == r.lsn.0 && g.payload == r.payload);
                        if !same {
                            missed.push(format!(
                                "{name} byte {byte} bit {bit}: reader returned altered LSN {}",
                                r.lsn
                            ));
                            break;
                        }
                    }
                }
                let strict = LogOptions {
                    storage: st.clone(),
                    recovery_policy: RecoveryPolicy::AbsoluteConsistency,
                    ..opts.clone()
                };
                if recover(&st, dir, &strict).is_ok() {
                    missed.push(format!(
                        "{name} byte {byte} bit {bit}: AbsoluteConsistency accepted it"
                    ));
                }
                let tolerant = LogOptions {
                    storage: st.clone(),
                    ..opts.clone()
                };
                if before_tail && recover(&st, dir, &tolerant).is_ok() {
                    missed.push(format!(
                        "{name} byte {byte} bit {bit}: before the last batch, yet recovered"
                    ));
                }
            }
        }
    }
    eprintln!("bit flips: {bits} bits flipped, {} missed", missed.len());
    assert!(bits >= 8 * 2048, "a log of a few KiB: {bits} bits");
    assert!(
        missed.is_empty(),
        "{} flips missed:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

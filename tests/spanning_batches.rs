//! Batches that span two or three segments (too large to move whole into the new one),
//! cut by a power failure before every operation of theirs, through the flusher's writer
//! (spares on a helper thread: the segment left is synced beside the new one) and the
//! `LogWriter`'s (inline spares), with a spare ready and without one: every image opens
//! with everything acknowledged (issue 14 item 1, issue 20 item 4).

mod common;
mod sim;

use actix_wal::*;
use common::{sim_options, sim_writer};
use std::path::Path;

/// A batch too large to move whole spans the segment it leaves and a spare: its frames in
/// the segment left must be durable before the spare is named (else a crash leaves a
/// named segment after a torn one: a hole recovery must refuse). Power cuts before every
/// operation of such batches, with spares prepared on a helper thread (both files synced
/// at once) and inline (in turn), and with no spare ready (a preparation that failed or
/// was discarded: the segment is created the usual way, under its name at once, issue 20
/// item 4): every image opens, nothing acknowledged is lost.
#[test]
fn a_batch_spanning_two_segments_recovers_from_a_crash_at_every_step() {
    use actix_wal::internals::spare::SpareMode;
    for mode in [SpareMode::Thread, SpareMode::Inline] {
        for spare_ready in [true, false] {
            // 6 x 250 bytes: larger than 1/8 of a segment, so never moved whole.
            crash_at_every_step_of_spanning_batches(mode, spare_ready, 6, 2);
        }
    }
}

/// The same for batches larger than a segment, which span three: the middle segment
/// (built in a spare, or created) must not be named before the first one's frames are
/// durable either (issue 20, item 4).
#[test]
fn a_batch_spanning_three_segments_recovers_from_a_crash_at_every_step() {
    use actix_wal::internals::spare::SpareMode;
    for mode in [SpareMode::Thread, SpareMode::Inline] {
        for spare_ready in [true, false] {
            // 20 x 274 bytes of frames: more than a 4 KiB segment.
            crash_at_every_step_of_spanning_batches(mode, spare_ready, 20, 3);
        }
    }
}

/// Writes batches of `records` x 250 bytes through the flusher's writer (spares as `mode`
/// says; discarded before each rollover unless `spare_ready`) until three of them span
/// `segments` segments, and recovers crash images taken before every operation of those:
/// each must open with everything acknowledged before it (and, at its end, the batch).
fn crash_at_every_step_of_spanning_batches(
    mode: actix_wal::internals::spare::SpareMode,
    spare_ready: bool,
    records: u8,
    segments: usize,
) {
    use actix_wal::internals::Batch;
    let dir = Path::new("/wal");
    let sim = sim::SimStorage::new();
    let opts = sim_options;
    let (mut w, mut p) = sim_writer(dir, sim.shared(), mode);
    let (mut spanning, mut images) = (0, 0);
    let mut acked = 1;
    let what = format!("{mode:?} (spare ready: {spare_ready}, {segments} segments)");
    while spanning < 3 {
        let mut b = Batch::new(&p);
        for i in 0..records {
            b.push_record(&mut p, &[i ^ spanning as u8; 250]).unwrap();
        }
        let spans = b.chunks.len() == segments && b.chunks[1].creates_segment;
        if spans {
            if let Some(s) = w.spares.as_mut() {
                s.settle_dir().unwrap();
                if !spare_ready {
                    if let Some(spare) = s.take() {
                        s.discard(spare);
                    }
                }
            }
            sim.record(|| 0);
        }
        w.write_batch(&b).unwrap();
        if !spans {
            acked = b.end_lsn;
            continue;
        }
        spanning += 1;
        let mut points = sim.take_snapshots();
        points.push(sim.snapshot(0));
        let last = points.len() - 1;
        for (i, point) in points.iter().enumerate() {
            // Before the batch returned only what was acknowledged before it counts;
            // at the end, the batch itself.
            let need = if i == last { b.end_lsn } else { acked };
            for seed in 0..4u64 {
                let image = point.crash(sim::mix(i as u64, seed));
                match LogWriter::open(dir, opts(image.shared())) {
                    Ok((_, out)) => assert!(
                        out.next_lsn.0 >= need,
                        "{what}, spanning batch {spanning}, before {:?}, seed {seed}: \
                         acknowledged up to {}, recovered up to {}",
                        point.desc,
                        need - 1,
                        out.next_lsn.0 - 1
                    ),
                    Err(e) => panic!(
                        "{what}, spanning batch {spanning}, before {:?}, seed {seed}: \
                         recovery failed: {e}",
                        point.desc
                    ),
                }
                images += 1;
            }
        }
        acked = b.end_lsn;
    }
    assert!(images > 50, "{what}: only {images} crash images");
}

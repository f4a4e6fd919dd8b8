//! The suite's parts for issue 11's figures: `reads` (a read against a bare `pread`, the
//! range read's positional reads per segment), `readers` (durable commits at 1,024 actors
//! with 64 readers beside them, against none), `bulk` (`append_batch` against raw
//! sequential writes). Each part runs its rows in turn, `--rounds` times.

use crate::baselines::Prep;
use crate::report::Section;
use crate::{interleave, one, remove, Bench, Check, Res, Spec};
use actix_wal::QueueThread;

/// `Wal::read` calls timed per placement, and range reads.
const READS: u64 = 20_000;
const RANGES: u64 = 200;

impl Bench {
    fn reads(&mut self, placement: QueueThread) -> Res<Vec<crate::Figures>> {
        let dir = self.fresh("reads");
        self.say(&format!(
            "reads: {READS} reads, {RANGES} range reads, queue {placement:?}"
        ));
        let cfg = self.config();
        let r = self.sys.block_on(crate::reads::read_figures(
            &dir, cfg, placement, READS, RANGES,
        ));
        remove(&dir);
        r
    }

    fn bulk(&mut self, actors: usize, records: usize, bytes: usize) -> Res<crate::Figures> {
        let dir = self.fresh("bulk");
        self.say(&format!(
            "actix-wal: append_batch {records} x {bytes} B from {actors} actors"
        ));
        let (timing, cfg) = (self.timing(), self.config());
        let r = self.sys.block_on(crate::bulk::append_batches(
            &dir, actors, records, bytes, timing, cfg,
        ));
        remove(&dir);
        r
    }
}

/// Runs the parts `--only` asks for (all by default) and adds their sections and checks.
pub fn parts(b: &mut Bench, sections: &mut Vec<Section>, checks: &mut Vec<Check>) -> Res<()> {
    if b.wants("reads") {
        let s = b.measure(
            "reads of the open log: 256 B records, the 100 most recent",
            true,
            &[
                Box::new(|b: &mut Bench| b.reads(QueueThread::Own)),
                Box::new(|b: &mut Bench| b.reads(QueueThread::Caller)),
            ],
        )?;
        let in_place = s.per_round(|r| r[0].latency.p50_us / r[1].latency.p50_us);
        let pool = s.per_round(|r| r[3].latency.p50_us / r[4].latency.p50_us);
        checks.push(Check {
            figure: "read(lsn) of a recent record: p50 within 3x of a bare pread".into(),
            target: "<= 3x".into(),
            measured: format!(
                "{in_place:.2}x served in place ({:.1} us vs {:.1} us); {pool:.2}x through \
                 the reader pool, for a caller on the queue's thread ({:.1} us vs {:.1} us)",
                s.per_round(|r| r[0].latency.p50_us),
                s.per_round(|r| r[1].latency.p50_us),
                s.per_round(|r| r[3].latency.p50_us),
                s.per_round(|r| r[4].latency.p50_us),
            ),
            met: in_place <= 3.0,
        });
        let preads = s.per_round(|r| {
            let per = |f: &crate::Figures| f.mean_batch.unwrap_or(f64::NAN);
            per(&r[2]).max(per(&r[5]))
        });
        checks.push(Check {
            figure: "range read of 1,000 x 256 B: <= 2 preads per segment touched".into(),
            target: "<= 2".into(),
            measured: format!(
                "{preads:.2} preads per segment (the worse placement); p50 {:.0} us in place, \
                 {:.0} us through the pool",
                s.per_round(|r| r[2].latency.p50_us),
                s.per_round(|r| r[5].latency.p50_us),
            ),
            met: preads <= 2.0,
        });
        sections.push(s);
    }

    if b.wants("readers") {
        let with = |readers: usize, other: bool| {
            one(move |b: &mut Bench| {
                let mut spec: Spec = b.spec(1024, 256);
                spec.readers = readers;
                if other {
                    spec.config.queue_thread = interleave::other(spec.config.queue_thread);
                }
                b.wal(&spec)
            })
        };
        let s = b.measure(
            "1,024 actors, 256 B durable: no readers, then 64 readers on an arbiter of their own (each placement)",
            true,
            &[
                with(0, false),
                with(64, false),
                with(0, true),
                with(64, true),
            ],
        )?;
        let ratio = s.per_round(|r| r[1].commits_per_s / r[0].commits_per_s);
        let other = s.per_round(|r| r[3].commits_per_s / r[2].commits_per_s);
        checks.push(Check {
            figure: "durable commits at 1,024 actors with 64 readers: >= 80% of none".into(),
            target: ">= 80%".into(),
            measured: format!(
                "{:.0}% ({}/s vs {}/s); {:.0}% with the queue on the other thread",
                ratio * 100.0,
                crate::thousands(s.per_round(|r| r[1].commits_per_s)),
                crate::thousands(s.per_round(|r| r[0].commits_per_s)),
                other * 100.0
            ),
            met: ratio >= 0.8,
        });
        sections.push(s);
    }

    if b.wants("bulk") {
        let s = b.measure(
            "append_batch: 16 actors, 1,000 x 256 B a message, durable",
            true,
            &[
                one(|b| b.bulk(16, 1000, 256)),
                one(|b| b.raw(1 << 20, Prep::Fallocate)),
                one(|b| b.raw(4 << 20, Prep::Fallocate)),
            ],
        )?;
        let ceiling = |r: &[crate::Figures]| r[1].mb_per_s.max(r[2].mb_per_s);
        let ratio = s.per_round(|r| r[0].mb_per_s / ceiling(r));
        let disk = s.per_round(|r| r[0].disk_mb_per_s / ceiling(r));
        checks.push(Check {
            figure: "append_batch of 256 B records: >= 80% of raw sequential bandwidth".into(),
            target: ">= 80%".into(),
            measured: format!(
                "{:.0}% in payload ({:.0} MB/s vs {:.0} MB/s, the better raw chunk size), \
                 {:.0}% in bytes written (frames with headers); queue thread {:.0}% of a core",
                ratio * 100.0,
                s.per_round(|r| r[0].mb_per_s),
                s.per_round(ceiling),
                disk * 100.0,
                s.per_round(|r| r[0].queue_thread_cpu.unwrap_or(f64::NAN)) * 100.0,
            ),
            met: ratio >= 0.8,
        });
        sections.push(s);
    }
    Ok(())
}

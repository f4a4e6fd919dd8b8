//! walbench `--only compression` (issue 22, item 4): LZ4 against plain frames on records of
//! realistic compressible content (JSON-like, 1 to 4 KiB), in the same run: payload MB/s
//! committed by 256 actors, the process CPU it costs per MB, and recovery's scan of a log
//! of such records (and a `LogReader` pass over it, which decompresses), both ways.

use super::baselines::Prep;
use super::report::{Figures, Section};
use super::{one, remove, sys, Bench, Check, Res};
use actix_wal::format::compress::lz4_stored;
use actix_wal::{Compression, LogReader, Wal, WalConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Records in the pool the actors send in turn.
const POOL_RECORDS: usize = 4096;

/// `n` JSON-like records of 1 to 4 KiB, as an application's events look: the same keys in
/// every record, values that vary (ids, timestamps, hex tokens, names, numbers).
pub fn json_records(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const NAMES: [&str; 8] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    const KINDS: [&str; 5] = ["order", "payment", "refund", "login", "search"];
    (0..n)
        .map(|i| {
            let len = 1024 + (next() % 3073) as usize;
            let mut s = format!(
                "{{\"event_id\":\"{:016x}\",\"seq\":{i},\"ts\":\"2026-12-06T22:{:02}:{:02}.{:03}Z\",\"items\":[",
                next(),
                next() % 60,
                next() % 60,
                next() % 1000
            );
            while s.len() < len {
                let r = next();
                s.push_str(&format!(
                    "{{\"kind\":\"{}\",\"user\":\"{}\",\"user_id\":{},\"amount\":{}.{:02},\
                     \"currency\":\"EUR\",\"token\":\"{:08x}\",\"ok\":{}}},",
                    KINDS[(r % 5) as usize],
                    NAMES[(r >> 8) as usize % 8],
                    (r >> 16) % 100_000,
                    (r >> 32) % 10_000,
                    (r >> 48) % 100,
                    (r >> 20) as u32,
                    r % 3 != 0
                ));
            }
            s.truncate(len);
            s.into_bytes()
        })
        .collect()
}

/// Stored bytes over raw bytes of `records` compressed one by one (as the log does).
fn ratio_of(records: &[Vec<u8>]) -> f64 {
    let raw: usize = records.iter().map(Vec::len).sum();
    let stored: usize = records
        .iter()
        .map(|r| lz4_stored(r).map_or(r.len(), |s| s.len()))
        .sum();
    stored as f64 / raw as f64
}

/// CPU-seconds of the whole process per MB of payload committed.
fn cpu_s_per_mb(f: &Figures) -> f64 {
    f.process_cpu.unwrap_or(f64::NAN) / f.mb_per_s
}

/// The compression part of the suite: its section and checks.
pub(super) fn part(b: &mut Bench, sections: &mut Vec<Section>, checks: &mut Vec<Check>) -> Res<()> {
    let pool = Arc::new(json_records(POOL_RECORDS, 22));
    let mean = pool.iter().map(Vec::len).sum::<usize>() / pool.len();
    let stored = ratio_of(&pool);
    b.say(&format!(
        "compression: {POOL_RECORDS} JSON-like records of 1-4 KiB (mean {mean} B), LZ4 stores {:.0}% of their bytes",
        stored * 100.0
    ));
    let runner = |compression: Compression, via_wal: bool, pool: Arc<Vec<Vec<u8>>>| {
        one(move |b: &mut Bench| {
            let mut spec = b.spec(256, mean);
            spec.payloads = Some(pool.clone());
            spec.config.compression = compression;
            spec.via_wal = via_wal;
            let mut f = b.wal(&spec)?;
            f.note = format!(
                "{}, JSON 1-4 KiB{}",
                match (compression.is_on(), via_wal) {
                    (false, _) => "plain",
                    (true, true) => "LZ4 by callers",
                    (true, false) => "LZ4 by the queue",
                },
                if f.note.is_empty() {
                    String::new()
                } else {
                    format!(", {}", f.note)
                }
            );
            Ok(f)
        })
    };
    // The disk's own answer to "do fewer bytes per batch make more batches per second":
    // one write + fdatasync of a plain batch's bytes (256 frames of the mean record), and
    // of a compressed batch's, in the same rounds. Their ratio is the most compression can
    // give where every actor waits for its batch's fdatasync.
    let frame = actix_wal::format::FRAME_HEADER_BYTES;
    let plain_batch = 256 * (mean + frame);
    let lz4_batch = 256 * ((mean as f64 * stored) as usize + frame);
    let s = b.measure(
        "256 actors, JSON-like records of 1-4 KiB durable: LZ4 compressed by the callers \
         (Wal::append; first) against plain frames, raw write + fdatasync of a plain and a \
         compressed batch's bytes, and LZ4 compressed by the queue (Append messages)",
        true,
        &[
            runner(Compression::lz4(), true, pool.clone()),
            runner(Compression::None, false, pool.clone()),
            one(move |b| b.raw(plain_batch, Prep::Fallocate)),
            one(move |b| b.raw(lz4_batch, Prep::Fallocate)),
            runner(Compression::lz4(), false, pool.clone()),
        ],
    )?;
    let by_queue = s.per_round(|r| r[4].mb_per_s / r[1].mb_per_s);
    let ceiling = s.per_round(|r| r[3].commits_per_s / r[2].commits_per_s);
    let mb = s.per_round(|r| r[0].mb_per_s / r[1].mb_per_s);
    let disk = s.per_round(|r| r[0].disk_mb_per_s / r[1].disk_mb_per_s);
    let (cpu_lz4, cpu_plain) = (
        s.per_round(|r| cpu_s_per_mb(&r[0])),
        s.per_round(|r| cpu_s_per_mb(&r[1])),
    );
    let cpu_by_queue = s.per_round(|r| cpu_s_per_mb(&r[4]));
    let queue_by_queue = s.per_round(|r| r[4].queue_thread_cpu.unwrap_or(f64::NAN));
    let (queue_lz4, queue_plain) = (
        s.per_round(|r| r[0].queue_thread_cpu.unwrap_or(f64::NAN)),
        s.per_round(|r| r[1].queue_thread_cpu.unwrap_or(f64::NAN)),
    );
    checks.push(Check {
        figure: "compression: payload MB/s committed at 256 actors, LZ4 (compressed by the \
                 callers) over plain (JSON 1-4 KiB)"
            .into(),
        target: ">= 1.5x".into(),
        measured: format!(
            "{mb:.2}x ({:.0} vs {:.0} MB/s of payload; disk bytes/s {disk:.2}x; LZ4 stores {:.0}% \
             of the bytes); process CPU {:.2} vs {:.2} ms per MB ({:.2}x); queue thread {:.0}% vs \
             {:.0}% of a core; the disk: a raw write + fdatasync of a compressed batch's bytes \
             ({lz4_batch} B) runs {ceiling:.2}x as often as of a plain batch's ({plain_batch} B); \
             compressed by the queue instead: {by_queue:.2}x plain, {:.2} ms CPU per MB, queue \
             thread {:.0}%",
            s.per_round(|r| r[0].mb_per_s),
            s.per_round(|r| r[1].mb_per_s),
            stored * 100.0,
            cpu_lz4 * 1e3,
            cpu_plain * 1e3,
            cpu_lz4 / cpu_plain,
            queue_lz4 * 100.0,
            queue_plain * 100.0,
            cpu_by_queue * 1e3,
            queue_by_queue * 100.0
        ),
        met: mb >= 1.5,
    });
    sections.push(s);

    // Recovery's scan of a log of such records, both ways, and a LogReader pass over it.
    let mib = b.opts.recovery_mib.min(512);
    let mut figures = Vec::new();
    for compression in [Compression::lz4(), Compression::None] {
        let dir = b.fresh("compression-recovery");
        b.say(&format!(
            "compression: building a log of {mib} MiB of payload ({})",
            if compression.is_on() { "LZ4" } else { "plain" }
        ));
        let cfg = WalConfig {
            compression,
            ..b.config()
        };
        let r = b
            .sys
            .block_on(scan_figures(&dir, cfg, pool.clone(), mib << 20));
        remove(&dir);
        figures.push(r?);
    }
    let [lz4, plain] = [&figures[0], &figures[1]];
    let ratio = |f: fn(&ScanFigures) -> f64| f(lz4) / f(plain);
    checks.push(Check {
        figure: format!("compression: recovery scan of {mib} MiB of JSON payload, LZ4 over plain"),
        target: ">= 1.0x payload MB/s (fewer bytes to read and check)".into(),
        measured: format!(
            "open cold {:.2}x ({:.0} vs {:.0} MB/s of payload), warm {:.2}x ({:.0} vs {:.0}); \
             LogReader (decompresses) warm {:.2}x ({:.0} vs {:.0}); files {:.0} vs {:.0} MB",
            ratio(|f| f.open_cold_mb_s()),
            lz4.open_cold_mb_s(),
            plain.open_cold_mb_s(),
            ratio(|f| f.open_warm_mb_s()),
            lz4.open_warm_mb_s(),
            plain.open_warm_mb_s(),
            ratio(|f| f.reader_mb_s()),
            lz4.reader_mb_s(),
            plain.reader_mb_s(),
            lz4.file_bytes as f64 / 1e6,
            plain.file_bytes as f64 / 1e6
        ),
        met: lz4.open_cold_mb_s() >= plain.open_cold_mb_s(),
    });
    Ok(())
}

/// Opening and reading a log of JSON-like records.
#[derive(Debug, Clone)]
struct ScanFigures {
    payload_bytes: u64,
    file_bytes: u64,
    open_warm_s: f64,
    open_cold_s: f64,
    reader_warm_s: f64,
}

impl ScanFigures {
    fn mb_s(&self, s: f64) -> f64 {
        self.payload_bytes as f64 / s / 1e6
    }
    fn open_cold_mb_s(&self) -> f64 {
        self.mb_s(self.open_cold_s)
    }
    fn open_warm_mb_s(&self) -> f64 {
        self.mb_s(self.open_warm_s)
    }
    fn reader_mb_s(&self) -> f64 {
        self.mb_s(self.reader_warm_s)
    }
}

/// Writes `bytes` of payload from `pool` (batches of 256 records), then times `Wal::open`
/// warm and cold and a `LogReader` pass.
async fn scan_figures(
    dir: &Path,
    cfg: WalConfig,
    pool: Arc<Vec<Vec<u8>>>,
    bytes: u64,
) -> Res<ScanFigures> {
    let wal = Wal::open(dir, cfg.clone())
        .await
        .map_err(|e| format!("open: {e}"))?;
    let mut payload_bytes = 0u64;
    let mut turn = 0usize;
    while payload_bytes < bytes {
        let batch: Vec<Vec<u8>> = (0..256)
            .map(|k| pool[(turn + k) % pool.len()].clone())
            .collect();
        turn += 256;
        payload_bytes += batch.iter().map(|r| r.len() as u64).sum::<u64>();
        wal.append_batch(batch)
            .await
            .map_err(|e| format!("append: {e}"))?;
    }
    wal.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    let file_bytes: u64 = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    let open = |cold: bool| {
        let cfg = cfg.clone();
        async move {
            if cold {
                for e in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
                    sys::evict(&e.path()).map_err(|e| e.to_string())?;
                }
            }
            let t = Instant::now();
            let wal = Wal::open(dir, cfg)
                .await
                .map_err(|e| format!("open: {e}"))?;
            let took = t.elapsed().as_secs_f64();
            wal.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
            Res::Ok(took)
        }
    };
    let open_warm_s = open(false).await?;
    let open_cold_s = open(true).await?;
    let t = Instant::now();
    let reader = LogReader::open(dir).map_err(|e| e.to_string())?;
    let mut read = 0u64;
    for r in reader {
        read += r.map_err(|e| e.to_string())?.payload.len() as u64;
    }
    let reader_warm_s = t.elapsed().as_secs_f64();
    if read != payload_bytes {
        return Err(format!("LogReader read {read} bytes of {payload_bytes}"));
    }
    Ok(ScanFigures {
        payload_bytes,
        file_bytes,
        open_warm_s,
        open_cold_s,
        reader_warm_s,
    })
}

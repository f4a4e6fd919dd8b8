//! `set_meta` beside a durable append (issue 23, item 4), in turns in one run: one caller,
//! one call at a time, `rounds` rounds of `calls` durable appends of 256 B and `calls`
//! `set_meta`s of 64 B taken alternately, each call's latency; the figure is the median
//! over rounds of the same-round ratio of p50s.

use actix_wal::{Wal, WalConfig};
use std::path::Path;
use std::time::Instant;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct MetaFigures {
    /// p50 of a durable append, per round, microseconds.
    pub append_p50_us: Vec<f64>,
    /// p50 of a `set_meta`, per round, microseconds.
    pub set_meta_p50_us: Vec<f64>,
}

impl MetaFigures {
    /// Median over rounds of `set_meta` p50 over the durable append's p50.
    pub fn ratio(&self) -> f64 {
        let mut r: Vec<f64> = self
            .set_meta_p50_us
            .iter()
            .zip(&self.append_p50_us)
            .map(|(m, a)| m / a)
            .collect();
        r.sort_by(|a, b| a.total_cmp(b));
        r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Every figure: `rounds` rounds of `calls` appends then `calls` `set_meta`s.
pub async fn measure(
    dir: &Path,
    cfg: WalConfig,
    calls: usize,
    rounds: usize,
) -> Result<MetaFigures, String> {
    let wal = Wal::open(dir, cfg).await.map_err(|e| e.to_string())?;
    let (mut appends, mut metas) = (Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        // Call by call in turns, so that both see the disk's same moments.
        let (mut a, mut m) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for i in 0..calls {
            let t = Instant::now();
            wal.append(vec![0x5Au8; 256])
                .await
                .map_err(|e| e.to_string())?;
            a.push(t.elapsed().as_secs_f64() * 1e6);
            let slot = format!("round {round} call {i:<40}").into_bytes();
            let t = Instant::now();
            wal.set_meta(slot).await.map_err(|e| e.to_string())?;
            m.push(t.elapsed().as_secs_f64() * 1e6);
        }
        appends.push(p50(a));
        metas.push(p50(m));
    }
    wal.shutdown().await.map_err(|e| e.to_string())?;
    Ok(MetaFigures {
        append_p50_us: appends,
        set_meta_p50_us: metas,
    })
}

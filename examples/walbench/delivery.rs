//! Live delivery (issue 22's figure): how long after an append a subscriber has its
//! record, beside how long after the same append its caller has the durable reply.
//!
//! One paced committer appends one record at a time; `subs` subscribers follow the log,
//! on the committer's thread (where the queue runs too) or on an arbiter of their own.
//! Each time is taken on one clock (`Instant`), so the receipt is also given *relative to
//! the reply*, signed: negative when the subscriber had the record before the committer
//! had its reply (the queue publishes the durable end before it answers the waiters).

use actix_wal::{Lsn, Wal};
use futures::StreamExt;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Microseconds: p50 and p99.
pub type P50P99 = (f64, f64);

/// One delivery configuration's figures, every delivery of every subscriber counted.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Delivery {
    /// Subscribers following.
    pub subscribers: usize,
    /// They ran on an arbiter of their own (else on the committer's thread).
    pub own_arbiter: bool,
    /// From the append's call to its durable reply (the committer's latency).
    pub reply_us: P50P99,
    /// From the append's call to a subscriber's receipt of the record.
    pub receipt_us: P50P99,
    /// A receipt's time minus the durable reply's, signed (negative: the record came
    /// first).
    pub receipt_after_reply_us: P50P99,
}

/// p50 and p99 of `v`.
fn p50_p99(mut v: Vec<f64>) -> P50P99 {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v.get(((v.len() as f64 - 1.0) * q) as usize).copied();
    (at(0.5).unwrap_or(f64::NAN), at(0.99).unwrap_or(f64::NAN))
}

/// Microseconds from `base` to `t`, signed.
fn us_since(base: Instant, t: Instant) -> f64 {
    match t.checked_duration_since(base) {
        Some(d) => d.as_secs_f64() * 1e6,
        None => -(base.duration_since(t).as_secs_f64() * 1e6),
    }
}

/// Runs `task` on `own`, an arbiter, or on the calling thread's.
pub fn spawn_on(
    own: Option<&actix_rt::Arbiter>,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) {
    match own {
        Some(arbiter) => {
            arbiter.spawn(task);
        }
        None => {
            actix_rt::spawn(task);
        }
    }
}

/// Each subscriber's receipts: (record's number from the first, when).
type Receipts = Vec<(u64, Instant)>;

/// `records` appends of 256 B, 200 us apart, with `subs` subscribers following from the
/// log's end (on `own`, an arbiter, if given). Fails unless every subscriber received
/// every record.
pub async fn measure(
    wal: &Wal,
    subs: usize,
    own: Option<&actix_rt::Arbiter>,
    records: u64,
) -> Result<Delivery, String> {
    let from = Lsn(wal.stats().await.map_err(|e| e.to_string())?.next_lsn.0);
    let followers: Vec<_> = (0..subs)
        .map(|_| {
            let mut sub = wal.subscribe(from);
            let (tx, rx) = tokio::sync::oneshot::channel::<Receipts>();
            let task = async move {
                let mut got = Vec::with_capacity(records as usize);
                for _ in 0..records {
                    match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
                        Ok(Some(Ok(r))) => got.push((r.lsn.0 - from.0, Instant::now())),
                        _ => break,
                    }
                }
                let _ = tx.send(got);
            };
            spawn_on(own, task);
            rx
        })
        .collect();
    // (sent, replied) per record, in order.
    let mut times: Vec<(Instant, Instant)> = Vec::with_capacity(records as usize);
    for _ in 0..records {
        let sent = Instant::now();
        wal.append(vec![7u8; 256])
            .await
            .map_err(|e| e.to_string())?;
        times.push((sent, Instant::now()));
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let reply: Vec<f64> = times.iter().map(|&(s, r)| us_since(s, r)).collect();
    let (mut receipt, mut after_reply) = (Vec::new(), Vec::new());
    for f in followers {
        let got = f.await.map_err(|e| e.to_string())?;
        if got.len() as u64 != records {
            return Err(format!(
                "a subscriber received {} of {records} records",
                got.len()
            ));
        }
        for (i, at) in got {
            let Some(&(sent, replied)) = times.get(i as usize) else {
                return Err(format!("a subscriber received record {i} of {records}"));
            };
            receipt.push(us_since(sent, at));
            after_reply.push(us_since(replied, at));
        }
    }
    Ok(Delivery {
        subscribers: subs,
        own_arbiter: own.is_some(),
        reply_us: p50_p99(reply),
        receipt_us: p50_p99(receipt),
        receipt_after_reply_us: p50_p99(after_reply),
    })
}

/// One line of `d` for the suite's report.
pub fn describe(d: &Delivery) -> String {
    format!(
        "{} subscriber{} on {}: receipt {:.0}/{:.0} us after the append (its durable reply {:.0}/{:.0} us), {:+.0}/{:+.0} us after the reply",
        d.subscribers,
        if d.subscribers == 1 { "" } else { "s" },
        if d.own_arbiter {
            "an arbiter of their own"
        } else {
            "the committer's thread"
        },
        d.receipt_us.0,
        d.receipt_us.1,
        d.reply_us.0,
        d.reply_us.1,
        d.receipt_after_reply_us.0,
        d.receipt_after_reply_us.1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_microseconds_both_ways() {
        let base = Instant::now();
        let later = base + Duration::from_micros(250);
        assert_eq!(us_since(base, later).round(), 250.0);
        assert_eq!(us_since(later, base).round(), -250.0);
    }

    #[test]
    fn p50_and_p99_of_a_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p50_p99(v), (50.0, 99.0));
    }
}

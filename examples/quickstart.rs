//! Quickstart: open a log in a temporary directory, append and commit through the actors
//! (durable replies after fsync, many appends sharing one fsync), shut down, reopen with a
//! replay recipient that rebuilds state, and read the log back with `LogReader`.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use actix::prelude::*;
use actix_wal::{Append, Durability, LogReader, Replayed, Wal, WalConfig};

/// An application actor that rebuilds its state from the replayed log.
#[derive(Default)]
struct State {
    records: usize,
}

impl Actor for State {
    type Context = Context<Self>;
}

impl Handler<Replayed> for State {
    type Result = ();

    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        self.records += msg.records.len();
        println!(
            "  replayed a chunk of {} records (LSN {} ..)",
            msg.records.len(),
            msg.records[0].lsn
        );
    }
}

#[derive(Message)]
#[rtype(result = "usize")]
struct Count;

impl Handler<Count> for State {
    type Result = usize;

    fn handle(&mut self, _: Count, _: &mut Self::Context) -> usize {
        self.records
    }
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    println!("log directory: {}", dir.display());

    let wal = Wal::open(&dir, WalConfig::default()).await?;
    println!(
        "opened a new log; the next LSN is {}",
        wal.recovery_report().next_lsn
    );

    // One durable append: the reply comes after its bytes are fsynced.
    let lsn = wal.append(b"hello".to_vec()).await?;
    println!("appended \"hello\" durably as LSN {lsn}");

    // A transaction is one frame: after a crash, all of its entries are there or none.
    let first = wal
        .commit(vec![b"debit alice 10".to_vec(), b"credit bob 10".to_vec()])
        .await?;
    println!(
        "committed a 2-entry transaction at LSNs {first}..={}",
        first + 1
    );

    // 1,000 concurrent durable appends share a handful of fsyncs (group commit).
    let before = wal.stats().await?.flushes;
    let appends = (0..1000u32).map(|i| wal.append(format!("record {i}").into_bytes()));
    let lsns = futures::future::try_join_all(appends).await?;
    let stats = wal.stats().await?;
    println!(
        "1000 concurrent durable appends (LSNs {}..={}) took {} fsyncs",
        lsns.iter().min().map_or(0, |l| l.0),
        lsns.iter().max().map_or(0, |l| l.0),
        stats.flushes - before
    );

    // A buffered append is answered at once and fsynced within flush_interval_ms.
    let b = wal
        .send(Append::new(b"hint".to_vec()).durability(Durability::Buffered))
        .await?;
    println!(
        "buffered append answered at once as LSN {b}; flush makes it durable: {}",
        wal.flush().await?
    );

    wal.shutdown().await?;
    println!("shut down: every waiter answered, the flusher thread joined");

    // Reopen: recovery checks every frame and replays the records to the application.
    let state = State::default().start();
    let cfg = WalConfig {
        replay_to: Some(state.clone().recipient()),
        ..WalConfig::default()
    };
    let wal = Wal::open(&dir, cfg).await?;
    let report = wal.recovery_report();
    println!(
        "reopened: {} records found, {} replayed, {} bytes of torn tail cut, next LSN {}",
        report.records, report.replayed, report.bytes_cut, report.next_lsn
    );
    println!(
        "the application rebuilt {} records of state",
        state.send(Count).await?
    );
    wal.shutdown().await?;

    // The log can also be read directly, without actors.
    let records: Vec<_> = LogReader::open(&dir)?.collect::<Result<_, _>>()?;
    println!(
        "read back {} records; the first is {:?}",
        records.len(),
        String::from_utf8_lossy(&records[0].payload)
    );
    Ok(())
}

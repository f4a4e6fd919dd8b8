//! The raw handoff through actix (issue 23, item 3): a raw write + fdatasync done by an
//! actor on an arbiter of its own, the committer on the System arbiter awaiting its reply
//! (`Addr::send`). The same two thread switches per commit as the std-channel handoff
//! (`interleave.rs`'s `Handoff`), but each one through the wake path every actix design
//! pays: the actor's mailbox, tokio's oneshot, and a current-thread runtime parked in
//! `epoll_wait` and woken through its eventfd. No log format, no batch, no timer: what
//! actix-wal spends over this row is its own; what this row spends over the std handoff is
//! actix's and tokio's.

use crate::baselines::{Prep, RawLog};
use actix::prelude::*;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// The actor that writes and fsyncs, on its own arbiter.
struct RawIo {
    log: RawLog,
    buf: Vec<u8>,
}

impl Actor for RawIo {
    type Context = Context<Self>;
}

/// One write of `RawIo::buf` and an fdatasync.
struct WriteSync;

impl Message for WriteSync {
    type Result = io::Result<()>;
}

impl Handler<WriteSync> for RawIo {
    type Result = io::Result<()>;

    fn handle(&mut self, _: WriteSync, _: &mut Context<Self>) -> io::Result<()> {
        self.log.write(&self.buf).and_then(|()| self.log.sync())
    }
}

/// The actor and its arbiter; the arbiter stops when this is dropped.
pub struct ActixHandoff {
    addr: Addr<RawIo>,
    arbiter: Arbiter,
}

impl ActixHandoff {
    /// An I/O actor writing `write_bytes` per commit to a raw log in `dir`.
    pub fn new(dir: &Path, write_bytes: usize, file_bytes: u64) -> io::Result<ActixHandoff> {
        let log = RawLog::new(dir, file_bytes, Prep::Fallocate)?;
        let arbiter = Arbiter::new();
        let buf = vec![0xA5u8; write_bytes];
        let addr = RawIo::start_in_arbiter(&arbiter.handle(), move |_| RawIo { log, buf });
        Ok(ActixHandoff { addr, arbiter })
    }

    /// One slice of commits: commits, seconds, each commit's latency in nanoseconds.
    pub async fn slice(&self, slice: Duration) -> io::Result<(u64, f64, Vec<u64>)> {
        let mut lat = Vec::new();
        let begin = Instant::now();
        while begin.elapsed() < slice {
            let t = Instant::now();
            self.addr
                .send(WriteSync)
                .await
                .map_err(io::Error::other)??;
            lat.push(t.elapsed().as_nanos() as u64);
        }
        Ok((lat.len() as u64, begin.elapsed().as_secs_f64(), lat))
    }
}

impl Drop for ActixHandoff {
    fn drop(&mut self) {
        self.arbiter.stop();
    }
}

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

/// The least an actor pipeline of actix-wal's shape does per commit: a relay actor on the
/// committer's arbiter (where actix-wal's queue runs) takes the commit and forwards it to
/// the I/O actor; the reply goes back through the relay. No log, no batch, no timer.
struct Relay {
    io: Addr<RawIo>,
}

impl Actor for Relay {
    type Context = Context<Self>;
}

impl Handler<WriteSync> for Relay {
    type Result = ResponseActFuture<Self, io::Result<()>>;

    fn handle(&mut self, msg: WriteSync, _: &mut Context<Self>) -> Self::Result {
        let sent = self.io.send(msg);
        Box::pin(fut::wrap_future::<_, Self>(sent).map(|r, _, _| r.map_err(io::Error::other)?))
    }
}

/// The actors and the I/O actor's arbiter; the arbiter stops when this is dropped.
pub struct ActixHandoff {
    addr: Addr<RawIo>,
    /// The relay on the caller's arbiter, in front of `addr`.
    relay: Addr<Relay>,
    arbiter: Arbiter,
}

impl ActixHandoff {
    /// An I/O actor writing `write_bytes` per commit to a raw log in `dir`, and its relay.
    pub fn new(dir: &Path, write_bytes: usize, file_bytes: u64) -> io::Result<ActixHandoff> {
        let log = RawLog::new(dir, file_bytes, Prep::Fallocate)?;
        let arbiter = Arbiter::new();
        let buf = vec![0xA5u8; write_bytes];
        let addr = RawIo::start_in_arbiter(&arbiter.handle(), move |_| RawIo { log, buf });
        let relay = Relay { io: addr.clone() }.start();
        Ok(ActixHandoff {
            addr,
            relay,
            arbiter,
        })
    }

    /// One slice of commits sent straight to the I/O actor (`relayed`: through the relay):
    /// commits, seconds, each commit's latency in nanoseconds.
    pub async fn slice(&self, slice: Duration, relayed: bool) -> io::Result<(u64, f64, Vec<u64>)> {
        let mut lat = Vec::new();
        let begin = Instant::now();
        while begin.elapsed() < slice {
            let t = Instant::now();
            if relayed {
                self.relay
                    .send(WriteSync)
                    .await
                    .map_err(io::Error::other)??;
            } else {
                self.addr
                    .send(WriteSync)
                    .await
                    .map_err(io::Error::other)??;
            }
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

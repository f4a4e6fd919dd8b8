//! `SetMeta`: the application's metadata slot. A value goes into the gathering batch as a
//! slot frame (`format/slot_frame.rs`) and is answered once that batch is durable, at the
//! cost of a share of its `fdatasync`; the first value of a log (its `META` turns version
//! 3, which older builds refuse) and a value that does not fit where the log stands go
//! through a `META` replace instead. Either way a value is durable before it is answered,
//! and `Wal::meta()` shows it from then on.

use super::Queue;
use crate::error::WalError;
use crate::log::Batch;
use crate::lsn::Lsn;
use crate::messages::SetMeta;
use actix::prelude::*;
use futures::channel::oneshot;

/// A `set_meta` caller waiting for its slot frame to be durable.
pub(super) struct SlotWaiter {
    /// The generation of its value.
    pub(super) generation: u64,
    pub(super) tx: oneshot::Sender<Result<(), WalError>>,
}

impl Queue {
    /// Takes a slot value: `Ok(Some(rx))` when it went into the log as a frame (answered
    /// on `rx` once durable), `Ok(None)` when a `META` replace made it durable already.
    fn set_meta(
        &mut self,
        bytes: Vec<u8>,
        ctx: &mut Context<Self>,
    ) -> Result<Option<oneshot::Receiver<Result<(), WalError>>>, WalError> {
        let meta = self.writable_dir()?.meta().clone();
        let size_bytes = bytes.len() as u64;
        if size_bytes > self.cfg.max_meta_bytes {
            return Err(WalError::MetaTooLarge {
                size_bytes,
                max_bytes: self.cfg.max_meta_bytes,
            });
        }
        // One more on every value attempted, failed ones included: no two values that may
        // reach the disk share a generation.
        let generation = self.next_slot_gen;
        self.next_slot_gen += 1;
        let frame_bytes = crate::format::slot_frame::slot_frame_bytes(bytes.len());
        let as_frame = meta.file_takes_slot_frames()
            && Batch::slot_fits(&self.planner, bytes.len())
            && self.has_room(frame_bytes, 0);
        let span = tracing::debug_span!("set_meta", size_bytes, generation, as_frame);
        let _enter = span.enter();
        if !as_frame {
            meta.update(|m| {
                m.slot = Some(bytes);
                m.slot_gen = generation;
            })?;
            return Ok(None);
        }
        self.encode(frame_bytes, true, |b, planner| {
            b.push_slot(planner, generation, &bytes)
                .map(|()| Lsn(planner.next_lsn))
        })?;
        self.queued_bytes += frame_bytes;
        let (tx, rx) = oneshot::channel();
        self.slot_waiters.push_back(SlotWaiter { generation, tx });
        self.kick(ctx);
        Ok(Some(rx))
    }

    /// A written batch's slot frames are durable: the newest is the slot's value from now
    /// on (published before anyone is answered), and their callers are answered.
    pub(super) fn slots_written(&mut self, batch: &Batch) {
        let Some((generation, bytes)) = batch.newest_slot() else {
            return;
        };
        if let Some(dir) = &self.dir {
            dir.meta().slot_frame_durable(generation, bytes);
        }
        while self
            .slot_waiters
            .front()
            .is_some_and(|w| w.generation <= generation)
        {
            if let Some(w) = self.slot_waiters.pop_front() {
                let _ = w.tx.send(Ok(()));
            }
        }
    }

    /// Every slot value not yet durable fails with `error`: its batch failed (and every
    /// batch after it was dropped), or the log stopped.
    pub(super) fn fail_slots(&mut self, error: &WalError) {
        for w in self.slot_waiters.drain(..) {
            let _ = w.tx.send(Err(error.clone()));
        }
    }
}

/// On the queue's thread. A slot frame holds no append back; a `META` replace (the first
/// value, or one that does not fit) is two fsyncs on this thread, as a checkpoint's is,
/// and must not run after `Shutdown` released the directory (the lock goes with it).
impl Handler<SetMeta> for Queue {
    type Result = ResponseFuture<Result<(), WalError>>;

    fn handle(&mut self, msg: SetMeta, ctx: &mut Self::Context) -> Self::Result {
        match self.set_meta(msg.0, ctx) {
            Ok(Some(rx)) => Box::pin(async move { rx.await.unwrap_or(Err(WalError::ShutDown)) }),
            Ok(None) => Box::pin(async { Ok(()) }),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

//! The queue's own thread ([`QueueThread::Own`], opt-in): the `Queue` actor on an arbiter
//! of the log's own, so that an application actor that holds up the thread `Wal::open` ran on (a
//! rehash of a big map, a slow handler) does not hold up every commit.
//!
//! The arbiter lives as long as the queue. The [`QueueKeeper`] actor, on the caller's
//! arbiter, owns it and stands between the queue and the supervisor: the queue's
//! `stopped` (the log was shut down and every `Addr<Queue>` is gone, or the queue was
//! dropped) sends `StopFlusher`, which the keeper forwards to the supervisor before it
//! stops the arbiter and joins its thread. [`Wal::shutdown`](crate::Wal::shutdown) sends
//! [`JoinQueueThread`] once the queue has flushed, so the thread is gone when it returns.
//! The queue holds the keeper's recipient, so the keeper lives as long as the queue does.
//!
//! [`QueueThread::Own`]: crate::config::QueueThread::Own

use crate::actors::queue::{Queue, QueueSetup};
use crate::actors::supervisor::{StopFlusher, Supervisor};
use actix::prelude::*;

/// Owns the queue's arbiter; stops it and joins its thread when the queue is done.
pub(crate) struct QueueKeeper {
    /// Told to stop the flusher when the queue stops, as the queue would tell it itself.
    supervisor: Addr<Supervisor>,
    /// The queue's arbiter; `None` once stopped.
    arbiter: Option<Arbiter>,
}

impl std::fmt::Debug for QueueKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueKeeper")
            .field("running", &self.arbiter.is_some())
            .finish_non_exhaustive()
    }
}

impl Actor for QueueKeeper {
    type Context = Context<Self>;
}

/// Starts the queue of `setup` on a fresh arbiter. The queue's `stop_supervisor` is
/// pointed at the keeper, which forwards it to `supervisor`. Returns the queue and the
/// keeper (started on the caller's arbiter).
pub(crate) fn start(
    mut setup: QueueSetup,
    supervisor: Addr<Supervisor>,
) -> (Addr<Queue>, Addr<QueueKeeper>) {
    let arbiter = Arbiter::new();
    let handle = arbiter.handle();
    let keeper = QueueKeeper {
        supervisor,
        arbiter: Some(arbiter),
    }
    .start();
    setup.stop_supervisor = keeper.clone().recipient();
    let queue = Queue::start_in_arbiter(&handle, move |_| Queue::new(setup));
    (queue, keeper)
}

impl QueueKeeper {
    /// Stops the arbiter (the queue on it, if still running, stops with it) and joins its
    /// thread on a blocking thread; then the keeper stops.
    fn join(&mut self) -> ResponseActFuture<Self, ()> {
        let arbiter = self.arbiter.take();
        Box::pin(
            crate::actors::stop_and_join(arbiter)
                .into_actor(self)
                .map(|_, _, ctx| ctx.stop()),
        )
    }
}

/// Stop the queue's arbiter and join its thread (sent by `Wal::shutdown` once the queue
/// has flushed and the flusher has stopped).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct JoinQueueThread;

impl Handler<JoinQueueThread> for QueueKeeper {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: JoinQueueThread, _: &mut Self::Context) -> Self::Result {
        self.join()
    }
}

/// The queue stopped: stop the flusher as the queue asked, then the queue's thread.
impl Handler<StopFlusher> for QueueKeeper {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: StopFlusher, _: &mut Self::Context) -> Self::Result {
        let supervisor = self.supervisor.clone();
        let join = self.join();
        Box::pin(
            async move {
                let _ = supervisor.send(msg).await;
            }
            .into_actor(self)
            .then(move |_, _, _| join),
        )
    }
}

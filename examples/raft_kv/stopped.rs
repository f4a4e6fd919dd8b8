//! What a node whose Raft core stopped answers a client's PUT or GET: 503
//! `{"error": "stopped", "leader": ..., "detail": ...}`, never the 307 of a running
//! follower.
//!
//! openraft 0.9.25 stops the core on a `Fatal` error (a `StorageError` from the log, a
//! panic) and the process stays up (docs/replication.md, "Errors"). Why not a 307 to the
//! leader, as a follower answers:
//!
//! - what the node knows of the cluster froze when its core stopped (openraft's last
//!   metrics, with the state `Shutdown`): it hears no heartbeat since, so the leader it
//!   names may have been gone for as long as it has been stopped. A 307 says "the leader
//!   is there"; this node cannot vouch for that.
//! - a stopped leader still names itself: a 307 would send the client back to it.
//! - the node is out of service (`/health` answers 503): a client, or a balancer, that
//!   follows redirects on its own would never learn that, and would keep coming back.
//!
//! So it answers 503, as a follower that knows no leader does, with `"leader"`: the other
//! node it last knew as the leader (or null), a hint a client may try first; `"error":
//! "stopped"` says why, `"detail"` the error that stopped it. A PUT refused here was not
//! proposed (`"outcome": "not applied"`); one that was in flight when the core stopped
//! may still commit under another leader (`"outcome": "unknown"`: retry with the same
//! `Client-Id`/`Client-Seq` elsewhere).

use crate::{NodeId, Raft};
use actix_web::HttpResponse;

/// What a client asked of the stopped node, for the `outcome` of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// A GET: a read changes nothing, there is no outcome.
    Read,
    /// A PUT refused before it was proposed: it will never apply.
    WriteNotProposed,
    /// A PUT that was in flight when the core stopped: it may still commit.
    WriteInFlight,
}

/// The 503 for `asked` if this node's (`me`) Raft core has stopped; `None` while it runs.
pub fn refusal(raft: &Raft, me: NodeId, asked: Asked) -> Option<HttpResponse> {
    let m = raft.metrics().borrow().clone();
    let fatal = m.running_state.err()?;
    let mut body = serde_json::json!({
        "error": "stopped",
        "leader": m.current_leader.filter(|leader| *leader != me),
        "detail": format!("this node's Raft core stopped: {fatal}; it serves nothing until it is restarted"),
    });
    let outcome = match asked {
        Asked::Read => None,
        Asked::WriteNotProposed => Some("not applied"),
        Asked::WriteInFlight => Some("unknown"),
    };
    if let Some(outcome) = outcome {
        body["outcome"] = outcome.into();
    }
    Some(HttpResponse::ServiceUnavailable().json(body))
}

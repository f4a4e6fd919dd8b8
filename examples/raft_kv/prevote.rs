//! Elections with a pre-vote: openraft 0.9.25 has none, so a follower cut off for a few
//! seconds raises its term at every election timeout and, once back, its higher term in
//! an AppendEntries reply makes the leader step down: an election for nothing. Here
//! openraft's own election timer is off (`Config::enable_elect = false`) and this timer
//! calls `Raft::trigger().elect()` only when
//!
//! 1. this node has heard no leader for `lease + jitter` (the lease is openraft's
//!    `leader_lease`, `election_timeout_max`: a voter refuses votes that long after its
//!    last heartbeat; the jitter is drawn again for every silence and every attempt, so
//!    a split vote is not repeated by the same two draws, as openraft 0.9 draws its
//!    timeout once per process), and
//! 2. a majority of the voters (this node included) answer a signed pre-vote
//!    (`POST /raft/prevote`, authenticated as the other `/raft/*` RPCs) saying they too
//!    have heard no leader for a lease, are not standing themselves (within a jitter of
//!    their own `elect`), and that the candidate's last log id is at least theirs (not
//!    its term: a candidate behind in term stands at its next term, learns the higher
//!    one from openraft's refusal, and stands above it; see [`Elections::answer`]).
//!    A node whose Raft core stopped (openraft's `Fatal`) answers every pre-vote with the
//!    error that stopped it, as it answers `/raft/vote`: it cannot vote in the election a
//!    granted pre-vote would start, so counting it let a candidate that could not win
//!    raise its term at every attempt (`tests/raft_stopped_node.rs`).
//!
//! A pre-vote changes nothing on either side (no term, no vote is written), so a node
//! that cannot reach a majority never raises its term and comes back without
//! disturbance; a refused one is asked again a few ticks later, an election that did not
//! make a leader one fresh jitter draw later. Time in which this timer did not run (the process stopped or starved
//! for more than a few ticks) counts as contact: a node that was not running cannot tell
//! that the leader was silent.

use crate::bounds::{Implausible, Plausible, MAX_PLAUSIBLE};
use crate::network::Network;
use crate::{NodeId, Raft};
use openraft::error::Fatal;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::{LogId, ServerState};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ticks of the timer missed (the gap between two ticks) before the time counts as not
/// run: the process was stopped or starved.
const STALL_TICKS: u32 = 4;

/// Ticks to wait (and as many more, drawn) before asking again after a refused pre-vote.
const PREVOTE_RETRY_TICKS: u32 = 2;

/// Who elects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ElectionMode {
    /// This module's timer, after a majority's pre-vote (the default).
    Prevote,
    /// openraft 0.9's own timer: no pre-vote, a timeout drawn once per process.
    Openraft,
}

/// A pre-vote request: would you vote for me if I stood now?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVote {
    /// The node asking.
    pub candidate: NodeId,
    /// Its current term (it would stand at the next one).
    pub term: u64,
    /// Its last log id.
    pub last_log_id: Option<LogId<NodeId>>,
}

/// The answer to a [`PreVote`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteReply {
    /// Whether this node would vote for the candidate now.
    pub granted: bool,
    /// This node's term.
    pub term: u64,
}

fn at_most(what: &'static str, value: u64) -> Result<(), Implausible> {
    if value > MAX_PLAUSIBLE {
        Err(Implausible { what, value })
    } else {
        Ok(())
    }
}

impl Plausible for PreVote {
    fn check(&self) -> Result<(), Implausible> {
        at_most("pre-vote term", self.term)?;
        if let Some(l) = &self.last_log_id {
            at_most("pre-vote last_log_id term", l.leader_id.term)?;
            at_most("pre-vote last_log_id index", l.index)?;
        }
        Ok(())
    }
}

impl Plausible for PreVoteReply {
    fn check(&self) -> Result<(), Implausible> {
        at_most("pre-vote reply term", self.term)
    }
}

/// The election timer's state, shared with the RPC handlers (which record contact with a
/// leader and answer pre-votes). Cheap to clone.
#[derive(Clone)]
pub struct Elections {
    inner: Arc<Inner>,
}

struct Inner {
    /// openraft's leader lease (`election_timeout_max`): no vote is granted by a voter
    /// within it of its last heartbeat, so no election is tried before it.
    lease: Duration,
    /// The extra wait after the lease, drawn in `[0, jitter)` for each silence; and
    /// between two attempts, drawn in `[jitter, 2 * jitter)`.
    jitter: Duration,
    /// The last time a leader was heard here (an AppendEntries accepted), this node led,
    /// or the timer found it had not run for a while. A std lock: held for a read or a
    /// store, never across an `.await`.
    contact: Mutex<Instant>,
    /// When this node last stood (called `elect`): for a jitter after it, it grants no
    /// pre-vote, as its own election is under way (two candidates at once split the vote).
    stood: Mutex<Option<Instant>>,
}

impl Elections {
    /// Elections with openraft's lease `lease` and draws of `jitter`.
    pub fn new(lease: Duration, jitter: Duration) -> Elections {
        Elections {
            inner: Arc::new(Inner {
                lease,
                jitter,
                contact: Mutex::new(Instant::now()),
                stood: Mutex::new(None),
            }),
        }
    }

    /// A leader was heard (or the time since the last contact is not to be counted).
    pub fn leader_seen(&self) {
        self.set_contact(Instant::now());
    }

    fn set_contact(&self, at: Instant) {
        let mut c = self.inner.contact.lock().expect("contact lock poisoned");
        *c = (*c).max(at);
    }

    fn contact(&self) -> Instant {
        *self.inner.contact.lock().expect("contact lock poisoned")
    }

    /// Answers a pre-vote from what this node knows now; the error that stopped its Raft
    /// core, if it stopped: such a node cannot vote, so it vouches for no candidate.
    /// (Boxed: a `Fatal` is a few hundred bytes, the reply 16.)
    pub fn answer(&self, raft: &Raft, req: &PreVote) -> Result<PreVoteReply, Box<Fatal<NodeId>>> {
        let m = raft.metrics().borrow().clone();
        if let Err(fatal) = &m.running_state {
            tracing::info!(
                candidate = req.candidate,
                error = %fatal,
                "pre-vote refused: this node's Raft core stopped"
            );
            return Err(Box::new(fatal.clone()));
        }
        let last_log_id = raft.data_metrics().borrow().last_log;
        let heard_lately = self.contact().elapsed() < self.inner.lease;
        let standing = self
            .inner
            .stood
            .lock()
            .expect("stood lock poisoned")
            .is_some_and(|at| at.elapsed() < self.inner.jitter);
        let here = Here {
            leads: m.state == ServerState::Leader,
            heard_lately,
            standing,
            last_log_id,
        };
        let granted = here.grants(req);
        tracing::info!(
            candidate = req.candidate,
            granted,
            heard_lately,
            "pre-vote answered"
        );
        Ok(PreVoteReply {
            granted,
            term: m.current_term,
        })
    }

    /// Starts the timer on the current runtime, ticking every `tick`; it ends when the
    /// Raft node stops.
    pub fn start(self, raft: Raft, network: Network, id: NodeId, tick: Duration) {
        tokio::spawn(async move { self.run(raft, network, id, tick).await });
    }

    async fn run(self, raft: Raft, network: Network, id: NodeId, tick: Duration) {
        let mut rng = Rng::seeded(id);
        let mut last_tick = Instant::now();
        let mut wait = self.inner.lease + rng.below(self.inner.jitter);
        let mut seen = self.contact();
        let mut retry_at = Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            let now = Instant::now();
            if now.duration_since(last_tick) > tick * STALL_TICKS {
                self.set_contact(now);
            }
            last_tick = now;
            let m = raft.metrics().borrow().clone();
            if m.running_state.is_err() {
                return;
            }
            if m.state == ServerState::Leader {
                self.set_contact(now);
            }
            // A learner, or a node not yet in a membership, does not stand (it still
            // answers pre-votes: an empty node would grant the vote too).
            if !m.membership_config.voter_ids().any(|v| v == id) {
                continue;
            }
            let contact = self.contact();
            if contact != seen {
                // A new silence (if it comes) gets a new draw.
                seen = contact;
                wait = self.inner.lease + rng.below(self.inner.jitter);
            }
            if now < contact + wait || now < retry_at {
                continue;
            }
            let granted = self.canvass(&raft, &network, id, &m).await;
            retry_at = if granted {
                tracing::info!(term = m.current_term, "pre-vote granted: standing");
                *self.inner.stood.lock().expect("stood lock poisoned") = Some(Instant::now());
                if raft.trigger().elect().await.is_err() {
                    return;
                }
                // A vote raised a term: the next try (after a split vote, say) one fresh
                // draw later, so two candidates do not meet again.
                Instant::now() + self.inner.jitter + rng.below(self.inner.jitter)
            } else {
                // Refused, nothing written anywhere: a peer that heard the old leader a
                // few ms after this node did sees its lease end a moment later. Ask again
                // soon.
                Instant::now() + tick * PREVOTE_RETRY_TICKS + rng.below(tick * PREVOTE_RETRY_TICKS)
            };
        }
    }

    /// Sends a pre-vote to every other voter; true once a majority (this node included)
    /// grants it. Each call is bounded by the jitter (at least 50 ms).
    async fn canvass(
        &self,
        raft: &Raft,
        network: &Network,
        id: NodeId,
        m: &openraft::RaftMetrics<NodeId, crate::identity::Member>,
    ) -> bool {
        let req = PreVote {
            candidate: id,
            term: m.current_term,
            last_log_id: raft.data_metrics().borrow().last_log,
        };
        let voters: Vec<NodeId> = m.membership_config.voter_ids().collect();
        let needed = voters.len() / 2 + 1;
        let ttl = self.inner.jitter.max(Duration::from_millis(50));
        let mut asks = tokio::task::JoinSet::new();
        for peer in voters.iter().copied().filter(|v| *v != id) {
            let Some(node) = m.membership_config.membership().get_node(&peer).cloned() else {
                continue;
            };
            let (mut network, req) = (network.clone(), req.clone());
            asks.spawn(async move {
                let conn = network.new_client(peer, &node).await;
                let asked = conn
                    .call::<_, PreVoteReply, openraft::error::Infallible>(
                        "/raft/prevote",
                        &req,
                        &RPCOption::new(ttl),
                    )
                    .await;
                match asked {
                    Ok(reply) => reply.granted,
                    // Unreachable, or refused with an error (a peer whose core stopped):
                    // not a vote.
                    Err(e) => {
                        tracing::debug!(peer, error = %e, "pre-vote not granted");
                        false
                    }
                }
            });
        }
        let mut granted = 1; // this node
        while let Some(answer) = asks.join_next().await {
            if answer.unwrap_or(false) {
                granted += 1;
                if granted >= needed {
                    return true;
                }
            }
        }
        granted >= needed
    }
}

/// splitmix64, seeded with the node id and the clock: enough to spread timeouts.
/// What a voter knows of itself when a pre-vote comes.
#[derive(Debug, Clone, Copy)]
struct Here {
    /// It is the leader.
    leads: bool,
    /// It heard a leader within the lease.
    heard_lately: bool,
    /// It stood itself within a jitter.
    standing: bool,
    /// Its last log id.
    last_log_id: Option<LogId<NodeId>>,
}

impl Here {
    /// Whether it would vote for `req`'s candidate now. Not by the candidate's term: a
    /// candidate behind in term but not in log stands at its next term, is refused by
    /// openraft's vote for that term, and stands again above it. Refusing it here for its
    /// term alone deadlocked a cluster for good: the node with the longest log had the
    /// lowest term, the one with the highest term a shorter log, and neither could win
    /// (a probe, after a leader was removed and killed mid-change).
    fn grants(&self, req: &PreVote) -> bool {
        !self.leads && !self.heard_lately && !self.standing && req.last_log_id >= self.last_log_id
    }
}

struct Rng(u64);

impl Rng {
    fn seeded(id: NodeId) -> Rng {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(clock ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration in `[0, d)` (zero for a zero `d`).
    fn below(&mut self, d: Duration) -> Duration {
        let ms = d.as_millis() as u64;
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.next() % ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log_id(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    #[test]
    fn a_pre_vote_is_granted_on_the_log_whatever_the_term() {
        // The probe's deadlock: this voter is at term 21 with its log to 8204; the
        // candidate, at term 20, holds one more entry of the same leader (the longest
        // log). It must be granted: the term the voter is at plays no part.
        let voter = Here {
            leads: false,
            heard_lately: false,
            standing: false,
            last_log_id: log_id(19, 8204),
        };
        let longer_lower_term = PreVote {
            candidate: 3,
            term: 20,
            last_log_id: log_id(19, 8205),
        };
        assert!(voter.grants(&longer_lower_term));
        // A shorter log is refused, whatever its term.
        let shorter = PreVote {
            candidate: 2,
            term: 40,
            last_log_id: log_id(19, 8200),
        };
        assert!(!voter.grants(&shorter));
        // A voter that leads, heard a leader lately, or stands itself refuses.
        for busy in [
            Here {
                leads: true,
                ..voter
            },
            Here {
                heard_lately: true,
                ..voter
            },
            Here {
                standing: true,
                ..voter
            },
        ] {
            assert!(!busy.grants(&longer_lower_term), "{busy:?}");
        }
    }
}

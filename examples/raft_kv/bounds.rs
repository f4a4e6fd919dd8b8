//! Terms and indexes no real cluster reaches: refused in every RPC and every reply before
//! openraft sees them. openraft 0.9.25 computes `term + 1` and `index + 1` unchecked, so a
//! vote at term `u64::MAX` (a forged one, or a member's bug) would wrap and panic every
//! node it reached, and being persisted first, again after each restart.
//!
//! [`MAX_PLAUSIBLE`] is 2^62: a cluster electing a leader every millisecond would take
//! about 146 million years to reach it, and an index there is as many entries.

use crate::{NodeId, TypeConfig};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{LogId, Vote};

/// The largest term, and the largest log index, an RPC may carry.
pub const MAX_PLAUSIBLE: u64 = 1 << 62;

/// A term or index above [`MAX_PLAUSIBLE`]: what carried it and its value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {value}: no real cluster reaches it (at most {MAX_PLAUSIBLE})")]
pub struct Implausible {
    /// Which field.
    pub what: &'static str,
    /// Its value.
    pub value: u64,
}

/// A message whose terms and indexes can be checked.
pub trait Plausible {
    /// Ok if every term and index it carries is at most [`MAX_PLAUSIBLE`].
    fn check(&self) -> Result<(), Implausible>;
}

fn at_most(what: &'static str, value: u64) -> Result<(), Implausible> {
    if value > MAX_PLAUSIBLE {
        Err(Implausible { what, value })
    } else {
        Ok(())
    }
}

fn vote(what: &'static str, v: &Vote<NodeId>) -> Result<(), Implausible> {
    at_most(what, v.leader_id.term)
}

fn log_id(what: &'static str, id: Option<&LogId<NodeId>>) -> Result<(), Implausible> {
    match id {
        Some(id) => {
            at_most(what, id.leader_id.term)?;
            at_most(what, id.index)
        }
        None => Ok(()),
    }
}

impl Plausible for AppendEntriesRequest<TypeConfig> {
    fn check(&self) -> Result<(), Implausible> {
        vote("vote term", &self.vote)?;
        log_id("prev_log_id", self.prev_log_id.as_ref())?;
        log_id("leader_commit", self.leader_commit.as_ref())?;
        for entry in &self.entries {
            log_id("an entry's log id", Some(&entry.log_id))?;
        }
        Ok(())
    }
}

impl Plausible for VoteRequest<NodeId> {
    fn check(&self) -> Result<(), Implausible> {
        vote("vote term", &self.vote)?;
        log_id("last_log_id", self.last_log_id.as_ref())
    }
}

impl Plausible for InstallSnapshotRequest<TypeConfig> {
    fn check(&self) -> Result<(), Implausible> {
        vote("vote term", &self.vote)?;
        log_id("snapshot last_log_id", self.meta.last_log_id.as_ref())?;
        let membership = self.meta.last_membership.log_id().as_ref();
        log_id("snapshot membership log id", membership)?;
        at_most("snapshot offset", self.offset)
    }
}

impl Plausible for AppendEntriesResponse<NodeId> {
    fn check(&self) -> Result<(), Implausible> {
        match self {
            AppendEntriesResponse::HigherVote(v) => vote("reply vote term", v),
            AppendEntriesResponse::PartialSuccess(id) => log_id("reply matching", id.as_ref()),
            AppendEntriesResponse::Success | AppendEntriesResponse::Conflict => Ok(()),
        }
    }
}

impl Plausible for VoteResponse<NodeId> {
    fn check(&self) -> Result<(), Implausible> {
        vote("reply vote term", &self.vote)?;
        log_id("reply last_log_id", self.last_log_id.as_ref())
    }
}

impl Plausible for InstallSnapshotResponse<NodeId> {
    fn check(&self) -> Result<(), Implausible> {
        vote("reply vote term", &self.vote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Entry, EntryPayload};

    fn id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn append(
        term: u64,
        prev: Option<LogId<NodeId>>,
        entry: u64,
    ) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(term, 1),
            prev_log_id: prev,
            leader_commit: prev,
            entries: vec![Entry {
                log_id: id(1, entry),
                payload: EntryPayload::Blank,
            }],
        }
    }

    #[test]
    fn terms_and_indexes_above_2_62_are_refused() {
        assert_eq!(append(5, Some(id(5, 9)), 10).check(), Ok(()));
        assert_eq!(
            append(MAX_PLAUSIBLE, Some(id(MAX_PLAUSIBLE, MAX_PLAUSIBLE)), 1).check(),
            Ok(())
        );
        let wrap = append(u64::MAX, None, 1).check();
        assert_eq!(
            wrap,
            Err(Implausible {
                what: "vote term",
                value: u64::MAX
            })
        );
        assert!(append(MAX_PLAUSIBLE + 1, None, 1).check().is_err());
        assert!(append(1, Some(id(1, u64::MAX)), 1).check().is_err());
        assert!(append(1, Some(id(u64::MAX, 1)), 1).check().is_err());
        assert!(
            append(1, None, u64::MAX).check().is_err(),
            "an entry's index"
        );
        let vote_req = VoteRequest::new(Vote::new(u64::MAX, 2), None);
        assert!(vote_req.check().is_err());
        assert!(VoteRequest::new(Vote::new(3, 2), Some(id(2, 1 << 63)))
            .check()
            .is_err());
        assert_eq!(
            VoteRequest::new(Vote::new(3, 2), Some(id(2, 7))).check(),
            Ok(())
        );
        let reply = AppendEntriesResponse::HigherVote(Vote::new_committed(u64::MAX, 3));
        assert!(reply.check().is_err());
        assert!(VoteResponse::new(Vote::new(u64::MAX, 3), None, false)
            .check()
            .is_err());
        let snap = InstallSnapshotResponse {
            vote: Vote::new(u64::MAX, 3),
        };
        assert!(snap.check().is_err());
    }
}

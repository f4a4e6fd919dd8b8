//! The rules a membership change must pass before openraft is asked: ids, addresses,
//! the limit on nodes, one change at a time, a voter always left. Pure functions of the
//! current membership, unit-tested here; the handlers are in `members`.

use crate::bounds::MAX_PLAUSIBLE;
use crate::identity::Member;
use crate::NodeId;
use openraft::{ChangeMembers, Membership};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// Most nodes (voters and learners together) a cluster may have: every write waits for
/// a majority of voters, and the leader replicates to every node.
pub const MAX_NODES: usize = 9;

/// A refusal, before or after openraft was asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request cannot be right.
    Bad(String),
    /// 404: no such node.
    NotFound(String),
    /// 409: it conflicts with the membership; `retry` if it may pass by itself (another
    /// change in progress).
    Conflict { text: String, retry: bool },
}

/// `POST /cluster/learners` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLearner {
    /// The new node's id: never one a node used before (a node that lost its directory
    /// comes back under a new id).
    pub id: NodeId,
    /// Its address, `IP:PORT`, loopback or private.
    pub addr: String,
}

/// A valid node id: 1 to 2^62 (0 is "no leader" in `x-raft-leader`).
pub fn check_id(id: NodeId) -> Result<(), Refusal> {
    if id == 0 || id > MAX_PLAUSIBLE {
        return Err(Refusal::Bad(format!("node id {id}: 1 to {MAX_PLAUSIBLE}")));
    }
    Ok(())
}

/// Whether `learner` may be added to `m`: `Ok(true)` if it is already there at that
/// address (nothing to change), `Ok(false)` if it is new and fits.
pub fn check_learner(
    m: &Membership<NodeId, Member>,
    learner: &NewLearner,
) -> Result<bool, Refusal> {
    check_id(learner.id)?;
    let addr: SocketAddr = learner
        .addr
        .parse()
        .map_err(|e| Refusal::Bad(format!("address `{}`: {e}", learner.addr)))?;
    if addr.port() == 0 {
        return Err(Refusal::Bad(format!("address {addr}: port 0")));
    }
    crate::check_reachable_privately(addr).map_err(Refusal::Bad)?;
    let addr = addr.to_string();
    if let Some(node) = m.get_node(&learner.id) {
        if node.addr == addr {
            return Ok(true);
        }
        return Err(Refusal::Conflict {
            text: format!(
                "node {} is at {}: remove it first, and add the new node under a new id",
                learner.id, node.addr
            ),
            retry: false,
        });
    }
    if let Some((other, _)) = m.nodes().find(|(_, n)| n.addr == addr) {
        return Err(Refusal::Conflict {
            text: format!("{addr} is node {other}'s address: remove node {other} first"),
            retry: false,
        });
    }
    if m.nodes().count() >= MAX_NODES {
        return Err(Refusal::Conflict {
            text: format!("the cluster has {MAX_NODES} nodes, the most it may have"),
            retry: false,
        });
    }
    Ok(false)
}

/// A change is half done (a joint configuration): the next must wait.
pub fn check_settled(m: &Membership<NodeId, Member>) -> Result<(), Refusal> {
    if m.get_joint_config().len() > 1 {
        return Err(Refusal::Conflict {
            text: "a membership change is in progress".into(),
            retry: true,
        });
    }
    Ok(())
}

/// `POST /cluster/voters` body: exactly one of the three.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VotersChange {
    /// The new set of voters (members already; voters left out stay as learners).
    pub voters: Option<BTreeSet<NodeId>>,
    /// Learners to make voters.
    pub add: Option<BTreeSet<NodeId>>,
    /// Voters to make learners.
    pub remove: Option<BTreeSet<NodeId>>,
}

/// The openraft change for `change`, if it is one valid for `m`; `None` if the voters
/// are already what it asks (nothing to write: `--join` asks again at each start).
pub fn check_voters(
    m: &Membership<NodeId, Member>,
    change: VotersChange,
) -> Result<Option<ChangeMembers<NodeId, Member>>, Refusal> {
    let voters: BTreeSet<NodeId> = m.voter_ids().collect();
    let (ids, result, change) = match change {
        VotersChange {
            voters: Some(ids),
            add: None,
            remove: None,
        } => (
            ids.clone(),
            ids.clone(),
            ChangeMembers::ReplaceAllVoters(ids),
        ),
        VotersChange {
            voters: None,
            add: Some(ids),
            remove: None,
        } => {
            let result = voters.union(&ids).copied().collect();
            (ids.clone(), result, ChangeMembers::AddVoterIds(ids))
        }
        VotersChange {
            voters: None,
            add: None,
            remove: Some(ids),
        } => {
            let result = voters.difference(&ids).copied().collect();
            (ids.clone(), result, ChangeMembers::RemoveVoters(ids))
        }
        _ => {
            return Err(Refusal::Bad(
                "exactly one of \"voters\", \"add\", \"remove\" (each a list of node ids)".into(),
            ))
        }
    };
    if ids.is_empty() || ids.len() > MAX_NODES {
        return Err(Refusal::Bad(format!(
            "1 to {MAX_NODES} node ids, not {}",
            ids.len()
        )));
    }
    for id in &ids {
        check_id(*id)?;
        if m.get_node(id).is_none() {
            return Err(Refusal::NotFound(format!(
                "node {id} is not a member: add it as a learner first"
            )));
        }
    }
    if result.is_empty() {
        return Err(Refusal::Conflict {
            text: "no voter would be left".into(),
            retry: false,
        });
    }
    check_settled(m)?;
    Ok((result != voters).then_some(change))
}

/// The openraft change that removes node `id` from `m`, if it may be removed.
pub fn check_removal(
    m: &Membership<NodeId, Member>,
    id: NodeId,
) -> Result<ChangeMembers<NodeId, Member>, Refusal> {
    check_id(id)?;
    if m.get_node(&id).is_none() {
        return Err(Refusal::NotFound(format!("node {id} is not a member")));
    }
    check_settled(m)?;
    let voters: BTreeSet<NodeId> = m.voter_ids().collect();
    if voters.contains(&id) {
        if voters.len() == 1 {
            return Err(Refusal::Conflict {
                text: format!("node {id} is the only voter"),
                retry: false,
            });
        }
        Ok(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
    } else {
        Ok(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn membership(voters: &[NodeId], learners: &[NodeId]) -> Membership<NodeId, Member> {
        let nodes: BTreeMap<NodeId, Member> = voters
            .iter()
            .chain(learners)
            .map(|id| {
                let addr = format!("127.0.0.1:{}", 21000 + id);
                (
                    *id,
                    Member {
                        addr,
                        incarnation: *id,
                    },
                )
            })
            .collect();
        Membership::new(vec![voters.iter().copied().collect()], nodes)
    }

    fn learner(id: NodeId, addr: &str) -> NewLearner {
        NewLearner {
            id,
            addr: addr.into(),
        }
    }

    #[test]
    fn learners_are_checked_for_id_address_and_room() {
        let m = membership(&[1, 2, 3], &[4]);
        assert_eq!(check_learner(&m, &learner(5, "127.0.0.1:21005")), Ok(false));
        assert_eq!(
            check_learner(&m, &learner(4, "127.0.0.1:21004")),
            Ok(true),
            "re-adding is a no-op"
        );
        assert!(matches!(
            check_learner(&m, &learner(4, "127.0.0.1:29999")),
            Err(Refusal::Conflict { retry: false, .. })
        ));
        assert!(
            matches!(
                check_learner(&m, &learner(6, "127.0.0.1:21002")),
                Err(Refusal::Conflict { retry: false, .. })
            ),
            "node 2's address"
        );
        for bad in [
            learner(0, "127.0.0.1:1"),
            learner(u64::MAX, "127.0.0.1:1"),
            learner(5, "8.8.8.8:53"),
            learner(5, "[2001:db8::1]:21005"),
            learner(5, "[fe80::1]:21005"),
            learner(5, "127.0.0.1:0"),
            learner(5, "localhost:80"),
            learner(5, ""),
        ] {
            assert!(
                matches!(check_learner(&m, &bad), Err(Refusal::Bad(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_learner(&m, &learner(5, "10.1.2.3:21005")),
            Ok(false),
            "a private address"
        );
        assert_eq!(
            check_learner(&m, &learner(5, "[fd12:3456::5]:21005")),
            Ok(false),
            "a private IPv6 address (unique local, fc00::/7)"
        );
        assert_eq!(
            check_learner(&m, &learner(6, "[::ffff:192.168.1.6]:21006")),
            Ok(false),
            "an IPv4-mapped private address"
        );
        let full = membership(&[1, 2, 3, 4, 5], &[6, 7, 8, 9]);
        assert!(
            matches!(
                check_learner(&full, &learner(10, "127.0.0.1:21010")),
                Err(Refusal::Conflict { retry: false, .. })
            ),
            "{MAX_NODES} nodes at most"
        );
        let joint = Membership::new(
            vec![BTreeSet::from([1, 2]), BTreeSet::from([1, 2, 3])],
            m.nodes()
                .map(|(i, n)| (*i, n.clone()))
                .collect::<BTreeMap<_, _>>(),
        );
        assert_eq!(
            check_settled(&joint),
            Err(Refusal::Conflict {
                text: "a membership change is in progress".into(),
                retry: true
            })
        );
    }

    fn change(
        voters: Option<&[NodeId]>,
        add: Option<&[NodeId]>,
        remove: Option<&[NodeId]>,
    ) -> VotersChange {
        let set = |ids: Option<&[NodeId]>| ids.map(|i| i.iter().copied().collect());
        VotersChange {
            voters: set(voters),
            add: set(add),
            remove: set(remove),
        }
    }

    #[test]
    fn voter_changes_are_checked() {
        let m = membership(&[1, 2, 3], &[4, 5]);
        assert_eq!(
            check_voters(&m, change(None, Some(&[4, 5]), None)),
            Ok(Some(ChangeMembers::AddVoterIds(BTreeSet::from([4, 5]))))
        );
        assert_eq!(
            check_voters(&m, change(Some(&[1, 4, 5]), None, None)),
            Ok(Some(ChangeMembers::ReplaceAllVoters(BTreeSet::from([
                1, 4, 5
            ]))))
        );
        assert_eq!(
            check_voters(&m, change(None, None, Some(&[3]))),
            Ok(Some(ChangeMembers::RemoveVoters(BTreeSet::from([3]))))
        );
        for (same, what) in [
            (change(None, Some(&[1, 3]), None), "voters already"),
            (change(Some(&[3, 2, 1]), None, None), "the same voters"),
            (change(None, None, Some(&[4])), "a learner is no voter"),
        ] {
            assert_eq!(check_voters(&m, same), Ok(None), "{what}: nothing to write");
        }
        assert!(
            matches!(
                check_voters(&m, change(None, Some(&[6]), None)),
                Err(Refusal::NotFound(_))
            ),
            "not a member"
        );
        assert!(
            matches!(
                check_voters(&m, change(None, None, Some(&[1, 2, 3]))),
                Err(Refusal::Conflict { retry: false, .. })
            ),
            "no voter left"
        );
        assert!(matches!(
            check_voters(&m, change(Some(&[]), None, None)),
            Err(Refusal::Bad(_))
        ));
        assert!(matches!(
            check_voters(&m, change(None, None, None)),
            Err(Refusal::Bad(_))
        ));
        assert!(
            matches!(
                check_voters(&m, change(Some(&[1]), Some(&[4]), None)),
                Err(Refusal::Bad(_))
            ),
            "two at once"
        );
        assert!(matches!(
            check_voters(&m, change(None, Some(&[0]), None)),
            Err(Refusal::Bad(_))
        ));
    }

    #[test]
    fn removals_are_checked() {
        let m = membership(&[1, 2, 3], &[4]);
        assert_eq!(
            check_removal(&m, 2),
            Ok(ChangeMembers::RemoveVoters(BTreeSet::from([2])))
        );
        assert_eq!(
            check_removal(&m, 4),
            Ok(ChangeMembers::RemoveNodes(BTreeSet::from([4])))
        );
        assert!(matches!(check_removal(&m, 7), Err(Refusal::NotFound(_))));
        assert!(
            matches!(
                check_removal(&membership(&[1], &[]), 1),
                Err(Refusal::Conflict { retry: false, .. })
            ),
            "the only voter"
        );
    }
}

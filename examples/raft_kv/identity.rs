//! Node identity: which life of a node's directory answers under its id.
//!
//! A node that lost its directory (disk replaced, `rm -rf`) and starts again under its
//! old id has forgotten its log and its vote: taken for the member it was, it could vote
//! twice in one term, and the leader would see a follower's log go back. So each life of
//! a node's log has an **incarnation**, a random nonzero u64 drawn when the node starts
//! with an empty log (no entry, no vote, nothing purged) and kept in `DIR/identity` while
//! the log holds anything. The membership names each node's incarnation ([`Member`]):
//! the leader asks a new learner for it (`POST /raft/identity`, signed as every RPC) and
//! `--init` asks every peer before it initializes. A peer that was not up then is named
//! with incarnation 0 ("not known yet": any life of it is obeyed) until the leader has
//! asked it and written its incarnation into the membership (`startup::name_the_unnamed`).
//!
//! Every RPC carries `x-raft-identity: FROM FROM_INCARNATION TO_INCARNATION` (covered by
//! its MAC, `auth`). A node answers 409 to one addressed to another incarnation of it
//! (it is a new life of a lost node), and to one from a node whose incarnation is not
//! the one its membership names (the sender is such a new life). A lost node is thus
//! never a voter again under its old id; `docs/replication.md` says how to replace it.

use crate::bounds::{Implausible, Plausible};
use crate::NodeId;
use openraft::Membership;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::Path;

/// The header that names the sender and the incarnation it addresses.
pub const IDENTITY_HEADER: &str = "x-raft-identity";
/// The file in a node's directory that holds its id and incarnation.
pub const IDENTITY_FILE: &str = "identity";
/// What the identity file starts with.
const FILE_TAG: &str = "raft_kv identity";
/// Longest identity file read (its line is under 60 bytes; a longer file is damaged).
const MAX_FILE_BYTES: u64 = 256;

/// A node in the membership (openraft's node type): where it listens and which life of
/// its directory is the member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `IP:PORT`.
    pub addr: String,
    /// The incarnation that joined; 0 while not known yet (a peer that did not answer
    /// `--init`, until the leader names it).
    pub incarnation: u64,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (incarnation {:016x})", self.addr, self.incarnation)
    }
}

/// This node: its id and the incarnation of its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `--id`.
    pub id: NodeId,
    /// This life of the directory.
    pub incarnation: u64,
}

impl Identity {
    /// The identity of the node `id` in `dir`. `empty`: its log holds nothing (no entry,
    /// no vote, nothing purged), so this is a new life: a new incarnation, written to
    /// [`IDENTITY_FILE`] (mode 0600, synced) before the node serves. Otherwise the file's:
    /// refused if it is missing, damaged, or names another node.
    pub fn settle(dir: &Path, id: NodeId, empty: bool) -> Result<Identity, String> {
        let path = dir.join(IDENTITY_FILE);
        if empty {
            let me = Identity {
                id,
                incarnation: new_incarnation()?,
            };
            me.write(dir)
                .map_err(|e| format!("write {}: {e}", path.display()))?;
            return Ok(me);
        }
        let text = match read_bounded(&path) {
            Ok(t) => t,
            Err(e) => {
                return Err(format!(
                    "{}: {e}; the log beside it holds this node's state, and without the \
                     file no peer takes it for the member it is: restore the file",
                    path.display()
                ))
            }
        };
        let me = Identity::parse(&text)
            .ok_or_else(|| format!("{}: not a raft_kv identity file", path.display()))?;
        if me.id != id {
            return Err(format!(
                "{} names node {}, not node {id}: {} is another node's directory",
                path.display(),
                me.id,
                dir.display()
            ));
        }
        Ok(me)
    }

    /// `raft_kv identity ID INCARNATION_HEX`.
    fn parse(text: &str) -> Option<Identity> {
        let rest = text.trim_end().strip_prefix(FILE_TAG)?;
        let mut words = rest.split_whitespace();
        let id = words.next()?.parse().ok()?;
        let incarnation = u64::from_str_radix(words.next()?, 16).ok()?;
        (words.next().is_none() && incarnation != 0).then_some(Identity { id, incarnation })
    }

    /// Writes the file through a synced temporary file and a rename, then syncs `dir`.
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&tmp)?;
        writeln!(file, "{FILE_TAG} {} {:016x}", self.id, self.incarnation)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(IDENTITY_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// The header of an RPC from this node to `to` (incarnation 0: not known yet, as for
    /// `POST /raft/identity`).
    pub fn header_to(&self, to_incarnation: u64) -> String {
        format!("{} {:x} {:x}", self.id, self.incarnation, to_incarnation)
    }

    /// Whether to obey an RPC whose [`IDENTITY_HEADER`] is `header`, as this node with
    /// the membership `members`: addressed to this incarnation (or to incarnation 0, not
    /// known yet), and sent by the incarnation of its sender that `members` names (or by
    /// a node it does not name, or names with incarnation 0).
    pub fn check(
        &self,
        header: Option<&str>,
        members: &Membership<NodeId, Member>,
    ) -> Result<(), String> {
        let words: Vec<&str> = header.unwrap_or("").split(' ').collect();
        let [from, from_inc, to_inc] = words[..] else {
            return Err(format!("no valid {IDENTITY_HEADER} header"));
        };
        let parsed = (
            from.parse::<NodeId>(),
            u64::from_str_radix(from_inc, 16),
            u64::from_str_radix(to_inc, 16),
        );
        let (Ok(from), Ok(from_inc), Ok(to_inc)) = parsed else {
            return Err(format!("malformed {IDENTITY_HEADER} header"));
        };
        if to_inc != self.incarnation && to_inc != 0 {
            return Err(format!(
                "addressed to incarnation {to_inc:016x} of node {}, and this is incarnation \
                 {:016x}: this node started again with an empty log, so it is not that \
                 member; remove node {} and join under a new id",
                self.id, self.incarnation, self.id
            ));
        }
        match members.get_node(&from) {
            Some(m) if m.incarnation != from_inc && m.incarnation != 0 => Err(format!(
                "sent by incarnation {from_inc:016x} of node {from}, and the membership has \
                 incarnation {:016x}: node {from} started again with an empty log",
                m.incarnation
            )),
            _ => Ok(()),
        }
    }
}

/// `POST /raft/identity` asks nothing: its body is `()`.
impl Plausible for () {
    fn check(&self) -> Result<(), Implausible> {
        Ok(())
    }
}

/// An identity carries no term or index.
impl Plausible for Identity {
    fn check(&self) -> Result<(), Implausible> {
        Ok(())
    }
}

/// The file at `path` as text; an error if it is longer than [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than {MAX_FILE_BYTES} bytes"),
        ));
    }
    Ok(text)
}

/// A random nonzero incarnation from the operating system.
fn new_incarnation() -> Result<u64, String> {
    loop {
        match getrandom::u64() {
            Ok(0) => continue,
            Ok(n) => return Ok(n),
            Err(e) => return Err(format!("no randomness for an incarnation: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn members(nodes: &[(NodeId, u64)]) -> Membership<NodeId, Member> {
        let map: BTreeMap<NodeId, Member> = nodes
            .iter()
            .map(|(id, inc)| {
                let addr = format!("127.0.0.1:{}", 21000 + id);
                (
                    *id,
                    Member {
                        addr,
                        incarnation: *inc,
                    },
                )
            })
            .collect();
        Membership::new(vec![map.keys().copied().collect::<BTreeSet<_>>()], map)
    }

    #[test]
    fn only_the_named_incarnations_are_obeyed() {
        let me = Identity {
            id: 2,
            incarnation: 0xb,
        };
        let m = members(&[(1, 0xa), (2, 0xb)]);
        let from1 = Identity {
            id: 1,
            incarnation: 0xa,
        };
        assert_eq!(me.check(Some(&from1.header_to(0xb)), &m), Ok(()));
        // A node the membership does not name yet (this node is a new learner).
        let from7 = Identity {
            id: 7,
            incarnation: 0x7,
        };
        assert_eq!(me.check(Some(&from7.header_to(0xb)), &m), Ok(()));
        // Incarnations not known yet: any life is obeyed.
        assert_eq!(me.check(Some(&from1.header_to(0)), &m), Ok(()));
        let m0 = members(&[(1, 0), (2, 0xb)]);
        let other1 = Identity {
            id: 1,
            incarnation: 0xe,
        };
        assert_eq!(me.check(Some(&other1.header_to(0xb)), &m0), Ok(()));
        // To another life of this node; from another life of node 1.
        assert!(me.check(Some(&from1.header_to(0xc)), &m).is_err());
        let reborn = Identity {
            id: 1,
            incarnation: 0xd,
        };
        assert!(me.check(Some(&reborn.header_to(0xb)), &m).is_err());
        for bad in [
            None,
            Some(""),
            Some("1 a"),
            Some("1 a b c"),
            Some("x a b"),
            Some("1 a z"),
        ] {
            assert!(me.check(bad, &m).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_file_is_kept_while_the_log_holds_anything_and_checked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        assert!(Identity::settle(dir, 3, false).is_err(), "no file, a log");
        let first = Identity::settle(dir, 3, true).expect("a new life");
        assert_eq!(Identity::settle(dir, 3, false), Ok(first));
        assert!(Identity::settle(dir, 4, false).is_err(), "another node's");
        let second = Identity::settle(dir, 3, true).expect("another new life");
        assert_ne!(first.incarnation, second.incarnation);
        let path = dir.join(IDENTITY_FILE);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("the file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let long = format!("raft_kv identity 3 1{}", " ".repeat(300));
        std::fs::write(&path, long).expect("a long file");
        assert!(
            Identity::settle(dir, 3, false).is_err(),
            "a file past the bound"
        );
        for damaged in [
            "",
            "raft_kv identity 3",
            "raft_kv identity 3 0",
            "raft_kv identity 3 zz",
        ] {
            std::fs::write(&path, damaged).expect("damage the file");
            assert!(Identity::settle(dir, 3, false).is_err(), "{damaged:?}");
        }
    }
}

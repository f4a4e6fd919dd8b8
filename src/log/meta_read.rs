//! Reading the log's metadata file (`META`, two copies): each copy checked, the whole one
//! with the highest `seq` taken, what each held reported. No writes: offline readers use
//! it as recovery does. The copies are written by [`crate::log::meta::MetaStore`].

use super::meta::{META_COPY_FILE, META_FILE};
use crate::error::WalError;
use crate::format::meta::{
    LogMeta, MetaFormatError, MAX_META_BYTES_LIMIT, META_OVERHEAD_BYTES, META_VERSION,
};
use crate::storage::Storage;
use std::io;
use std::path::Path;

/// Reads of both copies when neither is whole (an offline reader may read while the
/// writer writes a copy): after that, the damage is reported.
const READ_ATTEMPTS: u32 = 3;

/// What one copy of the metadata file held when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyState {
    /// Whole, and the value taken (the highest `seq` found): its `seq`.
    Current(u64),
    /// Whole but older than the other copy (a replace that did not finish, or a copy
    /// restored from a backup): its `seq`. Not obeyed.
    Stale(u64),
    /// No such file.
    Missing,
    /// The file fails its checks: why.
    Damaged(String),
}

impl CopyState {
    /// True for a copy that holds the value taken.
    pub fn is_current(&self) -> bool {
        matches!(self, CopyState::Current(_))
    }
}

impl std::fmt::Display for CopyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyState::Current(seq) => write!(f, "ok, seq {seq}"),
            CopyState::Stale(seq) => write!(f, "stale, seq {seq} (older than the other copy)"),
            CopyState::Missing => f.write_str("missing"),
            CopyState::Damaged(why) => write!(f, "damaged ({why})"),
        }
    }
}

/// Both copies of a log's metadata file as read: the value taken and each copy's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRead {
    /// The value: the whole copy with the highest `seq` (`None`: no copy at all, a new
    /// log or one written before the file existed).
    pub meta: Option<LogMeta>,
    /// `META`'s state.
    pub main: CopyState,
    /// `META.copy`'s state.
    pub copy: CopyState,
}

impl MetaRead {
    /// True when both copies are whole and hold the same value, or both are missing:
    /// nothing to repair.
    pub fn is_whole(&self) -> bool {
        matches!(
            (&self.main, &self.copy),
            (CopyState::Current(_), CopyState::Current(_))
                | (CopyState::Missing, CopyState::Missing)
        )
    }

    /// What is wrong with the copies, for a report (`None` when [`Self::is_whole`]).
    pub fn problem(&self) -> Option<String> {
        if self.is_whole() {
            return None;
        }
        let used = match (&self.main, &self.copy) {
            (CopyState::Current(s), _) => format!("{META_FILE} (seq {s})"),
            (_, CopyState::Current(s)) => format!("{META_COPY_FILE} (seq {s})"),
            _ => "neither".to_string(),
        };
        Some(format!(
            "{META_FILE} {}; {META_COPY_FILE} {}; the value of {used} was used",
            self.main, self.copy
        ))
    }
}

/// Reads one copy of the metadata file (`path` names `META` or `META.copy`), without
/// changing anything: `Ok(None)` when there is no such file, [`WalError::Corruption`]
/// when it fails its checks. For showing each copy (`walctl meta`); a reader takes the
/// value through [`read_meta_copies`].
pub fn read_meta_copy(storage: &dyn Storage, path: &Path) -> Result<Option<LogMeta>, WalError> {
    read_one(storage, path)
}

/// Reads one copy: `Ok(None)` when there is no such file.
fn read_one(storage: &dyn Storage, path: &Path) -> Result<Option<LogMeta>, WalError> {
    let file = match storage.open(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WalError::io("open", path, e)),
    };
    let size = file
        .size_bytes()
        .map_err(|e| WalError::io("stat", path, e))?;
    // Bounded before reading: a damaged or foreign file must not take all memory.
    let max_size = META_OVERHEAD_BYTES as u64
        + MAX_META_BYTES_LIMIT
        + crate::format::meta_cursors::MAX_CURSORS_SECTION_BYTES as u64;
    if size > max_size {
        return Err(WalError::Corruption {
            segment: path.to_path_buf(),
            offset: 0,
            reason: format!("metadata file of {size} bytes is larger than any ({max_size})"),
        });
    }
    // `size` is bounded just above, so it fits in memory and in a usize.
    let mut bytes = vec![0u8; size as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| WalError::io("read", path, e))?;
    match LogMeta::decode(&bytes, MAX_META_BYTES_LIMIT) {
        Ok(meta) => Ok(Some(meta)),
        // A newer format is refused as such only if its last four bytes are the CRC of the
        // rest (every version keeps that): else it is a damaged version field, and the
        // other copy is taken.
        Err(MetaFormatError::Version(found)) if crc_trailer_matches(&bytes) => {
            Err(WalError::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: META_VERSION,
            })
        }
        Err(MetaFormatError::Version(found)) => Err(WalError::Corruption {
            segment: path.to_path_buf(),
            offset: 8,
            reason: format!("metadata format version {found} with a CRC that does not match"),
        }),
        Err(e) => Err(WalError::Corruption {
            segment: path.to_path_buf(),
            offset: e.offset(),
            reason: e.to_string(),
        }),
    }
}

/// Whether the last four bytes of `bytes` are the CRC of the bytes before them.
fn crc_trailer_matches(bytes: &[u8]) -> bool {
    let Some(body) = bytes.len().checked_sub(4) else {
        return false;
    };
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[body..]);
    u32::from_le_bytes(crc) == crc32fast::hash(&bytes[..body])
}

/// Reads both copies of a log directory's metadata file, without changing anything (for
/// offline readers too), and takes the whole one with the highest `seq`. A copy that
/// fails its checks is [`CopyState::Damaged`] as long as the other is whole; both
/// damaged (or one damaged and one missing) is [`WalError::Corruption`] naming `META`
/// (read again first, twice: an offline reader may have caught the writer between the
/// copies). A newer format ([`WalError::UnsupportedVersion`]) or an I/O error is returned
/// as it is: the other copy is not taken instead. Two whole copies with the same `seq`
/// but different values are corruption (no writer of this format leaves that; a build from
/// before `META.copy` can, docs/format.md). The slot is read up to
/// [`MAX_META_BYTES_LIMIT`], so a log whose `max_meta_bytes` was lowered stays readable.
pub fn read_meta_copies(storage: &dyn Storage, dir: &Path) -> Result<MetaRead, WalError> {
    let mut attempt = 1;
    loop {
        match read_copies_once(storage, dir) {
            Err(e) if attempt < READ_ATTEMPTS && matches!(e, WalError::Corruption { .. }) => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn read_copies_once(storage: &dyn Storage, dir: &Path) -> Result<MetaRead, WalError> {
    let state = |path: &Path| -> Result<(Option<LogMeta>, CopyState), WalError> {
        match read_one(storage, path) {
            Ok(Some(m)) => {
                let seq = m.seq;
                Ok((Some(m), CopyState::Current(seq)))
            }
            Ok(None) => Ok((None, CopyState::Missing)),
            Err(WalError::Corruption { reason, .. }) => Ok((None, CopyState::Damaged(reason))),
            Err(e) => Err(e),
        }
    };
    let main_path = dir.join(META_FILE);
    let copy_path = dir.join(META_COPY_FILE);
    let (main, mut main_state) = state(&main_path)?;
    let (copy, mut copy_state) = state(&copy_path)?;
    let meta = match (main, copy) {
        (Some(a), Some(b)) if a.seq == b.seq => {
            if a != b {
                return Err(WalError::Corruption {
                    segment: main_path,
                    offset: 16,
                    reason: format!(
                        "{META_FILE} and {META_COPY_FILE} hold different values under the same seq {}",
                        a.seq
                    ),
                });
            }
            Some(a)
        }
        (Some(a), Some(b)) => {
            if a.seq > b.seq {
                copy_state = CopyState::Stale(b.seq);
                Some(a)
            } else {
                main_state = CopyState::Stale(a.seq);
                Some(b)
            }
        }
        (Some(m), None) | (None, Some(m)) => Some(m),
        (None, None) => {
            if main_state == CopyState::Missing && copy_state == CopyState::Missing {
                None
            } else {
                let (path, reason) = match (&main_state, &copy_state) {
                    (CopyState::Damaged(r), _) => (main_path, r.clone()),
                    (_, CopyState::Damaged(r)) => (copy_path, r.clone()),
                    _ => unreachable!("one of two copies without a value is damaged"),
                };
                return Err(WalError::Corruption {
                    segment: path,
                    offset: 0,
                    reason: format!(
                        "{reason}; no whole copy of META is left ({META_FILE} {main_state}, \
                         {META_COPY_FILE} {copy_state}): `walctl repair-meta` rebuilds it"
                    ),
                });
            }
        }
    };
    Ok(MetaRead {
        meta,
        main: main_state,
        copy: copy_state,
    })
}

/// Reads a log directory's metadata (see [`read_meta_copies`]) and returns the value
/// taken. `Ok(None)` when there is no copy: a new log, or one written before the file
/// existed.
pub fn read_meta(storage: &dyn Storage, dir: &Path) -> Result<Option<LogMeta>, WalError> {
    read_meta_copies(storage, dir).map(|r| r.meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::meta::MetaStore;
    use crate::storage::default_storage;

    #[test]
    fn one_damaged_copy_is_outvoted_both_damaged_is_corruption_naming_meta() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetaStore::open_default(default_storage(), dir.path()).unwrap();
        store.update(|m| m.first_lsn = 3).unwrap();
        let path = dir.path().join(META_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let read = read_meta_copies(&crate::storage::FsStorage, dir.path()).unwrap();
        assert_eq!(read.meta.as_ref().map(|m| m.first_lsn), Some(3));
        assert!(matches!(read.main, CopyState::Damaged(_)), "{read:?}");
        assert!(read.copy.is_current());
        assert!(read.problem().unwrap().contains(META_FILE));
        std::fs::write(dir.path().join(META_COPY_FILE), vec![0xAB; 1 << 20]).unwrap();
        match MetaStore::open_default(default_storage(), dir.path()) {
            Err(WalError::Corruption { segment, .. }) => assert_eq!(segment, path),
            other => panic!("expected corruption, got {other:?}"),
        }
        std::fs::write(&path, vec![0xAB; 1 << 20]).unwrap();
        assert!(MetaStore::open_default(default_storage(), dir.path())
            .unwrap_err()
            .is_corruption());
    }

    #[test]
    fn the_copy_with_the_higher_seq_wins_and_the_other_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetaStore::open_default(default_storage(), dir.path()).unwrap();
        store.update(|m| m.first_lsn = 3).unwrap();
        let old = std::fs::read(dir.path().join(META_FILE)).unwrap();
        store.update(|m| m.first_lsn = 4).unwrap();
        for (stale, name) in [(META_FILE, META_COPY_FILE), (META_COPY_FILE, META_FILE)] {
            let keep = std::fs::read(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(stale), &old).unwrap();
            let read = read_meta_copies(&crate::storage::FsStorage, dir.path()).unwrap();
            assert_eq!(read.meta.as_ref().map(|m| m.first_lsn), Some(4));
            let (s, c) = match stale {
                META_FILE => (&read.main, &read.copy),
                _ => (&read.copy, &read.main),
            };
            assert_eq!(s, &CopyState::Stale(1));
            assert_eq!(c, &CopyState::Current(2));
            std::fs::write(dir.path().join(stale), &keep).unwrap();
        }
        // The same seq with another value: no writer of this format leaves that.
        let mut other = read_meta(&crate::storage::FsStorage, dir.path())
            .unwrap()
            .unwrap();
        other.first_lsn = 99;
        std::fs::write(dir.path().join(META_FILE), other.encode(u64::MAX).unwrap()).unwrap();
        assert!(read_meta(&crate::storage::FsStorage, dir.path())
            .unwrap_err()
            .is_corruption());
    }
}

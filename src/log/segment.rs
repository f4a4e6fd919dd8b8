//! Segment files: their names, listing them in LSN order, and creating a new one safely.
//!
//! A segment is named by its first LSN, zero-padded to 20 digits so that names sort in LSN
//! order: `00000000000000000001.wal`. A new segment is built under a `.tmp` name (header
//! written, blocks preallocated, fsynced) and then renamed into place and the directory
//! fsynced, so a segment under its final name always has a complete header.

use crate::error::WalError;
use crate::format::segment_header::{HeaderError, SEGMENT_FLAGS_KNOWN};
use crate::format::{SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::storage::{Storage, StorageFile};
use std::path::{Path, PathBuf};

/// Extension of segment files.
pub const SEGMENT_EXT: &str = "wal";
/// Name of the lock file in a log directory.
pub const LOCK_FILE: &str = "LOCK";

/// A segment file found in a log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// First LSN, parsed from the name (and checked against the header when read).
    pub first_lsn: u64,
    /// Full path of the file.
    pub path: PathBuf,
}

/// The file name of the segment whose first LSN is `first_lsn`.
pub fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.{SEGMENT_EXT}")
}

/// Parses a segment file name; `None` for anything else.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Lists the segments of `dir` in LSN order. `.tmp` files of an interrupted segment
/// creation are returned separately so recovery can remove them.
pub fn list_segments(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<(Vec<SegmentFile>, Vec<PathBuf>), WalError> {
    match storage.is_dir(dir) {
        Ok(true) => {}
        Ok(false) => {
            return Err(WalError::NotADirectory {
                path: dir.to_path_buf(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(not_a_directory(storage, dir))
        }
        Err(e) => return Err(WalError::io("stat", dir, e)),
    }
    let names = storage
        .list(dir)
        .map_err(|e| WalError::io("list", dir, e))?;
    let mut segments = Vec::new();
    let mut temps = Vec::new();
    for name in names {
        if let Some(first_lsn) = parse_segment_name(&name) {
            segments.push(SegmentFile {
                first_lsn,
                path: dir.join(&name),
            });
        } else if name.ends_with(".wal.tmp") {
            temps.push(dir.join(&name));
        }
    }
    segments.sort_by_key(|s| s.first_lsn);
    Ok((segments, temps))
}

/// The error for a log path that cannot be a directory because one of its ancestors is
/// not one (`file/log`): `NotADirectory` naming the nearest ancestor that exists and is
/// not a directory, which is what the operator must fix (or `path` itself, if none is
/// found: the tree changed meanwhile).
pub(crate) fn not_a_directory(storage: &dyn Storage, path: &Path) -> WalError {
    let found = path
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .find_map(|a| match storage.is_dir(a) {
            Ok(is_dir) => Some((!is_dir).then(|| a.to_path_buf())),
            Err(_) => None,
        })
        .flatten();
    WalError::NotADirectory {
        path: found.unwrap_or_else(|| path.to_path_buf()),
    }
}

/// Why a segment named for `first_lsn` cannot be one, if it cannot: its first LSN lies
/// outside `1..=MAX_LSN` (a header's first LSN must equal its name's).
pub fn first_lsn_out_of_range(first_lsn: u64) -> Option<String> {
    (first_lsn == 0 || first_lsn > crate::format::MAX_LSN).then(|| {
        format!(
            "segment first LSN {first_lsn} lies outside 1..={}",
            crate::format::MAX_LSN
        )
    })
}

/// Checks the header at the start of `bytes` (a segment's first bytes) against the file it
/// came from: its name's first LSN, the magic, the CRC, the version and the flag bits.
pub fn check_header(file: &SegmentFile, bytes: &[u8]) -> Result<SegmentHeader, WalError> {
    let corrupt = |reason: String| WalError::Corruption {
        segment: file.path.clone(),
        offset: 0,
        reason,
    };
    if let Some(reason) = first_lsn_out_of_range(file.first_lsn) {
        return Err(corrupt(reason));
    }
    match SegmentHeader::decode(bytes) {
        Ok(h) if h.first_lsn == file.first_lsn => Ok(h),
        Ok(h) => Err(corrupt(format!(
            "header names first LSN {} but the file name says {}",
            h.first_lsn, file.first_lsn
        ))),
        Err(HeaderError::Short) => Err(corrupt("file is shorter than a segment header".into())),
        Err(HeaderError::BadMagic) => Err(WalError::NotASegment {
            path: file.path.clone(),
        }),
        Err(HeaderError::Crc) => Err(corrupt("segment header CRC mismatch".into())),
        Err(HeaderError::Version(found)) => Err(WalError::UnsupportedVersion {
            path: file.path.clone(),
            found,
            supported: crate::format::FORMAT_VERSION,
        }),
        Err(HeaderError::Flags(flags)) => Err(WalError::UnknownSegmentFlags {
            path: file.path.clone(),
            flags,
            known: SEGMENT_FLAGS_KNOWN,
        }),
    }
}

/// Reads and checks the header of a segment (its first 32 bytes only).
pub fn read_header(storage: &dyn Storage, file: &SegmentFile) -> Result<SegmentHeader, WalError> {
    let f = storage
        .open(&file.path, false)
        .map_err(|e| WalError::io("open", &file.path, e))?;
    let size = f
        .size_bytes()
        .map_err(|e| WalError::io("stat", &file.path, e))?;
    let mut buf = [0u8; SEGMENT_HEADER_BYTES];
    let n = SEGMENT_HEADER_BYTES.min(usize::try_from(size).unwrap_or(usize::MAX));
    f.read_exact_at(&mut buf[..n], 0)
        .map_err(|e| WalError::io("read", &file.path, e))?;
    check_header(file, &buf[..n])
}

/// Creates the segment whose first LSN is `first_lsn` and returns it open for writing.
///
/// Steps: write the header to `NAME.tmp`, preallocate `segment_size_bytes` (if asked),
/// `fsync` the file, rename it to `NAME`, `fsync` the directory. A crash at any step leaves
/// either no segment or a complete one (plus a `.tmp` file recovery removes).
pub fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    first_lsn: u64,
    segment_size_bytes: u64,
    preallocate: bool,
) -> Result<(SegmentFile, Box<dyn StorageFile>), WalError> {
    create_segment_with(
        storage,
        dir,
        first_lsn,
        segment_size_bytes,
        preallocate,
        0,
        &mut |_, _| Ok(()),
    )
}

/// Writes the frames of a segment being built, after its header: given the file (still under
/// its `.tmp` name, which is the path given) to write them into from offset 32.
pub type FillSegment<'a> = dyn FnMut(&dyn StorageFile, &Path) -> Result<(), WalError> + 'a;

/// [`create_segment`], with header `flags` (e.g. [`crate::format::SEGMENT_FLAG_REWRITE`]
/// for a segment that replaces the frames from `first_lsn` on in the segment before it)
/// and frames written by `fill` after the header before the segment gets its name: the
/// segment appears complete or not at all, even if it replaces one by that name.
pub fn create_segment_with(
    storage: &dyn Storage,
    dir: &Path,
    first_lsn: u64,
    segment_size_bytes: u64,
    preallocate: bool,
    flags: u32,
    fill: &mut FillSegment<'_>,
) -> Result<(SegmentFile, Box<dyn StorageFile>), WalError> {
    let name = segment_name(first_lsn);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut build = || -> Result<Box<dyn StorageFile>, WalError> {
        let file = storage
            .create(&tmp)
            .map_err(|e| WalError::io("create", &tmp, e))?;
        // Every segment this crate's writer makes is made beside a META (a new log's is
        // written before its first segment), and says so.
        let header =
            SegmentHeader::encode_full(first_lsn, flags, crate::format::SEGMENT_LOG_KEEPS_META);
        file.write_all_at(&header, 0)
            .map_err(|e| WalError::io("write header", &tmp, e))?;
        if preallocate {
            file.allocate(segment_size_bytes)
                .map_err(|e| WalError::io("fallocate", &tmp, e))?;
        }
        fill(file.as_ref(), &tmp)?;
        file.sync_all()
            .map_err(|e| WalError::io("fsync", &tmp, e))?;
        storage
            .rename(&tmp, &path)
            .map_err(|e| WalError::io("rename", &tmp, e))?;
        Ok(file)
    };
    let file = match build() {
        Ok(f) => f,
        Err(e) => {
            // Best effort: a leftover .tmp is also removed by recovery.
            let _ = storage.remove(&tmp);
            return Err(e);
        }
    };
    storage
        .sync_dir(dir)
        .map_err(|e| WalError::io("fsync dir", dir, e))?;
    tracing::debug!(first_lsn, path = %path.display(), "created segment");
    Ok((SegmentFile { first_lsn, path }, file))
}

/// The header of segment `first_lsn`, open as `f` (at `path`), decoded and checked.
pub(crate) fn header_of(
    f: &dyn StorageFile,
    path: &Path,
    first_lsn: u64,
) -> Result<SegmentHeader, WalError> {
    let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
    f.read_exact_at(&mut bytes, 0)
        .map_err(|e| WalError::io("read header", path, e))?;
    let file = SegmentFile {
        first_lsn,
        path: path.to_path_buf(),
    };
    check_header(&file, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(segment_name(1), "00000000000000000001.wal");
        assert_eq!(parse_segment_name(&segment_name(123456)), Some(123456));
        assert_eq!(parse_segment_name("LOCK"), None);
        assert_eq!(parse_segment_name("00000000000000000001.wal.tmp"), None);
        assert!(segment_name(9) < segment_name(10));
    }
}

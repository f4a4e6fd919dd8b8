//! The on-disk format under damage, as properties: a log cut at any byte of its last
//! segment reads back as an exact prefix and recovery goes on after it; a flipped bit in
//! any frame is detected, never returned as altered data (a torn tail in the last write
//! batch, corruption naming the frame before it), and `AbsoluteConsistency` refuses it.
//!
//! The geometry is small (segments of 1 KiB for the cuts, 8 KiB for the flips) so that
//! logs roll over into several segments; the proptest seed is fixed so that every run
//! checks the same cases.

#[path = "common/random_log.rs"]
mod random_log;

use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::storage::default_storage;
use actix_wal::{
    FsStorage, LogDir, LogOptions, LogWriter, Lsn, Record, RecoveryOptions, RecoveryPolicy,
    Storage, StorageFile, WalError,
};
use proptest::prelude::*;
use proptest::sample::Index;
use random_log::*;
use std::any::Any;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest record of the cut logs: small, so that the last segment has few bytes to cut at.
const CUT_MAX_RECORD_BYTES: u64 = 200;
/// Segment size of the cut logs: the whole (preallocated) last segment is cut at every byte.
const CUT_SEGMENT_SIZE_BYTES: u64 = 1024;

/// The real file system without `fsync`: the cut property recovers a log thousands of
/// times per case, and durability is not what it checks (the bytes and the recovery logic
/// are the same; only the flush to the device is skipped).
#[derive(Debug)]
struct NoSync;

#[derive(Debug)]
struct NoSyncFile(Box<dyn StorageFile>);

impl Storage for NoSync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        FsStorage.is_dir(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(NoSyncFile(FsStorage.create(path)?)))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(NoSyncFile(FsStorage.open(path, writable)?)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
        FsStorage.lock(path)
    }
}

impl StorageFile for NoSyncFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.0.size_bytes()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.0.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A frame as found by reading a good log.
#[derive(Debug, Clone)]
struct FrameInfo {
    /// First LSN of its segment.
    segment: u64,
    /// Offset of its header in that segment.
    offset: u64,
    /// Bytes it occupies (header and payload).
    bytes: u64,
    /// LSN of its first record.
    first_lsn: u64,
}

/// The frames of a log, from the records read back from it.
fn frames(records: &[Record]) -> Vec<FrameInfo> {
    let mut out: Vec<FrameInfo> = Vec::new();
    for r in records {
        let len = r.payload.len() as u64;
        match r.txn {
            Some(t) if t.index > 0 => {
                let f = out
                    .last_mut()
                    .expect("a transaction entry follows its first");
                f.bytes += 4 + len;
            }
            _ => out.push(FrameInfo {
                segment: u64::from(r.segment_first_lsn),
                offset: r.frame_offset,
                bytes: FRAME_HEADER_BYTES as u64 + len + if r.txn.is_some() { 4 } else { 0 },
                first_lsn: u64::from(r.lsn),
            }),
        }
    }
    out
}

fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(actix_wal::files::segment_name(first_lsn))
}

/// Every file of a directory, by name.
/// The log's files, its `META` copies with no floor under the durable end (N = 0): these
/// properties damage acknowledged frames of the last segment on purpose, to check the
/// frame format, and `META`'s floor would (rightly) call a segment cut down to no record
/// a lost newest segment (tests/checkpoint.rs checks that).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    use actix_wal::format::meta::LogMeta;
    fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            let mut bytes = fs::read(e.path()).expect("read");
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "META" || name == "META.copy" {
                let mut meta = LogMeta::decode(&bytes, u64::MAX).expect("META");
                meta.newest_lsn = 0;
                bytes = meta.encode(u64::MAX).expect("META");
            }
            (name, bytes)
        })
        .collect()
}

/// Makes `dir` hold exactly the files of `snap`.
fn restore(dir: &Path, snap: &BTreeMap<String, Vec<u8>>) {
    fs::create_dir_all(dir).expect("mkdir");
    for e in fs::read_dir(dir).expect("list") {
        let e = e.expect("entry");
        if !snap.contains_key(e.file_name().to_string_lossy().as_ref()) {
            fs::remove_file(e.path()).expect("remove");
        }
    }
    for (name, bytes) in snap {
        fs::write(dir.join(name), bytes).expect("write");
    }
}

fn last_segment(snap: &BTreeMap<String, Vec<u8>>) -> String {
    snap.keys()
        .filter(|n| n.ends_with(".wal"))
        .max()
        .expect("a segment")
        .clone()
}

proptest! {
    #![proptest_config(config(12, 0x5eed_0002))]

    #[test]
    fn cutting_the_last_segment_at_any_byte_reads_back_an_exact_prefix_and_recovery_continues(
        steps in prop::collection::vec(step(CUT_MAX_RECORD_BYTES as usize), 1..14),
        preallocate in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let golden = tmp.path().join("golden");
        let opts = options(CUT_SEGMENT_SIZE_BYTES, CUT_MAX_RECORD_BYTES, preallocate);
        let w = write_log(&golden, &steps, opts.clone());
        let opts = LogOptions { storage: Arc::new(NoSync), ..opts };
        let (all, err) = read_log(&golden, CUT_MAX_RECORD_BYTES);
        prop_assert!(err.is_none());
        let snap = snapshot(&golden);
        let last_name = last_segment(&snap);
        let last_first_lsn: u64 = last_name.trim_end_matches(".wal").parse().unwrap();
        let last_len = snap[&last_name].len() as u64;
        // Records in earlier segments survive any cut of the last one.
        let kept_always = all.iter().filter(|r| u64::from(r.segment_first_lsn) < last_first_lsn).count();
        let frames = frames(&all);

        let work = tmp.path().join("work");
        for cut in 0..=last_len {
            restore(&work, &snap);
            let last_path = work.join(&last_name);
            fs::OpenOptions::new().write(true).open(&last_path).unwrap().set_len(cut).unwrap();

            let (records, err) = read_log(&work, CUT_MAX_RECORD_BYTES);
            if cut < actix_wal::format::SEGMENT_HEADER_BYTES as u64 {
                // A segment gets its name only once its whole header is durable, so a
                // short header is damage, not a torn tail: an error naming the segment.
                prop_assert_eq!(payloads(&records), w.records[..kept_always].to_vec());
                match err {
                    Some(WalError::Corruption { segment, offset: 0, .. }) => {
                        prop_assert_eq!(segment, last_path.clone())
                    }
                    other => prop_assert!(false, "cut at {}: expected corruption, got {:?}", cut, other),
                }
                let refused = LogWriter::open(&work, opts.clone());
                prop_assert!(
                    matches!(refused, Err(WalError::Corruption { .. })),
                    "recovery over a short segment header must refuse"
                );
                continue;
            }
            // Exactly the records of the frames that end at or before the cut.
            let prefix = frames
                .iter()
                .find(|f| f.segment == last_first_lsn && f.offset + f.bytes > cut)
                .map_or(w.records.len(), |f| f.first_lsn as usize - 1);
            prop_assert!(err.is_none(), "cut at {}: {:?}", cut, err);
            prop_assert_eq!(payloads(&records), w.records[..prefix].to_vec(), "cut at {}", cut);
            for (i, r) in records.iter().enumerate() {
                prop_assert_eq!(r.lsn, Lsn(i as u64 + 1));
            }

            // Recovery cuts what is left of a partial frame and continues at the next LSN.
            let (mut log, outcome) = LogWriter::open(&work, opts.clone()).unwrap();
            prop_assert_eq!(outcome.next_lsn, Lsn(prefix as u64 + 1), "cut at {}", cut);
            prop_assert_eq!(outcome.records, prefix as u64);
            let lsn = log.append(b"continues").unwrap();
            log.sync().unwrap();
            drop(log);
            prop_assert_eq!(lsn, Lsn(prefix as u64 + 1));
            let (records, err) = read_log(&work, CUT_MAX_RECORD_BYTES);
            prop_assert!(err.is_none(), "after recovery from a cut at {}: {:?}", cut, err);
            let mut expected = w.records[..prefix].to_vec();
            expected.push(b"continues".to_vec());
            prop_assert_eq!(payloads(&records), expected);
        }
    }
}

/// A bit to flip: which frame (of the whole log) and which bit of it.
fn flip_strategy() -> impl Strategy<Value = Vec<(Index, Index)>> {
    prop::collection::vec((any::<Index>(), any::<Index>()), 8)
}

proptest! {
    #![proptest_config(config(64, 0x5eed_0003))]

    #[test]
    fn flipping_any_bit_of_any_frame_is_detected(
        steps in prop::collection::vec(step(MAX_RECORD_BYTES as usize), 1..40),
        flips in flip_strategy(),
        preallocate in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let golden = tmp.path().join("golden");
        let opts = options(SEGMENT_SIZE_BYTES, MAX_RECORD_BYTES, preallocate);
        let w = write_log(&golden, &steps, opts.clone());
        let (all, _) = read_log(&golden, MAX_RECORD_BYTES);
        let snap = snapshot(&golden);
        let last_first_lsn: u64 =
            last_segment(&snap).trim_end_matches(".wal").parse().unwrap();
        let last_batch = w.batches.last().unwrap().clone();
        let frames = frames(&all);
        let work = tmp.path().join("work");

        for (frame_ix, bit_ix) in flips {
            let f = frame_ix.get(&frames).clone();
            let bit = bit_ix.index(f.bytes as usize * 8);
            restore(&work, &snap);
            let path = segment_path(&work, f.segment);
            let mut bytes = fs::read(&path).unwrap();
            bytes[f.offset as usize + bit / 8] ^= 1 << (bit % 8);
            fs::write(&path, &bytes).unwrap();
            let before = snapshot(&work);
            let intact = w.records[..f.first_lsn as usize - 1].to_vec();

            // The reader: the records before the damaged frame, then either an error naming
            // that frame or, when only the last write batch (in the last segment) can
            // explain it, a clean end there (a torn tail).
            let (records, err) = read_log(&work, MAX_RECORD_BYTES);
            prop_assert_eq!(payloads(&records), intact.clone(), "flip of bit {} in frame at {}:{}", bit, f.segment, f.offset);
            let torn = f.segment == last_first_lsn && last_batch.contains(&f.first_lsn);
            if torn {
                prop_assert!(err.is_none(), "flip in the last batch: expected a torn tail, got {:?}", err);
            } else {
                match err {
                    Some(WalError::Corruption { segment, offset, .. }) => {
                        prop_assert_eq!(segment, path.clone());
                        prop_assert_eq!(offset, f.offset);
                    }
                    other => prop_assert!(false, "flip of bit {} in frame at {}:{}: expected corruption, got {:?}", bit, f.segment, f.offset, other),
                }
            }

            // AbsoluteConsistency refuses every flip and changes nothing.
            {
                let dir = LogDir::open(&work, default_storage()).unwrap();
                let res = dir.recover(&RecoveryOptions {
                    policy: RecoveryPolicy::AbsoluteConsistency,
                    max_record_bytes: MAX_RECORD_BYTES,
                    preallocate_bytes: if preallocate { SEGMENT_SIZE_BYTES } else { 0 },
                });
                match res {
                    Err(e) => prop_assert!(e.is_corruption(), "{}", e),
                    Ok(o) => prop_assert!(false, "AbsoluteConsistency accepted a flipped bit: {:?}", o),
                }
            }
            prop_assert!(snapshot(&work) == before, "AbsoluteConsistency modified the log");

            // The default policy cuts a torn last batch and refuses anything else.
            match LogWriter::open(&work, opts.clone()) {
                Ok((_, outcome)) => {
                    prop_assert!(torn, "default recovery accepted mid-log damage");
                    prop_assert_eq!(outcome.next_lsn, Lsn(f.first_lsn));
                    prop_assert!(outcome.bytes_cut > 0);
                }
                Err(e) => {
                    prop_assert!(!torn, "default recovery refused a torn tail: {}", e);
                    prop_assert!(e.is_corruption(), "{}", e);
                }
            }
        }
    }
}

//! `walctl meta` and `walctl repair-meta`: the log's metadata file (`META`, two copies)
//! shown, and repaired explicitly (docs/operations.md, "A damaged META"); and where the
//! log starts, as `META` says, for `verify`.

use super::Failure;
use actix_wal::files::{read_meta_copies, CopyState, MetaRead};
use actix_wal::files::{read_meta_copy, META_COPY_FILE, META_FILE};
use actix_wal::format::meta::{LogMeta, MetaIntent};
use actix_wal::storage::{default_storage, FsStorage};
use actix_wal::WalError;
use actix_wal::{LogDir, LogReader};
use std::io::{self, Write};
use std::path::Path;

/// A directory that is there, or why not (exit 2).
fn existing(dir: &Path) -> Result<(), Failure> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::Failed(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Err(e) => Err(Failure::Failed(format!("{}: {e}", dir.display()))),
    }
}

fn wal_failure(e: WalError) -> Failure {
    if e.is_corruption() {
        Failure::Damaged(e.to_string())
    } else {
        Failure::Failed(e.to_string())
    }
}

/// One copy's state, read on its own.
fn copy_state(dir: &Path, name: &str) -> Result<CopyState, Failure> {
    match read_meta_copy(&FsStorage, &dir.join(name)) {
        Ok(Some(m)) => Ok(CopyState::Current(m.seq)),
        Ok(None) => Ok(CopyState::Missing),
        Err(WalError::Corruption { reason, .. }) => Ok(CopyState::Damaged(reason)),
        Err(e) => Err(wal_failure(e)),
    }
}

fn intent(i: MetaIntent) -> String {
    match i {
        MetaIntent::None => "none".into(),
        MetaIntent::TruncateAfter(x) => format!("truncate after LSN {x} (pending)"),
        MetaIntent::Reset(n) => format!("reset to LSN {n} (pending)"),
    }
}

fn print_value(out: &mut impl Write, m: &LogMeta) -> io::Result<()> {
    writeln!(out, "seq: {}", m.seq)?;
    writeln!(out, "first lsn: {}", m.first_lsn)?;
    match m.newest_lsn {
        0 => writeln!(out, "newest segment: none")?,
        n => writeln!(out, "newest segment: {n}")?,
    }
    writeln!(out, "intent: {}", intent(m.intent))?;
    match &m.slot {
        None => writeln!(out, "slot: none")?,
        Some(s) => writeln!(out, "slot: {} bytes", s.len())?,
    }
    if m.slot_gen > 0 {
        // Version 3: `set_meta` writes later values into the log as slot frames.
        writeln!(out, "slot generation: {}", m.slot_gen)?;
    }
    writeln!(out, "checkpoint: {}", m.checkpoint())?;
    writeln!(out, "cursors: {}", m.cursors.len())?;
    for c in &m.cursors {
        let state = if c.invalidated {
            "invalidated"
        } else {
            "valid"
        };
        writeln!(out, "cursor {}: lsn {}, {state}", c.name, c.lsn)?;
    }
    Ok(())
}

/// With `META` version 3, the slot's newer value in the log's slot frames, if there is
/// one (the slot is the value of highest generation: docs/format.md, "Slot frames").
fn print_log_slot(out: &mut impl Write, dir: &Path, m: &LogMeta) -> io::Result<()> {
    if m.slot_gen == 0 {
        return Ok(());
    }
    let mut reader = match actix_wal::LogReader::open(dir) {
        Ok(r) => r,
        Err(e) => return writeln!(out, "slot frames: not read ({e})"),
    };
    for r in reader.by_ref() {
        if let Err(e) = r {
            return writeln!(out, "slot frames: not read to the end ({e})");
        }
    }
    match reader.slot_frame() {
        Some((generation, bytes)) if generation > m.slot_gen => writeln!(
            out,
            "slot in the log: {} bytes, generation {generation} (the value in force)",
            bytes.len()
        ),
        _ => writeln!(
            out,
            "slot in the log: none newer (META's is the value in force)"
        ),
    }
}

/// The log in `dir` as the reader opens it (`META` checked as recovery checks it before
/// its scan): an error if there is no log (exit 2) or one whose `META` was lost (exit 1).
/// Breaches only a scan finds (a newest segment missing) are `verify`'s.
pub fn log_there(dir: &Path) -> Result<(), Failure> {
    match actix_wal::LogReader::open(dir) {
        Ok(r) if !r.found_log() => Err(Failure::Failed(format!(
            "no actix-wal log in {}",
            dir.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(wal_failure(e)),
    }
}

/// `walctl meta DIR` on a directory with no copy of `META`: no log at all (exit 2), a log
/// whose `META` was lost (its newest segment was written beside one: exit 1, as recovery
/// refuses it), or a log written before `META` existed (exit 0).
fn no_meta(dir: &Path, out: &mut impl Write) -> Result<(), Failure> {
    match actix_wal::LogReader::open(dir) {
        Ok(r) if !r.found_log() => Err(Failure::Failed(format!(
            "no actix-wal log in {}",
            dir.display()
        ))),
        Ok(_) => writeln!(
            out,
            "no META: a log written before it existed (the next open writes one)"
        )
        .map_err(Failure::output),
        Err(e) => Err(wal_failure(e)),
    }
}

/// Reads both copies of `META` as recovery takes them, and again (up to
/// [`META_READS`] times in all, [`META_READ_GAP_MS`] apart) while they disagree or one is
/// damaged or missing: beside a live writer, a replace writes `META.copy`, then `META`,
/// so a read between the two finds `META` stale (or a copy half written). Damage in a
/// closed log reads the same every time, and is reported.
fn read_settled(dir: &Path) -> Result<MetaRead, WalError> {
    let mut reads = 1;
    loop {
        let read = read_meta_copies(&FsStorage, dir);
        let settled = matches!(&read, Ok(r) if r.problem().is_none());
        if settled || reads >= META_READS {
            return read;
        }
        reads += 1;
        std::thread::sleep(std::time::Duration::from_millis(META_READ_GAP_MS));
    }
}

/// Reads of `META` in all before `walctl meta` reports copies that disagree.
const META_READS: u32 = 5;
/// Time between two reads of `META`, ms: more than a replace of `META` takes (two small
/// writes, each `fsync`ed), so that reads do not all fall inside one.
const META_READ_GAP_MS: u64 = 20;

/// `walctl meta DIR`.
pub fn show(dir: &Path, out: &mut impl Write) -> Result<(), Failure> {
    existing(dir)?;
    match read_settled(dir) {
        Ok(read) => {
            let w = (|| -> io::Result<()> {
                writeln!(out, "{META_FILE}: {}", read.main)?;
                writeln!(out, "{META_COPY_FILE}: {}", read.copy)?;
                match &read.meta {
                    Some(m) => {
                        print_value(out, m)?;
                        print_log_slot(out, dir, m)
                    }
                    None => Ok(()),
                }
            })();
            w.map_err(Failure::output)?;
            if read.meta.is_none() {
                return no_meta(dir, out);
            }
            match read.problem() {
                Some(p) => Err(Failure::Damaged(format!(
                    "{p}; `walctl repair-meta` writes both copies back (so does the next open)"
                ))),
                None => Ok(()),
            }
        }
        Err(e) if e.is_corruption() => {
            let main = copy_state(dir, META_FILE)?;
            let copy = copy_state(dir, META_COPY_FILE)?;
            let w = (|| -> io::Result<()> {
                writeln!(out, "{META_FILE}: {main}")?;
                writeln!(out, "{META_COPY_FILE}: {copy}")
            })();
            w.map_err(Failure::output)?;
            Err(wal_failure(e))
        }
        Err(e) => Err(wal_failure(e)),
    }
}

/// Both copies whole, under the same seq, with different values: the seq, if so. This
/// build never leaves that (it writes `META.copy`, then `META`, the same bytes); a build
/// from before `META.copy` does, after a crash between this build's two writes: it reads
/// `META` alone (the older value) and its own replace writes `META` under the seq
/// `META.copy` already had.
fn one_seq_two_values(dir: &Path) -> Option<u64> {
    let read = |name: &str| read_meta_copy(&FsStorage, &dir.join(name)).ok().flatten();
    match (read(META_FILE), read(META_COPY_FILE)) {
        (Some(main), Some(copy)) if main.seq == copy.seq && main != copy => Some(main.seq),
        _ => None,
    }
}

/// What to do about [`one_seq_two_values`]: nothing walctl can decide for the operator.
fn tie_advice(seq: u64) -> String {
    format!(
        "both copies of META are whole but hold different values under the same seq {seq}: \
         this build never writes that; a build from before META.copy (2026-11) does, when it \
         opens the log after a crash between this build's writes of META.copy and META (it \
         reads and writes META alone). META is the value that build last wrote, the one the \
         segments it wrote follow: keep it with `cp META META.copy` (or the copy, with \
         `cp META.copy META`), then open the log. `walctl meta` shows both"
    )
}

/// `walctl repair-meta DIR [--without-slot]`.
pub fn repair(dir: &Path, without_slot: bool, out: &mut impl Write) -> Result<(), Failure> {
    existing(dir)?;
    // Neither a segment nor a copy of META (whole or not): no log to repair, and no LOCK
    // left behind in a directory that held none.
    let segments = actix_wal::files::list_segments(&FsStorage, dir).map_err(wal_failure)?;
    let any_meta = [META_FILE, META_COPY_FILE]
        .iter()
        .any(|name| dir.join(name).exists());
    if segments.0.is_empty() && !any_meta {
        return Err(Failure::Failed(format!(
            "no actix-wal log in {}",
            dir.display()
        )));
    }
    // The log's lock: no writer may replace META meanwhile.
    let log = LogDir::open(dir, default_storage()).map_err(wal_failure)?;
    let lost = match log.reload_meta() {
        Ok(read) if read.is_whole() && read.meta.is_some() => {
            let seq = read.meta.map_or(0, |m| m.seq);
            return writeln!(out, "META is whole (seq {seq}): nothing to repair")
                .map_err(Failure::output);
        }
        Ok(read) if read.meta.is_some() => {
            let problem = read.problem().unwrap_or_default();
            log.update_meta(|_| {}).map_err(wal_failure)?;
            return writeln!(out, "repaired: {problem}; both copies written")
                .map_err(Failure::output);
        }
        Ok(_) => format!("{} has no copy of META", dir.display()),
        Err(e) if e.is_corruption() => match one_seq_two_values(dir) {
            Some(seq) => return Err(Failure::Damaged(tie_advice(seq))),
            None => e.to_string(),
        },
        Err(e) => return Err(wal_failure(e)),
    };
    if !without_slot {
        return Err(Failure::Damaged(format!(
            "no whole copy of META is left ({lost}); its slot (the application's metadata, \
             a Raft vote say) cannot be known: if the application never set one or accepts \
             losing it, run `walctl repair-meta --without-slot`"
        )));
    }
    let (segments, _) = log.list().map_err(wal_failure)?;
    let Some(first) = segments.first().map(|s| s.first_lsn) else {
        return Err(Failure::Damaged(format!(
            "no whole copy of META and no segment: nothing to rebuild it from ({lost})"
        )));
    };
    for name in [META_FILE, META_COPY_FILE] {
        let from = dir.join(name);
        if from.exists() {
            let to = dir.join(format!("{name}.damaged"));
            std::fs::rename(&from, &to)
                .map_err(|e| Failure::Failed(format!("rename {}: {e}", from.display())))?;
        }
    }
    log.reload_meta().map_err(wal_failure)?;
    log.update_meta(|m| {
        m.first_lsn = first;
        m.newest_lsn = 0;
        m.intent = MetaIntent::None;
        m.slot = None;
    })
    .map_err(wal_failure)?;
    // No slot means none from the log either: the slot frames `set_meta` wrote there may
    // be older than the value lost with META (a rewind cuts the newest frame once META
    // holds its value), and recovery takes a frame whose generation is above META's.
    let slot_gen = newest_slot_frame_generation(dir);
    if slot_gen > 0 {
        log.update_meta(|m| m.slot_gen = m.slot_gen.max(slot_gen))
            .map_err(wal_failure)?;
    }
    let said = format!(
        "rebuilt META without a slot: first LSN {first} (the first segment's, also the \
         checkpoint), no newest-segment floor, no cursors (their consumers get \
         CursorNotFound and create them again), slot generation {slot_gen} (the slot \
         values the log holds are not taken back); any damaged copy is kept as \
         META.damaged or META.copy.damaged"
    );
    writeln!(out, "{said}").map_err(Failure::output)
}

/// The highest generation among the slot frames in the log at `dir` (0 if none), read
/// up to its end or its first damage: a salvage keeps only frames before the damage, and
/// every later open refuses the log at it otherwise.
fn newest_slot_frame_generation(dir: &Path) -> u64 {
    let Ok(mut reader) = LogReader::open_with(dir, default_storage(), u64::from(u32::MAX)) else {
        return 0;
    };
    for item in reader.by_ref() {
        if item.is_err() {
            break;
        }
    }
    reader.slot_frame().map_or(0, |(generation, _)| generation)
}

/// Where the log starts and why: `META`'s first LSN (`start_lsn`, 0 for a log without
/// `META`), and the first segment file. Without `META`, a first segment above LSN 1 looks
/// the same whether a checkpoint truncated the segments before it or they were deleted
/// by hand, so both are named.
pub fn log_start(first_path: &Path, first_lsn: u64, start_lsn: u64) -> String {
    let name = super::file_name(first_path);
    if start_lsn > 0 && first_lsn > start_lsn {
        format!(
            "log starts at LSN {}: the first segment file is {name}, but META's first LSN is \
             {start_lsn}: records {start_lsn}..{} are missing",
            first_lsn,
            first_lsn - 1
        )
    } else if start_lsn > 1 {
        format!(
            "log starts at LSN {start_lsn} (META's first LSN: records below it were removed \
             by truncate_before); the first segment file is {name}, from LSN {}",
            first_lsn
        )
    } else if first_lsn <= 1 {
        format!(
            "log starts at LSN {}: the first segment file is {name}, the beginning of the log",
            first_lsn
        )
    } else {
        format!(
            "log starts at LSN {}: the first segment file is {name}; the log has no META: \
             records below it were removed by truncate_before, or its earlier segments are \
             missing",
            first_lsn
        )
    }
}

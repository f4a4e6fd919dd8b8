//! `walctl`: inspect an actix-wal log directory. Every command but `repair-meta` only
//! reads: it takes no lock and modifies nothing, so it is safe to run on a log that is
//! open elsewhere (a torn tail it reports may then just be a batch still being written).
//!
//! ```text
//! walctl verify DIR [--strict]            check every frame, print a summary
//! walctl dump DIR [--json] [--payload [--utf8]]
//!                                          one line per record: LSN, length, frame CRC
//! walctl stat DIR                          segments, records, bytes, first and last LSN
//! walctl meta DIR                          the log's metadata (META): both copies, the
//!                                          first LSN, newest segment, intent, slot, seq
//! walctl cursors DIR [--json]              cursors, checkpoint, bytes below it
//! walctl repair-meta DIR [--without-slot]  write both copies of META back from the
//!                                          newest whole one (takes the log's lock)
//! ```
//!
//! `verify`, `dump` and `stat` take `--max-record-bytes N`: a frame header claiming a
//! longer payload is damage (this must be at least the `max_record_bytes` the log was
//! written with).
//!
//! It reads as the user running it: a log's files are private to the user that wrote it
//! (0600 in a 0700 directory; 0640 and 0750 with `WalConfig::group_read`), so run it as
//! that user, a member of its group with `group_read`, or root; anyone else gets a
//! permission error (exit code 2).
//!
//! Exit codes: 0 success; 1 the log is damaged (corruption naming segment and offset, a
//! file that is not a segment, a format version this build does not read, under
//! `verify --strict` a torn tail, a copy of `META` damaged, missing or stale for
//! `meta`, and a repair `repair-meta` refuses); 2 bad usage, no log in the directory,
//! the log open elsewhere (`repair-meta`), or an I/O error. Errors are one line on
//! stderr.

use actix_wal::files::SegmentEnd;
use actix_wal::files::DEFAULT_MAX_RECORD_BYTES;
use actix_wal::format::meta::MetaIntent;
use actix_wal::format::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use actix_wal::{LogReader, Lsn, Record, WalError};
use clap::{Args, Parser, Subcommand};
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `walctl cursors`.
#[path = "walctl/cursors_cmd.rs"]
mod cursors_cmd;
/// `walctl dump`.
#[path = "walctl/dump_cmd.rs"]
mod dump_cmd;
/// `walctl meta` and `walctl repair-meta`.
#[path = "walctl/meta_cmd.rs"]
mod meta_cmd;

/// Command line of `walctl`.
#[derive(Debug, Parser)]
#[command(
    name = "walctl",
    version,
    about = "Inspect an actix-wal log directory (read-only, but for repair-meta)"
)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Read every frame and print a summary; exit 1 if the log is damaged.
    Verify {
        /// The log to read.
        #[command(flatten)]
        log: LogArgs,
        /// Treat a torn tail (which recovery would cut) as damage too, as the
        /// AbsoluteConsistency recovery policy does.
        #[arg(long)]
        strict: bool,
    },
    /// Print one line per record: LSN, payload length, frame CRC.
    Dump {
        /// The log to read.
        #[command(flatten)]
        log: LogArgs,
        /// Print JSON lines (one object per record) instead of text.
        #[arg(long)]
        json: bool,
        /// Include the payload, as hex (or as text with `--utf8`).
        #[arg(long)]
        payload: bool,
        /// Show payloads as UTF-8 text (invalid sequences replaced, control characters
        /// escaped) instead of hex.
        #[arg(long, requires = "payload")]
        utf8: bool,
    },
    /// Print segments (name, first LSN, records, bytes on disk) and totals.
    Stat {
        /// The log to read.
        #[command(flatten)]
        log: LogArgs,
    },
    /// Print the log's metadata (META): each copy's state, then the value taken (first
    /// LSN, newest segment, intent, slot length, seq); exit 1 if a copy is damaged,
    /// missing or stale.
    Meta {
        /// The log directory.
        dir: PathBuf,
    },
    /// Print the named cursors (LSN, state, bytes of segments each holds), the first LSN,
    /// the checkpoint and the bytes below it (what cursors and retention keep).
    Cursors {
        /// The log directory.
        dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write both copies of META back from the newest whole one (a damaged, missing or
    /// stale copy repaired). Takes the log's lock: refused while the log is open.
    RepairMeta {
        /// The log directory.
        dir: PathBuf,
        /// When no copy is whole: write a new META without a slot (first LSN: the first
        /// segment's; no newest-segment floor), the damaged copies kept aside as
        /// `META.damaged` and `META.copy.damaged`. Without it, such a repair is refused:
        /// the slot (a Raft vote, say) cannot be known, and must not be invented.
        #[arg(long)]
        without_slot: bool,
    },
}

/// Arguments every command takes.
#[derive(Debug, Args)]
struct LogArgs {
    /// The log directory.
    dir: PathBuf,
    /// Largest frame payload accepted, in bytes; a frame header claiming more is damage.
    /// Must be at least the `max_record_bytes` the log was written with.
    #[arg(
        long,
        default_value_t = DEFAULT_MAX_RECORD_BYTES,
        value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX))
    )]
    max_record_bytes: u64,
}

/// Why a command failed; each maps to one exit code and one line on stderr.
#[derive(Debug)]
enum Failure {
    /// The log is damaged (exit 1).
    Damaged(String),
    /// The command could not run: no log, I/O error, bad input (exit 2).
    Failed(String),
    /// A file went while it was read: a live writer removed or renamed it (exit 2).
    Moved(String),
    /// Standard output was closed (`walctl dump DIR | head`): stop quietly (exit 0).
    OutputClosed,
}

impl Failure {
    fn code(&self) -> ExitCode {
        match self {
            Failure::Damaged(_) => ExitCode::from(1),
            Failure::Failed(_) | Failure::Moved(_) => ExitCode::from(2),
            Failure::OutputClosed => ExitCode::SUCCESS,
        }
    }

    /// A failure of the log itself, with how far reading got before it.
    fn from_wal(e: WalError, progress: &Summary) -> Failure {
        let after = match progress.last_lsn {
            Some(last) => format!(
                " (after {} intact records, last LSN {last})",
                progress.records
            ),
            None => String::new(),
        };
        let gone =
            matches!(&e, WalError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound);
        if e.is_corruption() {
            Failure::Damaged(format!("{e}{after}"))
        } else if gone {
            Failure::Moved(format!("{e}{after}"))
        } else {
            Failure::Failed(format!("{e}{after}"))
        }
    }

    fn output(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::OutputClosed
        } else {
            Failure::Failed(format!("writing to standard output: {e}"))
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Damaged(m) => write!(f, "damaged log: {m}"),
            Failure::Failed(m) => write!(f, "error: {m}"),
            Failure::Moved(m) => write!(f, "error: {m} (the log changed while it was read)"),
            Failure::OutputClosed => f.write_str("standard output closed"),
        }
    }
}

/// One segment as seen while reading.
#[derive(Debug)]
struct SegmentStat {
    /// The file.
    path: PathBuf,
    /// First LSN, from the file name.
    first_lsn: u64,
    /// Records read from it.
    records: u64,
    /// The file's size (preallocated segments count in full).
    bytes_on_disk: u64,
    /// Offset just past its last whole frame: where a torn tail starts.
    frames_end: u64,
}

/// What reading a log found, so far.
#[derive(Debug, Default)]
struct Summary {
    /// Every segment file of the log, in LSN order.
    segments: Vec<SegmentStat>,
    /// Records read.
    records: u64,
    /// Transactions read (each counts its entries in `records` too).
    transactions: u64,
    /// Payload bytes of the records read.
    payload_bytes: u64,
    /// Bytes of segment headers and whole frames.
    frame_bytes: u64,
    /// Sum of the segment files' sizes.
    bytes_on_disk: u64,
    /// LSN of the first record read.
    first_lsn: Option<u64>,
    /// LSN of the last record read.
    last_lsn: Option<u64>,
    /// How the last segment ended.
    tail: Option<SegmentEnd>,
    /// What recovery will do that the files do not show yet (an adopted spare, an
    /// unfinished rewind or reset), one line each: the reader already reads the log so.
    pending: Vec<String>,
    /// The log's first LSN as `META` gives it (0: the log has no `META`).
    start_lsn: u64,
    /// Index in `segments` of the segment the last record came from: records arrive in
    /// segment order, so finding the next one's segment only ever looks forward.
    current: usize,
}

impl Summary {
    fn add(&mut self, r: &Record) {
        let lsn = u64::from(r.lsn);
        let len = r.payload.len() as u64;
        self.first_lsn.get_or_insert(lsn);
        self.last_lsn = Some(lsn);
        self.records += 1;
        self.payload_bytes += len;
        // A transaction is one frame: its header counts once, each entry adds a 4-byte
        // length before its bytes.
        let bytes = match r.txn {
            None => FRAME_HEADER_BYTES as u64 + len,
            Some(t) if t.index == 0 => {
                self.transactions += 1;
                FRAME_HEADER_BYTES as u64 + 4 + len
            }
            Some(_) => 4 + len,
        };
        self.frame_bytes += bytes;
        let seg_lsn = u64::from(r.segment_first_lsn);
        while self
            .segments
            .get(self.current)
            .is_some_and(|s| s.first_lsn != seg_lsn)
        {
            self.current += 1;
        }
        if let Some(seg) = self.segments.get_mut(self.current) {
            seg.records += 1;
            let start = match r.txn {
                Some(t) if t.index > 0 => seg.frames_end,
                _ => r.frame_offset,
            };
            seg.frames_end = start + bytes;
        }
    }

    fn lsn(v: Option<u64>) -> String {
        v.map_or_else(|| "none".to_string(), |l| l.to_string())
    }
}

/// `LogReader`'s `NoLog` for a directory that holds `META` but no segment: when `META`
/// says a segment held acknowledged records, recovery refuses the log as lost, and so
/// does walctl (damage, exit 1, in recovery's words), rather than answer as for a wrong
/// path; otherwise there is no log to read (exit 2).
fn lost_or_no_log(dir: PathBuf, progress: &Summary) -> Failure {
    let storage = actix_wal::storage::FsStorage;
    // Recovery's own check of `META` against a log with no segment.
    let breach = actix_wal::files::read_meta(&storage, &dir)
        .ok()
        .flatten()
        .and_then(|m| actix_wal::files::meta_breach(&m, None, 0));
    let err = match breach {
        Some(b) => WalError::Corruption {
            segment: dir.join(actix_wal::files::META_FILE),
            offset: 0,
            reason: b.reason(),
        },
        None => WalError::NoLog { path: dir },
    };
    Failure::from_wal(err, progress)
}

/// Reads the whole log in `args.dir`, calling `each` on every record, and returns what it
/// found. Stops at the first damage.
fn walk(
    args: &LogArgs,
    mut each: impl FnMut(&Record) -> Result<(), Failure>,
) -> Result<Summary, Failure> {
    let mut summary = Summary::default();
    let opened = LogReader::open_with(
        &args.dir,
        actix_wal::storage::default_storage(),
        args.max_record_bytes,
    );
    let mut reader = match opened {
        Err(WalError::NoLog { path }) => return Err(lost_or_no_log(path, &summary)),
        opened => opened.map_err(|e| Failure::from_wal(e, &summary))?,
    };
    // `LogReader` reads a missing or empty directory as an empty log (a first start);
    // asked to inspect one, walctl says there is no log there.
    if !reader.found_log() {
        let no_log = WalError::NoLog {
            path: args.dir.clone(),
        };
        return Err(Failure::from_wal(no_log, &summary));
    }
    // The log as recovery will leave it (LogReader applies recovery's rules, read-only):
    // said, so that an operator knows why it differs from the files' names.
    if let Some(a) = reader.adopted_spare() {
        summary.pending.push(format!(
            "adopts the written spare {} as segment {} (its rename was lost in a crash)",
            file_name(&a.spare),
            file_name(&a.segment.path)
        ));
    }
    match reader.pending_intent() {
        MetaIntent::None => {}
        MetaIntent::TruncateAfter(x) => summary.pending.push(format!(
            "completes a rewind (truncate_after) to LSN {x} a crash interrupted: later records are not read"
        )),
        MetaIntent::Reset(n) => summary.pending.push(format!(
            "completes a reset a crash interrupted: the log is empty and goes on at LSN {n}"
        )),
    }
    for seg in reader.segment_files() {
        let path = &seg.path;
        let bytes_on_disk = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Failure::Moved(format!("stat {}: {e}", path.display())))
            }
            Err(e) => return Err(Failure::Failed(format!("stat {}: {e}", path.display()))),
        };
        summary.bytes_on_disk += bytes_on_disk;
        summary.frame_bytes += SEGMENT_HEADER_BYTES as u64;
        summary.segments.push(SegmentStat {
            path: path.clone(),
            first_lsn: seg.first_lsn,
            records: 0,
            bytes_on_disk,
            frames_end: SEGMENT_HEADER_BYTES as u64,
        });
    }
    for item in reader.by_ref() {
        let record = item.map_err(|e| Failure::from_wal(e, &summary))?;
        summary.add(&record);
        each(&record)?;
    }
    summary.tail = reader.tail_end();
    summary.start_lsn = u64::from(reader.start_lsn());
    // Where each segment's frames really end (compressed frames are shorter on disk than
    // their records, slot frames hold none): the reader's scan says, where it got there.
    let mut ends = 0;
    for seg in &mut summary.segments {
        if let Some(end) = reader.frames_end(Lsn(seg.first_lsn)) {
            seg.frames_end = end;
            ends += 1;
        }
    }
    if ends == summary.segments.len() {
        summary.frame_bytes = summary.segments.iter().map(|s| s.frames_end).sum();
    }
    Ok(summary)
}

/// [`walk`] for a command that prints nothing per record (`verify`, `stat`): read again,
/// up to 5 times in all, when a file went meanwhile (a live writer's checkpoint or
/// rollover removes or renames files between the listing and the read).
fn walk_settled(log: &LogArgs) -> Result<Summary, Failure> {
    let mut tries = 1;
    loop {
        match walk(log, |_| Ok(())) {
            Err(Failure::Moved(_)) if tries < 5 => tries += 1,
            done => return done,
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn verify(log: &LogArgs, strict: bool, out: &mut impl Write) -> Result<(), Failure> {
    let s = walk_settled(log)?;
    let last_seg = s.segments.last();
    let tail = match (s.tail, last_seg) {
        (Some(SegmentEnd::TornTail { garbage_bytes }), Some(seg)) => {
            let msg = format!(
                "torn tail in {} at offset {}: {garbage_bytes} bytes after the last whole frame",
                seg.path.display(),
                seg.frames_end
            );
            if strict {
                return Err(Failure::Damaged(format!("{msg} (--strict)")));
            }
            format!("torn ({msg}; recovery cuts them)")
        }
        _ => "clean".to_string(),
    };
    let w = (|| -> io::Result<()> {
        writeln!(out, "ok: {}", log.dir.display())?;
        writeln!(out, "segments: {}", s.segments.len())?;
        writeln!(
            out,
            "records: {} ({} transactions)",
            s.records, s.transactions
        )?;
        writeln!(out, "payload bytes: {}", s.payload_bytes)?;
        writeln!(out, "frame bytes: {}", s.frame_bytes)?;
        writeln!(out, "bytes on disk: {}", s.bytes_on_disk)?;
        writeln!(out, "first lsn: {}", Summary::lsn(s.first_lsn))?;
        writeln!(out, "last lsn: {}", Summary::lsn(s.last_lsn))?;
        if let Some(first) = s.segments.first() {
            writeln!(
                out,
                "start: {}",
                meta_cmd::log_start(&first.path, first.first_lsn, s.start_lsn)
            )?;
        }
        writeln!(out, "tail: {tail}")?;
        for p in &s.pending {
            writeln!(out, "recovery: {p}")?;
        }
        Ok(())
    })();
    w.map_err(Failure::output)
}

fn stat(log: &LogArgs, out: &mut impl Write) -> Result<(), Failure> {
    let s = walk_settled(log)?;
    let w = (|| -> io::Result<()> {
        writeln!(
            out,
            "{:<26} {:>20} {:>10} {:>14}",
            "segment", "first_lsn", "records", "bytes"
        )?;
        for seg in &s.segments {
            writeln!(
                out,
                "{:<26} {:>20} {:>10} {:>14}",
                file_name(&seg.path),
                seg.first_lsn,
                seg.records,
                seg.bytes_on_disk
            )?;
        }
        writeln!(out, "segments: {}", s.segments.len())?;
        let start = match (s.start_lsn, s.segments.first()) {
            (0, Some(first)) => first.first_lsn,
            (start, _) => start,
        };
        writeln!(out, "log starts at: {start}")?;
        writeln!(out, "records: {}", s.records)?;
        writeln!(out, "bytes on disk: {}", s.bytes_on_disk)?;
        writeln!(out, "first lsn: {}", Summary::lsn(s.first_lsn))?;
        writeln!(out, "last lsn: {}", Summary::lsn(s.last_lsn))
    })();
    w.map_err(Failure::output)
}

fn run(cli: Cli) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let res = match &cli.command {
        Command::Verify { log, strict } => verify(log, *strict, &mut out),
        Command::Dump {
            log,
            json,
            payload,
            utf8,
        } => dump_cmd::dump(log, *json, *payload, *utf8, &mut out),
        Command::Stat { log } => stat(log, &mut out),
        Command::Meta { dir } => meta_cmd::show(dir, &mut out),
        Command::Cursors { dir, json } => cursors_cmd::show(dir, *json, &mut out),
        Command::RepairMeta { dir, without_slot } => meta_cmd::repair(dir, *without_slot, &mut out),
    };
    // Whatever was printed before a failure goes out before its error line.
    let flushed = out.flush().map_err(Failure::output);
    res.and(flushed)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !matches!(f, Failure::OutputClosed) {
                // Nothing more can be done if stderr is closed too.
                let _ = writeln!(io::stderr(), "walctl: {f}");
            }
            f.code()
        }
    }
}

//! What an append, a commit or an append batch asks the queue to write ([`Entry`]), with
//! each frame's payload as it will be stored: as given, or compressed
//! (`WalConfig::compression`, `format/compress.rs`).
//!
//! Where the compression runs: on the caller's thread for the [`Wal`](crate::Wal) handle's
//! `append`, `commit` and `append_batch` (they send the entry compressed, [`AppendEntry`]),
//! and on the queue's thread, as it is admitted, for `Append`, `Commit` and `AppendBatch`
//! messages sent to the queue directly (they carry plain bytes). Either way before the
//! frame is placed: its stored size decides where it goes and when the segment rolls over,
//! and the queue plans every offset, so the flusher cannot compress (sizes would change
//! after the batches behind were planned). docs/architecture.md ("Compression") has the
//! costs measured.
//!
//! Where compressed frames may go: only into segments whose header has `COMPRESSED`. The
//! writer creates segments with it, and creates an empty one without it again, with it,
//! before its first frame. A segment that holds frames and lacks it (the log's tail when
//! it was written before with compression off, or the segment a rewind went back into:
//! [`plain_segment`]) is never rewritten in place (a crash could tear its header): the
//! first compressed frame the queue places while in it starts a new segment instead.

use crate::config::WalConfig;
use crate::error::WalError;
use crate::format::compress::Compression;
use crate::format::frame::{transaction_payload, transaction_payload_len};
use crate::format::FRAME_HEADER_BYTES;
use crate::log::{LogDir, Planner};

/// One record's payload as it will be stored.
pub(crate) enum Payload {
    /// As given.
    Plain(Vec<u8>),
    /// Compressed: `stored` is what the frame holds (`raw_len` and an LZ4 block), smaller
    /// than the record's `raw_len` bytes.
    Lz4 { stored: Vec<u8>, raw_len: usize },
}

impl Payload {
    fn new(p: Vec<u8>, compression: &Compression) -> Payload {
        match compression.compress(&p) {
            Some(stored) => Payload::Lz4 {
                stored,
                raw_len: p.len(),
            },
            None => Payload::Plain(p),
        }
    }

    /// Bytes the frame's payload takes on disk.
    pub(super) fn stored_len(&self) -> usize {
        match self {
            Payload::Plain(p) => p.len(),
            Payload::Lz4 { stored, .. } => stored.len(),
        }
    }

    /// Bytes of the record as appended (what `max_record_bytes` bounds).
    fn raw_len(&self) -> usize {
        match self {
            Payload::Plain(p) => p.len(),
            Payload::Lz4 { raw_len, .. } => *raw_len,
        }
    }
}

/// A transaction's payload as it will be stored.
pub(crate) enum TxnPayload {
    /// Its entries as given (laid out with their lengths when encoded).
    Plain(Vec<Vec<u8>>),
    /// Its entries laid out with their lengths, then compressed.
    Lz4 {
        stored: Vec<u8>,
        raw_len: usize,
        count: usize,
    },
}

impl TxnPayload {
    fn new(entries: Vec<Vec<u8>>, compression: &Compression) -> TxnPayload {
        if !compression.is_on() || entries.is_empty() {
            return TxnPayload::Plain(entries);
        }
        let raw_len = transaction_payload_len(&entries);
        if let Compression::Lz4 { min_bytes } = compression {
            if raw_len < *min_bytes as usize {
                return TxnPayload::Plain(entries);
            }
        }
        match compression.compress(&transaction_payload(&entries)) {
            Some(stored) => TxnPayload::Lz4 {
                stored,
                raw_len,
                count: entries.len(),
            },
            None => TxnPayload::Plain(entries),
        }
    }

    fn stored_len(&self) -> usize {
        match self {
            TxnPayload::Plain(e) => transaction_payload_len(e),
            TxnPayload::Lz4 { stored, .. } => stored.len(),
        }
    }

    fn raw_len(&self) -> usize {
        match self {
            TxnPayload::Plain(e) => transaction_payload_len(e),
            TxnPayload::Lz4 { raw_len, .. } => *raw_len,
        }
    }

    /// Entries in the transaction.
    pub(super) fn count(&self) -> usize {
        match self {
            TxnPayload::Plain(e) => e.len(),
            TxnPayload::Lz4 { count, .. } => *count,
        }
    }
}

/// What a message asks to append.
pub(crate) enum Entry {
    /// `Append`: one record, one frame.
    Record(Payload),
    /// `Commit`: one frame holding every entry (atomic).
    Txn(TxnPayload),
    /// `AppendBatch`: one frame per record, across as many batches as it takes.
    Records(Vec<Payload>),
}

impl Entry {
    /// The entry with its payloads compressed as `compression` says (those it leaves, or
    /// that do not come out smaller, stay as they are). Done as the entry is admitted,
    /// just before its frames are placed: what the checks before it saw was the plain
    /// entry, and where the frames go decides whether they may be compressed at all.
    pub(super) fn compressed(self, compression: &Compression) -> Entry {
        if !compression.is_on() {
            return self;
        }
        let one = |p: Payload| match p {
            Payload::Plain(p) => Payload::new(p, compression),
            lz4 => lz4,
        };
        match self {
            Entry::Record(p) => Entry::Record(one(p)),
            Entry::Txn(TxnPayload::Plain(e)) => Entry::Txn(TxnPayload::new(e, compression)),
            Entry::Txn(t) => Entry::Txn(t),
            Entry::Records(r) => Entry::Records(r.into_iter().map(one).collect()),
        }
    }

    /// The entry with every payload stored plain: for a segment that may not hold a
    /// compressed frame and cannot be left either (it holds slot frames but no record, so
    /// the next segment would take its name). `Err` if a payload does not decompress to
    /// its length (cannot happen for one this process compressed).
    pub(super) fn plain(self) -> Result<Entry, WalError> {
        let undo = |stored: &[u8], raw_len: usize| {
            crate::format::compress::decompress(stored, raw_len as u64).map_err(|reason| {
                WalError::InvalidConfig(format!("a compressed payload: {reason}"))
            })
        };
        let one = |p: Payload| -> Result<Payload, WalError> {
            match p {
                Payload::Lz4 { stored, raw_len } => Ok(Payload::Plain(undo(&stored, raw_len)?)),
                plain => Ok(plain),
            }
        };
        Ok(match self {
            Entry::Record(p) => Entry::Record(one(p)?),
            Entry::Txn(TxnPayload::Lz4 {
                stored,
                raw_len,
                count,
            }) => {
                let raw = undo(&stored, raw_len)?;
                let parts = crate::format::frame::split_transaction(&raw, count as u16)
                    .ok_or_else(|| WalError::InvalidTransaction {
                        reason: "a compressed transaction's entries do not fill it".into(),
                    })?;
                Entry::Txn(TxnPayload::Plain(
                    parts.into_iter().map(<[u8]>::to_vec).collect(),
                ))
            }
            Entry::Txn(t) => Entry::Txn(t),
            Entry::Records(r) => Entry::Records(r.into_iter().map(one).collect::<Result<_, _>>()?),
        })
    }

    /// Whether any of its payloads is stored compressed.
    pub(super) fn has_lz4(&self) -> bool {
        match self {
            Entry::Record(p) => matches!(p, Payload::Lz4 { .. }),
            Entry::Txn(t) => matches!(t, TxnPayload::Lz4 { .. }),
            Entry::Records(r) => r.iter().any(|p| matches!(p, Payload::Lz4 { .. })),
        }
    }

    /// Bytes of frames it adds to the queue (what `max_queue_bytes` bounds): as stored.
    pub(super) fn frame_bytes(&self) -> usize {
        match self {
            Entry::Record(p) => FRAME_HEADER_BYTES + p.stored_len(),
            Entry::Txn(t) => FRAME_HEADER_BYTES + t.stored_len(),
            Entry::Records(r) => r.iter().map(|p| FRAME_HEADER_BYTES + p.stored_len()).sum(),
        }
    }

    /// Its largest frame payload before compression (what `max_record_bytes` bounds).
    pub(super) fn largest_payload_bytes(&self) -> usize {
        match self {
            Entry::Record(p) => p.raw_len(),
            Entry::Txn(t) => t.raw_len(),
            Entry::Records(r) => r.iter().map(Payload::raw_len).max().unwrap_or(0),
        }
    }

    /// Records it appends.
    pub(super) fn count(&self) -> usize {
        match self {
            Entry::Record(_) => 1,
            Entry::Txn(t) => t.count(),
            Entry::Records(r) => r.len(),
        }
    }
}

/// The segment the queue writes into (`planner`'s), if no compressed frame may go there:
/// the log compresses, the segment holds frames (an empty one is created again with the
/// flag by the writer), and its header lacks `COMPRESSED` (or cannot be read: then it is
/// taken to lack it, which costs at most an early rollover).
pub(super) fn plain_segment(cfg: &WalConfig, dir: &LogDir, planner: &Planner) -> Option<u64> {
    if !cfg.compression.is_on() || planner.offset <= crate::format::SEGMENT_HEADER_BYTES as u64 {
        return None;
    }
    let file = crate::log::segment::SegmentFile {
        first_lsn: planner.segment_first_lsn,
        path: dir
            .path()
            .join(crate::log::segment::segment_name(planner.segment_first_lsn)),
    };
    match crate::log::segment::read_header(cfg.storage.as_ref(), &file) {
        Ok(h) if h.allows_compressed() => None,
        _ => Some(planner.segment_first_lsn),
    }
}

/// An append, commit or append batch whose payloads the caller compressed already (the
/// [`Wal`](crate::Wal) handle's methods, with compression on): the queue places it as it
/// is, and tries no compression of its own.
pub(crate) struct AppendEntry {
    /// What to append, its payloads as they will be stored.
    pub(crate) entry: Entry,
    /// Durability and notification options.
    pub(crate) options: crate::messages::AppendOptions,
}

impl actix::Message for AppendEntry {
    type Result = Result<crate::lsn::Lsn, crate::error::WalError>;
}

impl AppendEntry {
    /// `Append`'s record, compressed here (on the caller's thread) as `compression` says.
    pub(crate) fn record(p: Vec<u8>, compression: &Compression) -> AppendEntry {
        AppendEntry::of(Entry::Record(Payload::Plain(p)), compression)
    }

    /// `Commit`'s entries, compressed together here as `compression` says.
    pub(crate) fn txn(entries: Vec<Vec<u8>>, compression: &Compression) -> AppendEntry {
        AppendEntry::of(Entry::Txn(TxnPayload::Plain(entries)), compression)
    }

    /// `AppendBatch`'s records, each compressed here as `compression` says.
    pub(crate) fn records(records: Vec<Vec<u8>>, compression: &Compression) -> AppendEntry {
        let r = records.into_iter().map(Payload::Plain).collect();
        AppendEntry::of(Entry::Records(r), compression)
    }

    fn of(entry: Entry, compression: &Compression) -> AppendEntry {
        AppendEntry {
            entry: entry.compressed(compression),
            options: crate::messages::AppendOptions {
                built_at: Some(std::time::Instant::now()),
                ..Default::default()
            },
        }
    }
}

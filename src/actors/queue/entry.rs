//! What an append, a commit or an append batch asks the queue to write ([`Entry`]), with
//! each frame's payload as it will be stored: as given, or compressed
//! (`WalConfig::compression`, `format/compress.rs`).
//!
//! Where the compression runs: in the queue's handler, before the frame is placed (its
//! stored size decides where it goes and when the segment rolls over, and the queue plans
//! every offset). Done later, by the flusher, sizes would change after the offsets of the
//! batches behind it were planned. docs/architecture.md ("Compression") says what it
//! costs the queue's thread and why it is done there.

use crate::format::compress::Compression;
use crate::format::frame::{transaction_payload, transaction_payload_len};
use crate::format::FRAME_HEADER_BYTES;

/// One record's payload as it will be stored.
pub(super) enum Payload {
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
pub(super) enum TxnPayload {
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
pub(super) enum Entry {
    /// `Append`: one record, one frame.
    Record(Payload),
    /// `Commit`: one frame holding every entry (atomic).
    Txn(TxnPayload),
    /// `AppendBatch`: one frame per record, across as many batches as it takes.
    Records(Vec<Payload>),
}

impl Entry {
    /// `Append`'s record, compressed if `compression` says so.
    pub(super) fn record(p: Vec<u8>, compression: &Compression) -> Entry {
        Entry::Record(Payload::new(p, compression))
    }

    /// `Commit`'s entries, compressed together if `compression` says so.
    pub(super) fn txn(entries: Vec<Vec<u8>>, compression: &Compression) -> Entry {
        Entry::Txn(TxnPayload::new(entries, compression))
    }

    /// `AppendBatch`'s records, each compressed if `compression` says so.
    pub(super) fn records(records: Vec<Vec<u8>>, compression: &Compression) -> Entry {
        Entry::Records(
            records
                .into_iter()
                .map(|p| Payload::new(p, compression))
                .collect(),
        )
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

//! The log's metadata file (`META`): its first LSN (the persisted checkpoint), a floor under
//! its durable end (to tell a lost newest segment from a log that ends there), a rewind or
//! reset in progress, and the application's metadata slot. Encoding and decoding only: the
//! file is written by the crate's `log::meta` (private), and `docs/format.md` ("The metadata file")
//! describes it byte by byte with the protocols that use it.
//!
//! ```text
//! offset size field
//!  0     8    magic           b"AXWALMET"
//!  8     4    version         1
//! 12     4    flags           0
//! 16     8    seq             generation: one more on every replace
//! 24     8    first_lsn       the log's first LSN (checkpoint); records below it are gone
//! 32     8    newest_lsn      first LSN of the newest segment known to hold a durable
//!                             record; the recovered log must reach past it (0: none)
//! 40     8    intent_lsn      the LSN of `intent` (0 when there is none)
//! 48     1    intent          0 none, 1 truncate after intent_lsn, 2 reset to intent_lsn
//! 49     1    slot_present    0 no application metadata, 1 some (possibly empty)
//! 50     2    reserved        0
//! 52     4    slot_len        bytes of application metadata (0 when absent)
//! 56     ...  slot            the application's bytes
//! 56+len 4    crc32           CRC32 of every byte before it (version 1)
//! ```
//!
//! Version 2 (a value with cursors, or a checkpoint above the first LSN: issue 22) adds,
//! between the slot and the CRC, the checkpoint LSN and the named cursors
//! ([`crate::format::meta_cursors`]); a value without them is still written as version 1.
//! Version 3 (a log whose slot values go into the log as slot frames: issue 23) is
//! version 2's layout, the cursor part always present, then the slot's generation
//! (`slot_gen`, 8 bytes) before the CRC. Older builds refuse it, and so never read a log
//! holding slot frames (`format/slot_frame.rs`), which they would take for damage.

use super::meta_cursors;
pub use super::meta_cursors::CursorMeta;

/// Bytes at the start of the metadata file.
pub const META_MAGIC: [u8; 8] = *b"AXWALMET";
/// The metadata format version with cursors: 2, written only for a value with cursors or
/// a checkpoint above its first LSN ([`LogMeta::needs_cursor_part`]) and no slot
/// generation.
pub const META_VERSION: u32 = 2;
/// The newest metadata format version this build reads and writes: 3, written for every
/// value with a slot generation ([`LogMeta::slot_gen`] above 0): the log may hold slot
/// frames.
pub const META_VERSION_SLOT_FRAMES: u32 = 3;
/// Bytes of `slot_gen` in a version-3 file.
pub const META_SLOT_GEN_BYTES: usize = 8;
/// The metadata format version of a value without cursors whose checkpoint is its first
/// LSN: byte for byte what builds before cursors wrote and read.
pub const META_VERSION_PLAIN: u32 = 1;
/// Bytes before the slot.
pub const META_HEADER_BYTES: usize = 56;
/// Bytes of the file that are not the slot: the header and the trailing CRC.
pub const META_OVERHEAD_BYTES: usize = META_HEADER_BYTES + 4;
/// Default bound on the application metadata slot (`max_meta_bytes`): 64 KiB.
pub const DEFAULT_MAX_META_BYTES: u64 = 64 << 10;
/// The largest `max_meta_bytes` there can be: 16 MiB. Readers of the file use this bound,
/// so lowering `max_meta_bytes` never makes a log with a larger value unreadable; the
/// file is rewritten whole on every replace, which is why it is kept small.
pub const MAX_META_BYTES_LIMIT: u64 = 16 << 20;

/// The largest LSN a reset may go on at (`reset` refuses more with `LsnOutOfRange`).
pub const MAX_RESET_LSN: u64 = super::frame::MAX_LSN;

/// A rewind or reset in progress: recorded before its first file operation and cleared
/// after its last, so that recovery after a crash in between completes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetaIntent {
    /// Nothing in progress.
    #[default]
    None,
    /// `truncate_after(lsn)`: every record above `lsn` is being removed.
    TruncateAfter(u64),
    /// `reset(lsn)`: every record is being removed; the log goes on at `lsn`.
    Reset(u64),
}

impl MetaIntent {
    fn code(self) -> (u8, u64) {
        match self {
            MetaIntent::None => (0, 0),
            MetaIntent::TruncateAfter(lsn) => (1, lsn),
            MetaIntent::Reset(lsn) => (2, lsn),
        }
    }
}

/// The content of the metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogMeta {
    /// Generation: the store adds one on every replace. Diagnostics, and a tie-breaker
    /// should the file ever be kept in two copies.
    pub seq: u64,
    /// The log's first LSN: `truncate_before` and `reset` set it, a new log starts at
    /// `WalConfig::first_lsn`. Records below it are never returned, even where their
    /// segment is kept.
    pub first_lsn: u64,
    /// First LSN of the newest segment known to hold a durable record (0: none). Raised
    /// after the first batch in a new segment is durable and before it is acknowledged,
    /// lowered before anything at or above it is removed; recovery refuses a log whose
    /// next LSN is not above it (a lost newest segment).
    pub newest_lsn: u64,
    /// A rewind or reset in progress.
    pub intent: MetaIntent,
    /// The application's metadata slot (`Wal::set_meta`): opaque, never removed by
    /// truncation. `None` until first set.
    pub slot: Option<Vec<u8>>,
    /// The checkpoint (C): the highest LSN `truncate_before` was given. Records below it
    /// are not replayed at open; they stay readable (from `first_lsn` on) while a cursor
    /// or the retention policy keeps them (docs/architecture.md, "Cursors and
    /// retention"). Below `first_lsn` (0 in a new value) it means `first_lsn`: see
    /// [`LogMeta::checkpoint`].
    pub checkpoint_lsn: u64,
    /// The named cursors (`Wal::cursor`), in ascending order of name. The first LSN never
    /// passes a valid one.
    pub cursors: Vec<CursorMeta>,
    /// The slot's generation (version 3): one more on every slot value attempted, here
    /// or in a slot frame of the log. 0 in a value written before slot frames, or by a log
    /// that never wrote one. The slot's value is the one of highest generation among this
    /// file and the log's slot frames.
    pub slot_gen: u64,
}

pub use super::meta_error::MetaFormatError;

fn le32(b: &[u8], i: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

impl LogMeta {
    /// Bytes the encoded file takes.
    pub fn encoded_len(&self) -> usize {
        let part = match self.version() {
            META_VERSION_SLOT_FRAMES => {
                meta_cursors::encoded_len(&self.cursors) + META_SLOT_GEN_BYTES
            }
            META_VERSION => meta_cursors::encoded_len(&self.cursors),
            _ => 0,
        };
        META_OVERHEAD_BYTES + self.slot.as_ref().map_or(0, Vec::len) + part
    }

    /// The checkpoint: `checkpoint_lsn`, or the first LSN if that is higher (a value
    /// read from a version-1 file, or built before any checkpoint).
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint_lsn.max(self.first_lsn)
    }

    /// Takes `slot` (a slot value, `(generation, bytes)`) if its generation is above this
    /// value's `slot_gen`: how a value carries the newest durable slot frame's slot.
    /// Whether it did.
    pub fn take_newer_slot(&mut self, slot: Option<&(u64, Vec<u8>)>) -> bool {
        match slot {
            Some((generation, bytes)) if *generation > self.slot_gen => {
                self.slot_gen = *generation;
                self.slot = Some(bytes.clone());
                true
            }
            _ => false,
        }
    }

    /// Whether the value needs version 2: it has cursors, or a checkpoint above its first
    /// LSN. Every other value is written as version 1, which older builds read.
    pub fn needs_cursor_part(&self) -> bool {
        !self.cursors.is_empty() || self.checkpoint_lsn > self.first_lsn
    }

    /// The version this value is written as: 3 with a slot generation, else 2 when it
    /// needs the cursor part, else 1.
    pub fn version(&self) -> u32 {
        if self.slot_gen > 0 {
            META_VERSION_SLOT_FRAMES
        } else if self.needs_cursor_part() {
            META_VERSION
        } else {
            META_VERSION_PLAIN
        }
    }

    /// The cursor named `name`.
    pub fn cursor(&self, name: &str) -> Option<&CursorMeta> {
        self.cursors
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.cursors[i])
    }

    /// Sets the cursor `c` (added, or replacing the one of its name), keeping the order.
    pub fn put_cursor(&mut self, c: CursorMeta) {
        match self
            .cursors
            .binary_search_by(|x| x.name.as_str().cmp(&c.name))
        {
            Ok(i) => self.cursors[i] = c,
            Err(i) => self.cursors.insert(i, c),
        }
    }

    /// Removes the cursor named `name`; whether there was one.
    pub fn remove_cursor(&mut self, name: &str) -> bool {
        let before = self.cursors.len();
        self.cursors.retain(|c| c.name != name);
        self.cursors.len() != before
    }

    /// Encodes the file. A slot longer than `max_slot_bytes` (itself capped at
    /// [`MAX_META_BYTES_LIMIT`]) is refused.
    pub fn encode(&self, max_slot_bytes: u64) -> Result<Vec<u8>, MetaFormatError> {
        let max = max_slot_bytes.min(MAX_META_BYTES_LIMIT);
        let slot = self.slot.as_deref().unwrap_or(&[]);
        if slot.len() as u64 > max {
            return Err(MetaFormatError::SlotTooLarge {
                len: slot.len() as u64,
                max,
            });
        }
        let (intent, intent_lsn) = self.intent.code();
        let mut b = Vec::with_capacity(self.encoded_len());
        let version = self.version();
        b.extend_from_slice(&META_MAGIC);
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&self.first_lsn.to_le_bytes());
        b.extend_from_slice(&self.newest_lsn.to_le_bytes());
        b.extend_from_slice(&intent_lsn.to_le_bytes());
        b.push(intent);
        b.push(u8::from(self.slot.is_some()));
        b.extend_from_slice(&[0, 0]);
        // Fits: bounded by MAX_META_BYTES_LIMIT just above.
        b.extend_from_slice(&(slot.len() as u32).to_le_bytes());
        debug_assert_eq!(b.len(), META_HEADER_BYTES);
        b.extend_from_slice(slot);
        if version != META_VERSION_PLAIN {
            meta_cursors::encode(&mut b, self.checkpoint(), &self.cursors)?;
        }
        if version == META_VERSION_SLOT_FRAMES {
            b.extend_from_slice(&self.slot_gen.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        Ok(b)
    }

    /// Why this value must never be written, if it must not: its intent conflicts with
    /// its other fields, so that no crash could leave it and recovery would refuse it
    /// (or, before it checked, act on it wrongly). The values the protocols of
    /// docs/format.md write all pass:
    ///
    /// - `TruncateAfter(x)`: `x + 1` exists (no overflow), the first LSN F is at most
    ///   `x + 1` (the cut keeps the checkpoint), and N is at most `x` (the rewind lowers
    ///   N before it removes anything above `x`).
    /// - `Reset(n)`: `n` is in `1..=2^63-1`, F = `n` and N = 0, which is what the
    ///   reset's first step writes.
    ///
    /// Whatever the intent: an LSN outside the range LSNs have (the first LSN, the
    /// checkpoint and a cursor at most `MAX_LSN + 1`, the LSN after the largest; the
    /// newest-segment LSN at most `MAX_LSN`), and a valid cursor below the first LSN.
    /// Pure: no I/O.
    pub fn conflict(&self) -> Option<String> {
        let max = super::frame::MAX_LSN;
        let past = [
            ("first LSN", self.first_lsn, max + 1),
            ("checkpoint", self.checkpoint_lsn, max + 1),
            ("newest-segment LSN", self.newest_lsn, max),
        ]
        .into_iter()
        .chain(self.cursors.iter().map(|c| ("cursor", c.lsn, max + 1)))
        .find(|&(_, lsn, bound)| lsn > bound);
        if let Some((what, lsn, bound)) = past {
            return Some(format!("{what} {lsn} lies past {bound}, beyond any LSN"));
        }
        if let Some(c) = self
            .cursors
            .iter()
            .find(|c| !c.invalidated && c.lsn < self.first_lsn)
        {
            return Some(format!(
                "cursor {} at LSN {} lies below the first LSN {}: the records it needs would be gone",
                c.name, c.lsn, self.first_lsn
            ));
        }
        if let Err(e) = meta_cursors::check_cursors(&self.cursors) {
            return Some(e.to_string());
        }
        match self.intent {
            MetaIntent::None => None,
            MetaIntent::TruncateAfter(x) => {
                let Some(cut) = x.checked_add(1) else {
                    return Some(format!("truncate after LSN {x}: no LSN follows it"));
                };
                if self.first_lsn > cut {
                    Some(format!(
                        "truncate after LSN {x} pending, but the first LSN {} lies past its cut",
                        self.first_lsn
                    ))
                } else if self.newest_lsn > x {
                    Some(format!(
                        "truncate after LSN {x} pending, but the newest-segment LSN {} lies past it",
                        self.newest_lsn
                    ))
                } else {
                    None
                }
            }
            MetaIntent::Reset(n) => {
                if n == 0 || n > MAX_RESET_LSN {
                    Some(format!("reset to LSN {n}: outside 1..={MAX_RESET_LSN}"))
                } else if self.first_lsn != n || self.newest_lsn != 0 {
                    Some(format!(
                        "reset to LSN {n} pending, but the first LSN is {} and the newest-segment LSN {} (a reset writes {n} and 0)",
                        self.first_lsn, self.newest_lsn
                    ))
                } else {
                    None
                }
            }
        }
    }

    /// Decodes and checks a file. Checked in this order: length of the fixed part, magic,
    /// version, slot length against `max_slot_bytes` (before anything is read from the
    /// slot), exact file length, CRC, then each field's value. Never panics.
    pub fn decode(bytes: &[u8], max_slot_bytes: u64) -> Result<LogMeta, MetaFormatError> {
        if bytes.len() < META_OVERHEAD_BYTES {
            return Err(MetaFormatError::Short {
                len: bytes.len(),
                needed: META_OVERHEAD_BYTES,
            });
        }
        if bytes[0..8] != META_MAGIC {
            return Err(MetaFormatError::BadMagic);
        }
        let version = le32(bytes, 8);
        if ![META_VERSION_PLAIN, META_VERSION, META_VERSION_SLOT_FRAMES].contains(&version) {
            return Err(MetaFormatError::Version(version));
        }
        let slot_len = u64::from(le32(bytes, 52));
        let max = max_slot_bytes.min(MAX_META_BYTES_LIMIT);
        if slot_len > max {
            return Err(MetaFormatError::SlotTooLarge { len: slot_len, max });
        }
        // At most 16 MiB + 60 by the check above: no overflow.
        let slot_end = META_HEADER_BYTES + slot_len as usize;
        let mut expected = META_OVERHEAD_BYTES + slot_len as usize;
        if version != META_VERSION_PLAIN && bytes.len() >= slot_end {
            expected += meta_cursors::walk_len(&bytes[slot_end..], slot_end)?;
        }
        if version == META_VERSION_SLOT_FRAMES {
            expected += META_SLOT_GEN_BYTES;
        }
        if bytes.len() < expected {
            return Err(MetaFormatError::Short {
                len: bytes.len(),
                needed: expected,
            });
        }
        if bytes.len() > expected {
            return Err(MetaFormatError::Trailing {
                len: bytes.len(),
                expected,
            });
        }
        let body = expected - 4;
        if le32(bytes, body) != crc32fast::hash(&bytes[..body]) {
            return Err(MetaFormatError::Crc);
        }
        if le32(bytes, 12) != 0 || bytes[50] != 0 || bytes[51] != 0 {
            return Err(MetaFormatError::Invalid("flags or reserved bytes not zero"));
        }
        let intent_lsn = le64(bytes, 40);
        let intent = match (bytes[48], intent_lsn) {
            (0, 0) => MetaIntent::None,
            (0, _) => return Err(MetaFormatError::Invalid("intent LSN without an intent")),
            (1, lsn) => MetaIntent::TruncateAfter(lsn),
            (2, lsn) => MetaIntent::Reset(lsn),
            _ => return Err(MetaFormatError::Invalid("unknown intent")),
        };
        let slot = match (bytes[49], slot_len) {
            (0, 0) => None,
            (0, _) => return Err(MetaFormatError::Invalid("slot length without a slot")),
            (1, _) => Some(bytes[META_HEADER_BYTES..slot_end].to_vec()),
            _ => return Err(MetaFormatError::Invalid("slot_present is not 0 or 1")),
        };
        let first_lsn = le64(bytes, 24);
        let (part_end, slot_gen) = match version {
            META_VERSION_SLOT_FRAMES => {
                let at = body - META_SLOT_GEN_BYTES;
                (at, le64(bytes, at))
            }
            _ => (body, 0),
        };
        let (checkpoint_lsn, cursors) = match version {
            META_VERSION_PLAIN => (first_lsn, Vec::new()),
            _ => meta_cursors::decode(&bytes[slot_end..part_end], slot_end)?,
        };
        let meta = LogMeta {
            seq: le64(bytes, 16),
            first_lsn,
            newest_lsn: le64(bytes, 32),
            intent,
            slot,
            checkpoint_lsn,
            cursors,
            slot_gen,
        };
        if version != META_VERSION_PLAIN && checkpoint_lsn < first_lsn {
            return Err(MetaFormatError::Invalid("checkpoint below the first LSN"));
        }
        if version == META_VERSION_SLOT_FRAMES && slot_gen == 0 {
            return Err(MetaFormatError::Invalid("version 3 with slot generation 0"));
        }
        if version == META_VERSION && !meta.needs_cursor_part() {
            return Err(MetaFormatError::Invalid(
                "version 2 without cursors or a checkpoint above the first LSN",
            ));
        }
        Ok(meta)
    }
}

#[cfg(test)]
#[path = "meta_tests.rs"]
pub(crate) mod tests;

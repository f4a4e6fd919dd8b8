//! The part of the metadata file (`META`) that version 2 adds after the slot: the
//! checkpoint LSN (C) and the named cursors (issue 22, item 3). Encoding and decoding
//! only; [`crate::format::meta`] frames it, `docs/format.md` ("The metadata file")
//! describes it byte by byte.
//!
//! ```text
//! offset      size field
//! 56+len      8    checkpoint_lsn  C: the application's checkpoint (truncate_before);
//!                                  at least first_lsn
//! 64+len      2    cursor_count    K, at most MAX_CURSORS_LIMIT
//! 66+len      2    reserved        0
//! 68+len      ...  K cursors, by name (bytewise ascending, no two equal), each:
//!                  8  lsn          the next LSN its consumer needs
//!                  1  state        0 valid, 1 invalidated (over max_cursor_lag_bytes)
//!                  1  name_len     1..=MAX_CURSOR_NAME_LIMIT
//!                  .. name         ASCII letters, digits, '.', '_', '-'
//! ```
//!
//! A value with no cursor and C equal to the first LSN is written as version 1, byte for
//! byte what builds before cursors wrote; only a value that needs this part is version 2,
//! which those builds refuse (`UnsupportedVersion`) instead of dropping the cursors.

use super::meta_error::MetaFormatError;

/// The most cursors a metadata file may hold (readers' bound; `WalConfig::max_cursors`
/// is at most this).
pub const MAX_CURSORS_LIMIT: usize = 1024;
/// The longest cursor name a metadata file may hold, in bytes (readers' bound;
/// `WalConfig::max_cursor_name_bytes` is at most this).
pub const MAX_CURSOR_NAME_LIMIT: usize = 255;
/// Bytes of version 2's part before the cursors (C, the count, reserved).
pub const CURSORS_HEADER_BYTES: usize = 12;
/// Bytes of one cursor besides its name.
pub const CURSOR_ENTRY_BYTES: usize = 10;
/// The most bytes version 2's part can take: what readers allow for beyond the slot.
pub const MAX_CURSORS_SECTION_BYTES: usize =
    CURSORS_HEADER_BYTES + MAX_CURSORS_LIMIT * (CURSOR_ENTRY_BYTES + MAX_CURSOR_NAME_LIMIT);

/// One named cursor as `META` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CursorMeta {
    /// Its name (see [`check_cursor_name`]).
    pub name: String,
    /// The next LSN its consumer needs: every record from here on is kept readable.
    pub lsn: u64,
    /// Invalidated: it would have held more than `max_cursor_lag_bytes`, so it no longer
    /// holds anything, and its next use is [`crate::WalError::CursorInvalidated`].
    pub invalidated: bool,
}

/// Why `name` cannot name a cursor, if it cannot: empty, longer than `max_bytes` (itself
/// at most [`MAX_CURSOR_NAME_LIMIT`]), or holding a byte other than an ASCII letter,
/// digit, `.`, `_` or `-` (names appear in metric labels, walctl's output and logs
/// as they are).
pub fn check_cursor_name(name: &str, max_bytes: usize) -> Option<String> {
    let max = max_bytes.min(MAX_CURSOR_NAME_LIMIT);
    if name.is_empty() {
        return Some("a cursor name is at least 1 byte".into());
    }
    if name.len() > max {
        return Some(format!("{} bytes, at most {max}", name.len()));
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if let Some(b) = name.bytes().find(|&b| !ok(b)) {
        return Some(format!(
            "byte {b:#04x}: only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    None
}

/// `name` as an error shows it: whole up to [`MAX_CURSOR_NAME_LIMIT`] bytes; longer, its
/// first bytes up to that limit (cut at a character's boundary) and `...`, so that a
/// caller's huge name does not fill every log line that prints the error (the reason
/// gives its length).
pub fn shown_name(name: &str) -> String {
    if name.len() <= MAX_CURSOR_NAME_LIMIT {
        return name.to_string();
    }
    let mut end = MAX_CURSOR_NAME_LIMIT;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &name[..end])
}

fn le64(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Bytes the part takes for `cursors`.
pub fn encoded_len(cursors: &[CursorMeta]) -> usize {
    CURSORS_HEADER_BYTES
        + cursors
            .iter()
            .map(|c| CURSOR_ENTRY_BYTES + c.name.len())
            .sum::<usize>()
}

/// Appends the part to `b`. `cursors` must be sorted by name, unique, each name
/// checked, at most [`MAX_CURSORS_LIMIT`]: else `Invalid`, nothing appended.
pub fn encode(
    b: &mut Vec<u8>,
    checkpoint_lsn: u64,
    cursors: &[CursorMeta],
) -> Result<(), MetaFormatError> {
    check_cursors(cursors)?;
    b.extend_from_slice(&checkpoint_lsn.to_le_bytes());
    // At most MAX_CURSORS_LIMIT (checked above): fits in a u16.
    b.extend_from_slice(&(cursors.len() as u16).to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    for c in cursors {
        b.extend_from_slice(&c.lsn.to_le_bytes());
        b.push(u8::from(c.invalidated));
        // At most MAX_CURSOR_NAME_LIMIT (checked above): fits in a u8.
        b.push(c.name.len() as u8);
        b.extend_from_slice(c.name.as_bytes());
    }
    Ok(())
}

/// The checks a value's cursors must pass to be written or read.
pub fn check_cursors(cursors: &[CursorMeta]) -> Result<(), MetaFormatError> {
    if cursors.len() > MAX_CURSORS_LIMIT {
        return Err(MetaFormatError::Invalid("more cursors than any log holds"));
    }
    if cursors
        .iter()
        .any(|c| check_cursor_name(&c.name, MAX_CURSOR_NAME_LIMIT).is_some())
    {
        return Err(MetaFormatError::Invalid("a cursor name no writer writes"));
    }
    if cursors.windows(2).any(|w| w[0].name >= w[1].name) {
        return Err(MetaFormatError::Invalid(
            "cursors not in ascending order of name, or a name twice",
        ));
    }
    Ok(())
}

/// The length of the part that starts `rest` (the bytes after the slot, the trailing CRC
/// included), walked from its count and name lengths only, with every bound checked:
/// `Short` when `rest` ends first (four bytes are left for the CRC), `Invalid` for a
/// count over [`MAX_CURSORS_LIMIT`]. Nothing else is checked yet (the CRC comes first).
pub fn walk_len(rest: &[u8], at: usize) -> Result<usize, MetaFormatError> {
    let short = |needed: usize| MetaFormatError::Short {
        len: at + rest.len(),
        needed: at + needed + 4,
    };
    let body = rest.len().saturating_sub(4);
    if body < CURSORS_HEADER_BYTES {
        return Err(short(CURSORS_HEADER_BYTES));
    }
    let count = usize::from(u16::from_le_bytes([rest[8], rest[9]]));
    if count > MAX_CURSORS_LIMIT {
        return Err(MetaFormatError::Invalid("more cursors than any log holds"));
    }
    let mut i = CURSORS_HEADER_BYTES;
    for _ in 0..count {
        if body < i + CURSOR_ENTRY_BYTES {
            return Err(short(i + CURSOR_ENTRY_BYTES));
        }
        i += CURSOR_ENTRY_BYTES + usize::from(rest[i + 9]);
    }
    if body < i {
        return Err(short(i));
    }
    Ok(i)
}

/// Decodes the part from `rest` (the bytes between the slot and the trailing CRC, which
/// the caller checked): C and the cursors. Refuses a part that does not end exactly at
/// the end of `rest`, a count over [`MAX_CURSORS_LIMIT`], reserved bytes not zero, a
/// state other than 0 or 1, and cursors [`check_cursors`] refuses. `at` is the part's
/// offset in the file, for the errors.
pub fn decode(rest: &[u8], at: usize) -> Result<(u64, Vec<CursorMeta>), MetaFormatError> {
    let short = |needed: usize| MetaFormatError::Short {
        len: at + rest.len(),
        needed: at + needed,
    };
    if rest.len() < CURSORS_HEADER_BYTES {
        return Err(short(CURSORS_HEADER_BYTES));
    }
    let checkpoint_lsn = le64(rest, 0);
    let count = usize::from(u16::from_le_bytes([rest[8], rest[9]]));
    if count > MAX_CURSORS_LIMIT {
        return Err(MetaFormatError::Invalid("more cursors than any log holds"));
    }
    if rest[10] != 0 || rest[11] != 0 {
        return Err(MetaFormatError::Invalid("cursor reserved bytes not zero"));
    }
    let mut i = CURSORS_HEADER_BYTES;
    let mut cursors = Vec::with_capacity(count);
    for _ in 0..count {
        if rest.len() < i + CURSOR_ENTRY_BYTES {
            return Err(short(i + CURSOR_ENTRY_BYTES));
        }
        let lsn = le64(rest, i);
        let invalidated = match rest[i + 8] {
            0 => false,
            1 => true,
            _ => return Err(MetaFormatError::Invalid("cursor state is not 0 or 1")),
        };
        let len = usize::from(rest[i + 9]);
        i += CURSOR_ENTRY_BYTES;
        if rest.len() < i + len {
            return Err(short(i + len));
        }
        let name = std::str::from_utf8(&rest[i..i + len])
            .map_err(|_| MetaFormatError::Invalid("a cursor name no writer writes"))?;
        cursors.push(CursorMeta {
            name: name.to_string(),
            lsn,
            invalidated,
        });
        i += len;
    }
    if rest.len() != i {
        return Err(MetaFormatError::Trailing {
            len: at + rest.len(),
            expected: at + i,
        });
    }
    check_cursors(&cursors)?;
    Ok((checkpoint_lsn, cursors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::meta::tests::{sample, sample_v2};
    use crate::format::meta::{
        LogMeta, MetaIntent, DEFAULT_MAX_META_BYTES, META_HEADER_BYTES, META_OVERHEAD_BYTES,
        META_VERSION, META_VERSION_PLAIN,
    };

    fn le32(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
    }

    #[test]
    fn encodes_the_cursor_example_of_docs_format_md() {
        let meta = LogMeta {
            seq: 4,
            first_lsn: 1,
            newest_lsn: 1,
            intent: MetaIntent::None,
            slot: Some(b"vote".to_vec()),
            checkpoint_lsn: 9,
            cursors: vec![CursorMeta {
                name: "arch".into(),
                lsn: 5,
                invalidated: false,
            }],
            slot_gen: 0,
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(b"AXWALMET");
        expected.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 4, 0, 0, 0]);
        expected.extend_from_slice(b"vote");
        expected.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        expected.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
        expected.extend_from_slice(b"arch");
        expected.extend_from_slice(&[0xe3, 0x59, 0x80, 0x5e]);
        let b = meta.encode(DEFAULT_MAX_META_BYTES).unwrap();
        assert_eq!(b, expected);
        assert_eq!(LogMeta::decode(&b, DEFAULT_MAX_META_BYTES), Ok(meta));
    }

    #[test]
    fn version_2_fields_a_writer_never_writes_are_refused_even_with_a_good_crc() {
        let recrc = |mut b: Vec<u8>| {
            let body = b.len() - 4;
            let crc = crc32fast::hash(&b[..body]);
            b[body..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let meta = sample_v2();
        let b = meta.encode(DEFAULT_MAX_META_BYTES).unwrap();
        assert_eq!(le32(&b, 8), META_VERSION);
        let part = META_HEADER_BYTES + meta.slot.as_ref().unwrap().len();
        // The checkpoint below the first LSN (42).
        let mut bad = b.clone();
        bad[part..part + 8].copy_from_slice(&41u64.to_le_bytes());
        assert!(matches!(
            LogMeta::decode(&recrc(bad), DEFAULT_MAX_META_BYTES),
            Err(MetaFormatError::Invalid(_))
        ));
        // Reserved bytes, a state 2, a name byte no writer writes, names out of order.
        let first = part + CURSORS_HEADER_BYTES;
        let second = first + CURSOR_ENTRY_BYTES + "archiver".len();
        for (at, value) in [
            (part + 10, 1u8),
            (first + 8, 2),
            (first + 10, b' '),
            (first + 10, b's'),
        ] {
            let mut bad = b.clone();
            bad[at] = value;
            assert!(
                matches!(
                    LogMeta::decode(&recrc(bad), DEFAULT_MAX_META_BYTES),
                    Err(MetaFormatError::Invalid(_))
                ),
                "byte {at} = {value}"
            );
        }
        assert_eq!(b[second + 10], b'r');
        // Version 2 holding nothing version 1 could not: never written.
        let plain = LogMeta {
            checkpoint_lsn: 42,
            cursors: Vec::new(),
            ..sample()
        };
        let mut v2 = plain.encode(DEFAULT_MAX_META_BYTES).unwrap();
        assert_eq!(le32(&v2, 8), META_VERSION_PLAIN);
        let crc_at = v2.len() - 4;
        v2.truncate(crc_at);
        v2[8] = 2;
        v2.extend_from_slice(&42u64.to_le_bytes());
        v2.extend_from_slice(&[0; 4]);
        v2.extend_from_slice(&[0; 4]);
        assert!(matches!(
            LogMeta::decode(&recrc(v2), DEFAULT_MAX_META_BYTES),
            Err(MetaFormatError::Invalid(_))
        ));
    }

    #[test]
    fn a_value_without_cursors_is_version_1_byte_for_byte() {
        // What a build before cursors wrote, and reads: the checkpoint is the first LSN.
        let meta = sample();
        let b = meta.encode(DEFAULT_MAX_META_BYTES).unwrap();
        assert_eq!(le32(&b, 8), 1);
        assert_eq!(
            b.len(),
            META_OVERHEAD_BYTES + meta.slot.as_ref().unwrap().len()
        );
        let read = LogMeta::decode(&b, DEFAULT_MAX_META_BYTES).unwrap();
        assert_eq!(read.checkpoint(), 42);
        assert!(read.cursors.is_empty());
        // A checkpoint above the first LSN alone needs version 2.
        let above = LogMeta {
            checkpoint_lsn: 43,
            ..sample()
        };
        assert_eq!(le32(&above.encode(DEFAULT_MAX_META_BYTES).unwrap(), 8), 2);
    }

    #[test]
    fn a_valid_cursor_below_the_first_lsn_is_a_conflict() {
        let mut meta = sample_v2();
        meta.intent = MetaIntent::None;
        assert_eq!(meta.conflict(), None);
        meta.first_lsn = 43;
        meta.checkpoint_lsn = 500;
        assert!(meta.conflict().unwrap().contains("archiver"));
        meta.cursors[0].invalidated = true;
        assert_eq!(meta.conflict(), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_cursor_name("replica-2.east_1", 64).is_none());
        for bad in ["", "a b", "é", "x/y", "a\n"] {
            assert!(check_cursor_name(bad, 64).is_some(), "{bad:?}");
        }
        assert!(check_cursor_name(&"a".repeat(65), 64).is_some());
        assert!(check_cursor_name(&"a".repeat(256), usize::MAX).is_some());
        assert!(check_cursor_name(&"a".repeat(255), usize::MAX).is_none());
    }

    #[test]
    fn the_most_cursors_with_the_longest_names_round_trip_within_the_bound() {
        let cursors: Vec<CursorMeta> = (0..MAX_CURSORS_LIMIT)
            .map(|i| CursorMeta {
                name: format!("{i:04}{}", "n".repeat(MAX_CURSOR_NAME_LIMIT - 4)),
                lsn: i as u64,
                invalidated: i % 2 == 0,
            })
            .collect();
        let mut b = Vec::new();
        encode(&mut b, 9, &cursors).unwrap();
        assert_eq!(b.len(), MAX_CURSORS_SECTION_BYTES);
        assert_eq!(b.len(), encoded_len(&cursors));
        assert_eq!(decode(&b, 0).unwrap(), (9, cursors));
    }

    #[test]
    fn unsorted_duplicate_or_too_many_cursors_are_refused_both_ways() {
        let c = |name: &str| CursorMeta {
            name: name.into(),
            lsn: 1,
            invalidated: false,
        };
        for bad in [vec![c("b"), c("a")], vec![c("a"), c("a")], vec![c("a b")]] {
            assert!(encode(&mut Vec::new(), 1, &bad).is_err());
            let mut b = Vec::new();
            b.extend_from_slice(&1u64.to_le_bytes());
            b.extend_from_slice(&(bad.len() as u16).to_le_bytes());
            b.extend_from_slice(&[0, 0]);
            for x in &bad {
                b.extend_from_slice(&x.lsn.to_le_bytes());
                b.extend_from_slice(&[0, x.name.len() as u8]);
                b.extend_from_slice(x.name.as_bytes());
            }
            assert!(decode(&b, 0).is_err(), "{bad:?}");
        }
        let mut b = Vec::new();
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&((MAX_CURSORS_LIMIT + 1) as u16).to_le_bytes());
        b.extend_from_slice(&[0, 0]);
        assert!(matches!(decode(&b, 0), Err(MetaFormatError::Invalid(_))));
    }
}

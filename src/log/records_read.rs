//! A range read's records before they are copied out ([`RecordsRead`]): the spans the read
//! took from the files (and any compressed frame's payload, decompressed), and where each
//! record lies in them. `read_at.rs` fills it; [`Wal::read_range`](crate::Wal::read_range)
//! copies every record out at once on the thread that read, while a subscription
//! ([`crate::Subscription`]) copies each out on its own thread as it hands it out.
//!
//! Why a subscription copies its records out itself: a chunk read ahead on the reader
//! pool and copied out there has every record's buffer allocated on a pool thread and
//! freed on the subscriber's. With glibc's allocator (the default on Linux) that is the
//! slow path at both ends, the pool's thread finding no freed block of its own to reuse
//! and the subscriber's thread handing each block back to the pool thread's arena under
//! its lock: about a fifth of a catch-up's CPU (docs/performance.md, "Subscribers"). Copied
//! out where it is consumed, a record's buffer is allocated and freed by one thread,
//! usually the same block each time, as with `LogReader`.

use super::reader::{Record, TxnPosition};
use super::shared_record::SharedRecord;
use crate::format::FRAME_HEADER_BYTES;
use crate::lsn::Lsn;
use bytes::Bytes;

/// Records read, in LSN order, not yet copied out; an iterator that copies each out
/// ([`Iterator::next`]) as it is taken.
#[derive(Debug, Default)]
pub struct RecordsRead {
    /// The bytes the records lie in: spans read from the files, and payloads decompressed.
    bufs: Vec<Vec<u8>>,
    /// Where each record lies, in LSN order.
    at: Vec<RecordAt>,
    /// The next record of `at` to copy out.
    next: usize,
    /// Once every record is copied out, the largest buffer, for the next read to fill
    /// again ([`RecordsRead::take_spare`]): a buffer allocated afresh is zeroed first, a
    /// cost a subscription's reads then skip.
    spare: Option<Vec<u8>>,
    /// `bufs` as `Bytes` (the same indices), once a record is handed out shared
    /// ([`RecordsRead::next_shared`]); then no spare is kept.
    shared: Vec<Bytes>,
}

/// Where one record lies, and what the [`Record`] copied out says of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordAt {
    /// The record's LSN.
    pub lsn: u64,
    /// Index of its buffer in `RecordsRead::bufs`.
    pub buf: usize,
    /// Where its payload starts in that buffer.
    pub start: usize,
    /// Its payload's length.
    pub len: usize,
    /// First LSN of the segment holding it.
    pub segment_first_lsn: u64,
    /// Offset of its frame in that segment.
    pub frame_offset: u64,
    /// Its frame's CRC.
    pub frame_crc: u32,
    /// Its place in its transaction, if in one.
    pub txn: Option<TxnPosition>,
}

/// Bytes a record of `len` bytes of payload counts against a range read's `max_bytes`: its
/// payload and a frame header's worth for the record itself, so many empty records are
/// bounded too.
pub fn cost_bytes(len: usize) -> usize {
    len + FRAME_HEADER_BYTES
}

impl RecordsRead {
    /// Keeps `buf` for the records that lie in it; its index, for [`RecordAt::buf`].
    pub(crate) fn push_buf(&mut self, buf: Vec<u8>) -> usize {
        self.bufs.push(buf);
        self.bufs.len() - 1
    }

    /// The index the next buffer pushed gets.
    pub(crate) fn next_buf(&self) -> usize {
        self.bufs.len()
    }

    /// Adds a record (after every record added before it, in LSN order; its buffer
    /// pushed before it is copied out).
    pub(crate) fn push(&mut self, at: RecordAt) {
        debug_assert!(self.at.last().is_none_or(|l| l.lsn < at.lsn), "LSN order");
        self.at.push(at);
    }

    /// Records not copied out yet.
    pub fn len(&self) -> usize {
        self.at.len() - self.next
    }

    /// Whether every record was copied out (or none was read).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// LSN of the next record to copy out.
    pub fn first_lsn(&self) -> Option<Lsn> {
        self.at.get(self.next).map(|a| Lsn(a.lsn))
    }

    /// LSN of the last record.
    pub fn last_lsn(&self) -> Option<Lsn> {
        self.at[self.next..].last().map(|a| Lsn(a.lsn))
    }

    /// Drops every record not copied out yet, and the bytes they lie in (the spare too).
    pub fn clear(&mut self) {
        *self = RecordsRead::default();
    }

    /// Once every record is copied out, the largest buffer they lay in, for another read
    /// to fill; `None` before, or when taken already.
    pub fn take_spare(&mut self) -> Option<Vec<u8>> {
        self.spare.take()
    }

    /// Copies every record out.
    pub fn into_records(self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self);
        out
    }
}

impl Iterator for RecordsRead {
    type Item = Record;

    /// Copies the next record out; once the last is, the bytes are dropped but for the
    /// largest buffer, kept as the spare.
    fn next(&mut self) -> Option<Record> {
        let a = *self.at.get(self.next)?;
        self.next += 1;
        let payload = self.bufs[a.buf][a.start..a.start + a.len].to_vec();
        if self.next == self.at.len() {
            let spare = std::mem::take(&mut self.bufs)
                .into_iter()
                .max_by_key(Vec::len);
            self.clear();
            self.spare = spare;
        }
        Some(a.record(payload))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl RecordsRead {
    /// The next record, its payload sharing the buffer it lies in (no copy); once the last
    /// is handed out, the buffers are the records' alone (no spare is kept). Not to be
    /// mixed with [`Iterator::next`] on one read.
    pub fn next_shared(&mut self) -> Option<SharedRecord> {
        let a = *self.at.get(self.next)?;
        self.next += 1;
        if self.shared.is_empty() {
            self.shared = std::mem::take(&mut self.bufs)
                .into_iter()
                .map(Bytes::from)
                .collect();
        }
        let payload = self.shared[a.buf].slice(a.start..a.start + a.len);
        if self.next == self.at.len() {
            self.clear();
        }
        Some(a.shared(payload))
    }
}

impl RecordAt {
    /// The record it says of, with `payload` copied out.
    pub(crate) fn record(&self, payload: Vec<u8>) -> Record {
        Record {
            lsn: Lsn(self.lsn),
            payload,
            segment_first_lsn: Lsn(self.segment_first_lsn),
            frame_offset: self.frame_offset,
            frame_crc: self.frame_crc,
            txn: self.txn,
        }
    }

    /// The record it says of, with `payload` shared.
    pub(crate) fn shared(&self, payload: Bytes) -> SharedRecord {
        SharedRecord {
            lsn: Lsn(self.lsn),
            payload,
            segment_first_lsn: Lsn(self.segment_first_lsn),
            frame_offset: self.frame_offset,
            frame_crc: self.frame_crc,
            txn: self.txn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lsn: u64, buf: usize, start: usize, len: usize) -> RecordAt {
        RecordAt {
            lsn,
            buf,
            start,
            len,
            segment_first_lsn: 1,
            frame_offset: 7,
            frame_crc: 9,
            txn: None,
        }
    }

    #[test]
    fn records_come_out_in_order_with_their_bytes() {
        let mut r = RecordsRead::default();
        let b = r.push_buf(b"..abc.de".to_vec());
        let d = r.push_buf(b"xyz".to_vec());
        r.push(at(5, b, 2, 3));
        r.push(at(6, d, 0, 3));
        r.push(at(7, b, 6, 2));
        assert_eq!(
            (r.len(), r.first_lsn(), r.last_lsn()),
            (3, Some(Lsn(5)), Some(Lsn(7)))
        );
        let first = r
            .next()
            .map(|x| (x.lsn, x.payload, x.frame_offset, x.frame_crc));
        assert_eq!(first, Some((Lsn(5), b"abc".to_vec(), 7, 9)));
        let rest: Vec<_> = r
            .into_records()
            .into_iter()
            .map(|x| (x.lsn, x.payload))
            .collect();
        assert_eq!(
            rest,
            vec![(Lsn(6), b"xyz".to_vec()), (Lsn(7), b"de".to_vec())]
        );
    }

    #[test]
    fn the_bytes_go_with_the_last_record_but_the_largest_buffer_as_the_spare() {
        let mut r = RecordsRead::default();
        let b = r.push_buf(vec![1; 4096]);
        let c = r.push_buf(vec![2; 100]);
        r.push(at(1, b, 0, 10));
        r.push(at(2, c, 0, 10));
        assert!(r.next().is_some());
        assert_eq!(r.take_spare(), None, "no spare while records are left");
        assert!(r.next().is_some());
        assert!(r.is_empty());
        assert!(
            r.bufs.is_empty(),
            "nothing held once all is copied out but the spare"
        );
        assert_eq!((r.next().map(|x| x.lsn), r.first_lsn()), (None, None));
        assert_eq!(r.take_spare().map(|s| s.len()), Some(4096));
        assert_eq!(r.take_spare(), None, "taken once");
        let d = r.push_buf(vec![3; 10]);
        r.push(at(3, d, 0, 10));
        assert!(r.next().is_some());
        r.clear();
        assert_eq!(r.take_spare(), None, "clear drops the spare too");
    }
}

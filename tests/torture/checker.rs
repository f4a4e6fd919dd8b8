//! The checker's own teeth: tampered record lists it must flag.

use crate::sim::check::{verify, Expect, Rec, Violation};
use crate::sim::oracle::{Event, Kind, Tag};
use crate::sim::slot_check::verify_slot;

/// The checks that no broken storage can reach without also breaking a CRC (the reader
/// already refuses it) are shown on tampered record lists instead.
#[test]
fn the_checker_flags_tampered_logs() {
    let tag = |seq: u32, idx: u16, count: u16| Tag {
        kind: if count > 1 {
            Kind::Commit
        } else {
            Kind::Append
        },
        gen: 0,
        client: 0,
        seq,
        idx,
        count,
    };
    let rec = |lsn: u64, t: Tag| Rec {
        lsn,
        payload: t.payload(10),
        txn: (t.count > 1).then_some((t.idx, t.count)),
        segment: 1,
        frame_offset: 0,
    };
    let tags = [tag(0, 0, 1), tag(1, 0, 2), tag(1, 1, 2), tag(2, 0, 1)];
    let good: Vec<Rec> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| rec(i as u64 + 1, *t))
        .collect();
    let events = vec![
        Event::Submitted(vec![tags[0]]),
        Event::Acked {
            lsn: 1,
            payloads: vec![good[0].payload.clone()],
        },
        Event::Submitted(vec![tags[1], tags[2]]),
        Event::Acked {
            lsn: 2,
            payloads: vec![good[1].payload.clone(), good[2].payload.clone()],
        },
        Event::Submitted(vec![tags[3]]),
    ];
    let expect = Expect {
        required: &[],
        events: &events,
    };
    let kinds = |recs: &[Rec]| -> Vec<&'static str> {
        verify(recs, &expect).iter().map(Violation::kind).collect()
    };
    assert!(kinds(&good).is_empty(), "{:?}", verify(&good, &expect));
    assert!(kinds(&good[..2]).contains(&"lost-ack")); // LSN 3 acknowledged, missing
    assert!(kinds(&good[..2]).contains(&"txn-split"));
    let mut dup = good.clone();
    dup[3] = rec(4, tags[0]);
    assert!(kinds(&dup).contains(&"duplicate"));
    let mut gap = good.clone();
    gap[3].lsn = 6;
    assert!(kinds(&gap).contains(&"gap"));
    let mut altered = good.clone();
    altered[0].payload[TAG_BODY_BYTE] ^= 1;
    assert!(kinds(&altered).contains(&"altered"));
    let mut swapped = good.clone();
    swapped[0] = rec(1, tags[3]);
    swapped[3] = rec(4, tags[0]);
    assert!(kinds(&swapped).contains(&"wrong-payload"));
    let mut phantom = good.clone();
    phantom.push(rec(5, tag(9, 0, 1)));
    assert!(kinds(&phantom).contains(&"phantom"));
    let mut failed = events.clone();
    failed.push(Event::Failed(vec![tags[3]]));
    let expect_failed = Expect {
        required: &[],
        events: &failed,
    };
    assert!(verify(&good, &expect_failed)
        .iter()
        .any(|v| v.kind() == "ghost"));
}

/// The slot check (issue 23): the last value acknowledged or one sent after it, never an
/// older one, none, or one never sent.
#[test]
fn the_checker_flags_a_stale_or_invented_slot() {
    let (a, b, c) = (b"a".to_vec(), b"b".to_vec(), b"c".to_vec());
    let events = vec![
        Event::MetaSet(a.clone()),
        Event::MetaAcked(a.clone()),
        Event::MetaSet(b.clone()),
        Event::MetaAcked(b.clone()),
        Event::MetaSet(c.clone()),
    ];
    let stale = |found: Option<&[u8]>| !verify_slot(found, &events).is_empty();
    assert!(!stale(Some(&b)), "the last acknowledged value");
    assert!(
        !stale(Some(&c)),
        "a value sent after it (its outcome unknown)"
    );
    assert!(stale(Some(&a)), "an older acknowledged value");
    assert!(stale(None), "no value after one was acknowledged");
    assert!(stale(Some(b"x")), "a value never sent");
    // Nothing acknowledged yet: nothing, or any value sent.
    let sent_only = &events[..1];
    assert!(verify_slot(None, sent_only).is_empty());
    assert!(verify_slot(Some(&a), sent_only).is_empty());
    assert!(!verify_slot(Some(&b), sent_only).is_empty());
}

/// A byte of a payload's body (after its tag).
const TAG_BODY_BYTE: usize = crate::sim::oracle::TAG_BYTES + 3;

//! The metadata slot's check for the torture test (issue 23): what a recovery may give
//! after the `set_meta` calls of a workload.

use super::check::Violation;
use super::oracle::Event;

/// The metadata slot a recovery found (`found`) against the `set_meta` calls of `events`:
/// the last value acknowledged, or one sent after it (its outcome unknown or failed: it
/// may have reached the disk). Never an older value, nor one never sent. With nothing
/// acknowledged, any value sent, or none.
pub fn verify_slot(found: Option<&[u8]>, events: &[Event]) -> Vec<Violation> {
    let sent: Vec<&[u8]> = events
        .iter()
        .filter_map(|e| match e {
            Event::MetaSet(v) => Some(v.as_slice()),
            _ => None,
        })
        .collect();
    let acked = events.iter().rev().find_map(|e| match e {
        Event::MetaAcked(v) => Some(v.as_slice()),
        _ => None,
    });
    let from = match acked {
        // Values are unique: the last send of the acknowledged one is its position.
        Some(a) => match sent.iter().rposition(|v| *v == a) {
            Some(i) => i,
            None => {
                return vec![Violation::StaleSlot(
                    "acknowledged a value never sent".into(),
                )]
            }
        },
        None if found.is_none() => return Vec::new(),
        None => 0,
    };
    match found {
        Some(f) if sent[from..].contains(&f) => Vec::new(),
        found => vec![Violation::StaleSlot(format!(
            "recovered {:?}, but the last acknowledged value is {:?} ({} sent after it)",
            found.map(String::from_utf8_lossy),
            acked.map(String::from_utf8_lossy),
            sent.len() - from - 1
        ))],
    }
}

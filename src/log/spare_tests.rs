//! Spare segments' unit tests: their names are never segment names.

use super::*;

#[test]
fn spare_names_are_never_segment_names_and_end_in_wal_tmp() {
    let name = spare_name(7);
    assert_eq!(name, "spare-00000000000000000007.wal.tmp");
    assert!(is_spare_name(&name));
    assert!(is_spare_name(&spare_name(u64::MAX)));
    assert_eq!(crate::log::segment::parse_segment_name(&name), None);
    assert!(!is_spare_name("00000000000000000007.wal.tmp"));
    assert!(!is_spare_name("spare-7.wal.tmp"));
    assert!(!is_spare_name("spare-0000000000000000000x.wal.tmp"));
}

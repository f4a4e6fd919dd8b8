//! `FsStorage`'s unit tests: which directory modes count as open to others.

use super::*;

#[test]
fn a_directory_open_to_others_is_looser_than_wanted() {
    assert_eq!(looser_bits(0o40700, PRIVATE.dir), 0);
    assert_eq!(looser_bits(0o40755, PRIVATE.dir), 0o055);
    assert_eq!(looser_bits(0o750, GROUP_READ.dir), 0);
    assert_eq!(looser_bits(0o770, GROUP_READ.dir), 0o020);
    assert_eq!(looser_bits(0o500, PRIVATE.dir), 0);
}

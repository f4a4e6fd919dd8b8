//! `LogOptions`: the knobs of the on-disk log, each with its unit and a default.

use super::recovery::{RecoveryOptions, RecoveryPolicy};
use crate::error::WalError;
use crate::format::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::storage::{default_storage, SharedStorage};

/// Options of the on-disk log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A segment rolls over once the next frame would pass this size. Default 64 MiB, at
    /// most 1 GiB. Readers never hold a whole segment: a 4 MiB window of it, or one frame
    /// if larger.
    pub segment_size_bytes: u64,
    /// Largest payload of one frame (a record, or a whole transaction's entries with 4
    /// bytes of length each). Larger appends are refused; a frame header claiming more is
    /// damage. Default 1 MiB.
    pub max_record_bytes: u64,
    /// Preallocate new segments to `segment_size_bytes` (`fallocate`) so that `fdatasync`
    /// need not update block allocation metadata. Default true.
    pub preallocate: bool,
    /// What recovery does with damage. Default [`RecoveryPolicy::TolerateTornTail`].
    pub recovery_policy: RecoveryPolicy,
    /// The file system the log lives on. Default: the real one.
    pub storage: SharedStorage,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size_bytes: 64 * 1024 * 1024,
            max_record_bytes: 1024 * 1024,
            preallocate: true,
            recovery_policy: RecoveryPolicy::default(),
            storage: default_storage(),
        }
    }
}

impl LogOptions {
    /// Checks the options against each other.
    pub fn validate(&self) -> Result<(), WalError> {
        if self.max_record_bytes == 0 || self.max_record_bytes > u64::from(u32::MAX) {
            return Err(WalError::InvalidConfig(format!(
                "max_record_bytes must be in 1..=4294967295, got {}",
                self.max_record_bytes
            )));
        }
        let needed = (SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES) as u64 + self.max_record_bytes;
        if self.segment_size_bytes > super::scan::MAX_SEGMENT_BYTES {
            return Err(WalError::InvalidConfig(format!(
                "segment_size_bytes ({}) must be at most {} (1 GiB)",
                self.segment_size_bytes,
                super::scan::MAX_SEGMENT_BYTES
            )));
        }
        if self.segment_size_bytes < needed {
            return Err(WalError::InvalidConfig(format!(
                "segment_size_bytes ({}) must hold a segment header and one frame of max_record_bytes ({needed} bytes)",
                self.segment_size_bytes
            )));
        }
        Ok(())
    }

    /// The options recovery needs.
    pub fn recovery_options(&self) -> RecoveryOptions {
        RecoveryOptions {
            policy: self.recovery_policy,
            max_record_bytes: self.max_record_bytes,
            preallocate_bytes: if self.preallocate {
                self.segment_size_bytes
            } else {
                0
            },
        }
    }
}

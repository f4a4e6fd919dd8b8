//! `RetentionPolicy`: what retention (`log/retention.rs`) keeps below the checkpoint, and
//! the cap on what a cursor may hold; `LogDir` carries one, set from `WalConfig`.

/// The retention policy (`WalConfig::retention_bytes`, `retention_secs`,
/// `max_cursor_lag_bytes`). The default keeps nothing below the checkpoint and puts no cap
/// on cursors: a log without cursors then behaves as before cursors existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep at most this many bytes of segments wholly below the checkpoint (the newest
    /// ones). 0: none by bytes.
    pub retention_bytes: u64,
    /// Keep segments wholly below the checkpoint written at most this many seconds ago
    /// (by their modification time). 0: none by age.
    pub retention_secs: u64,
    /// A cursor that would hold more than this many bytes of segments (from the segment
    /// holding its LSN to the newest) is invalidated instead.
    pub max_cursor_lag_bytes: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            retention_bytes: 0,
            retention_secs: 0,
            max_cursor_lag_bytes: u64::MAX,
        }
    }
}

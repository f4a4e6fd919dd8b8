//! The log on disk: segment files, batches and their writer, the reader, the recovery
//! core and truncation. No actix here. Private to the crate (issue 20, item 12): the
//! crate root re-exports what takes the directory lock (`LogWriter`, `LogDir`) and the
//! readers, and `actix_wal::files` the read-only naming and `META` helpers; the feature
//! `internals` opens the rest as `actix_wal::internals` for the crate's own tests.

mod adopt;
pub mod batch;
pub mod batch_records;
pub mod dir;
pub mod handles;
pub mod index;
pub mod intent_check;
pub mod meta;
mod meta_read;
pub mod options;
mod raise;
pub mod read_at;
pub mod reader;
pub mod records_read;
pub mod recovery;
mod recovery_meta;
mod recovery_plan;
pub mod retention;
mod retention_policy;
pub mod rewind;
mod rollover;
pub mod scan;
pub mod segment;
mod shared_meta;
pub mod shared_record;
pub mod spare;
mod spare_rollover;
pub mod sync_log;
mod tail;
pub mod writer;

pub use batch::{Batch, Planner};
pub use dir::LogDir;
pub use index::{LogIndex, SharedIndex};
pub use options::LogOptions;
pub use reader::{LogReader, Record, TxnPosition};
pub use recovery::{RecoveryOptions, RecoveryOutcome, RecoveryPolicy};
pub use recovery_plan::{meta_breach, Adoption, MetaBreach};
pub use retention::{Retained, RetentionPolicy, SegmentUse};
pub use segment::segment_name;
pub use shared_meta::SharedMeta;
pub use shared_record::SharedRecord;
pub use sync_log::{open_log_from, LogWriter};
pub use writer::{BatchFailure, SegmentWriter};
// Only for the crate's tests and benches (`actix_wal::internals`, feature `internals`).
#[cfg(feature = "internals")]
pub use batch::Chunk;
#[cfg(feature = "internals")]
pub use intent_check::{check_intent, IntentConflict, SegmentSpan};
#[cfg(feature = "internals")]
pub use meta::{read_meta, read_meta_copies, CopyState, MetaRead};
#[cfg(feature = "internals")]
pub use segment::{create_segment, list_segments, SegmentFile};
#[cfg(feature = "internals")]
pub use sync_log::open_log;

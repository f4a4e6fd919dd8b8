//! The log on disk: segment files, batches and their writer, the reader, the recovery
//! core and truncation. No actix here.

mod adopt;
pub mod batch;
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
pub mod recovery;
mod recovery_meta;
mod recovery_plan;
pub mod rewind;
mod rollover;
pub mod scan;
pub mod segment;
pub mod spare;
pub mod sync_log;
mod tail;
pub mod writer;

pub use batch::{Batch, Chunk, Planner};
pub use dir::LogDir;
pub use index::{LogIndex, SharedIndex};
pub use intent_check::{check_intent, IntentConflict, SegmentSpan};
pub use meta::{read_meta, read_meta_copies, CopyState, MetaRead, SharedMeta};
pub use options::LogOptions;
pub use reader::{LogReader, Record, TxnPosition};
pub use recovery::{RecoveryOptions, RecoveryOutcome, RecoveryPolicy};
pub use recovery_plan::Adoption;
pub use segment::{create_segment, list_segments, segment_name, SegmentFile};
pub use sync_log::{open_log, open_log_from, LogWriter};
pub use writer::{BatchFailure, SegmentWriter};

//! `earl eval run`: generate an edit for every selected sample of a benchmark, judge it, and keep everything in a run
//! directory that survives interruption ([`record`] is its contract).
pub mod record;

pub use record::{MeanStd, MetricTable, SampleRecord, Summary};

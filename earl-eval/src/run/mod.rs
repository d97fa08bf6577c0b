//! `earl eval run`: generate an edit for every selected sample of a benchmark, judge it, and keep everything in a run
//! directory that survives interruption ([`record`] is its contract).
pub mod record;

pub use record::{MeanStd, MetricTable, SampleRecord, Summary};

/// Settings of one evaluation as a TOML table or CLI flags (serde mirror; validated by [`EvalConfig::from_raw`]).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvalConfig {
    /// Benchmark name.
    pub benchmark: Option<String>,
}

/// A validated evaluation.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Benchmark name.
    pub benchmark: String,
}

impl EvalConfig {
    /// Validates `raw`; relative paths are resolved against `base_dir`.
    pub fn from_raw(raw: RawEvalConfig, base_dir: &std::path::Path) -> earl_core::Result<Self> {
        let _ = base_dir;
        let benchmark = raw.benchmark.ok_or_else(|| earl_core::Error::Input("eval: `benchmark` is required".into()))?;
        Ok(Self { benchmark })
    }
}

/// Runs (or resumes) the evaluation `cfg` into the run directory `out`; `force` allows reusing a directory made by
/// another model or config (its samples are then discarded, never mixed).
pub fn run_eval(cfg: &EvalConfig, out: &std::path::Path, force: bool) -> earl_core::Result<Summary> {
    let _ = (cfg, out, force);
    Err(earl_core::Error::Input("eval: the runner is not merged yet".into()))
}

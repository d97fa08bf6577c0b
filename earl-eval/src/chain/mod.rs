//! Experiment chains (`earl experiment run FILE.toml`): one file that names the stages of a paper run — SFT, then
//! GRPO, then evaluation on one or more benchmarks, any of them left out but never reordered — each stage one of the
//! existing experiment files with overrides, and the model each stage starts from wired to the output of the stage
//! before (or of another chain's, `[chain] from`). The format is documented in experiments/README.md and
//! docs/eval.md ("Experiment chains").
//!
//! * [`config`]: reading and validating a chain file ([`Chain`]); nothing runs, nothing needs to exist.
//! * [`stages`]: the validated stages, their inputs and outputs.
//! * [`manifest`]: `chain.json`, the chain's record of every stage (fingerprint, status, output, timings).
//! * [`run`]: running a chain through a [`StageRunner`], resuming at the first unfinished stage.
//! * [`table`]: `earl experiment compare`, the paper's table over chains.
pub mod config;
pub mod manifest;
pub mod run;
pub mod stages;
pub mod table;
mod wiring;

pub use config::{Chain, Upstream};
pub use manifest::{ChainManifest, StageRecord, Status, MANIFEST};
pub use run::{run_chain, Event, StageError, StageRunner};
pub use stages::{EvalStage, RlStage, SftStage, StageInput, StageKind, StageOutput};
pub use table::{chain_row, format_table, over_seeds, ChainRow, Spread};

/// An I/O error on `path` (earl-core's own constructor is private to it).
pub(crate) fn io_err(path: &std::path::Path, source: std::io::Error) -> earl_core::Error {
    earl_core::Error::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests;

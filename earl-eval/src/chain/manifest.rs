//! `chain.json`, one per chain in its directory: every stage with its fingerprint (hash and fields, so a refused
//! rerun names what changed), status, directory, output and timings. It is rewritten atomically at every change of
//! status, and a stage is recorded `done` only once its output is complete (the final checkpoint written, the
//! summary returned), so a chain killed at any moment resumes at its first stage that is not `done`.
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use earl_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::stages::{StageKind, StageOutput};

/// The manifest's file name in the chain's directory.
pub const MANIFEST: &str = "chain.json";

/// Where a stage stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not started.
    Pending,
    /// Started and not finished (running now, or killed: a rerun resumes it through its own checkpoints).
    Running,
    /// Stopped by an error (a rerun resumes it).
    Failed,
    /// Finished; its output is complete.
    Done,
}

/// One stage in `chain.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// `sft`, `rl` or `eval/<benchmark>`.
    pub name: String,
    /// The stage's kind.
    pub kind: StageKind,
    /// SHA-256 of the stage's fingerprint.
    pub fingerprint: String,
    /// The fingerprint's fields.
    pub config: serde_json::Value,
    /// Where it stands.
    pub status: Status,
    /// Its run directory.
    pub dir: PathBuf,
    /// What a training stage handed on (once done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<StageOutput>,
    /// An evaluation's `summary.json` (once done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PathBuf>,
    /// An evaluation's mean overall VIEScore (once done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vie_all: Option<f64>,
    /// Unix time the last attempt started.
    #[serde(default)]
    pub started_unix: Option<u64>,
    /// Unix time it finished.
    #[serde(default)]
    pub finished_unix: Option<u64>,
    /// Wall seconds of all attempts together.
    #[serde(default)]
    pub seconds: f64,
    /// Attempts (runs that started it).
    #[serde(default)]
    pub attempts: u32,
    /// The error that stopped the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `chain.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainManifest {
    /// The chain's name.
    pub chain: String,
    /// The chain file it was last run from.
    pub file: PathBuf,
    /// The stages, in the order they run.
    pub stages: Vec<StageRecord>,
}

/// Seconds since the epoch.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ChainManifest {
    /// The manifest in the chain directory `dir`; `None` if the chain never ran there.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(super::io_err(&path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| Error::Json {
            path: path.clone(),
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        })
    }

    /// Writes it to the chain directory `dir` (atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        earl_core::fsio::write_atomic(&dir.join(MANIFEST), text.as_bytes())
    }

    /// The record of the stage `name`.
    pub fn stage(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The record of the stage `name`, mutable.
    pub fn stage_mut(&mut self, name: &str) -> Option<&mut StageRecord> {
        self.stages.iter_mut().find(|s| s.name == name)
    }
}

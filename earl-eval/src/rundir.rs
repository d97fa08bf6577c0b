//! Reading a run directory back (the contract of [`crate::run::record`]): `summary.json` for the table, and
//! `summary.json` plus `samples.jsonl` for the report and the comparison. A run is identified by its manifest: the
//! model (hash, else path) and an optional label; the readers are lenient about which of the manifest's keys a run
//! carries, so that a run made by an older or newer runner still tabulates (docs/eval.md, "Tables and reports").
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use earl_core::{Error, Result};
use serde_json::Value;

use crate::run::{SampleRecord, Summary};

/// File names inside a run directory.
pub const SUMMARY_FILE: &str = "summary.json";
/// One [`SampleRecord`] per line.
pub const SAMPLES_FILE: &str = "samples.jsonl";

/// Which model a run evaluated and under what name it is shown: the table's row key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunIdentity {
    /// The user's label (`manifest.label`), when the run has one.
    pub label: Option<String>,
    /// The model's hash when the manifest has one, else its path, else the run directory (a row of its own).
    pub model: String,
}

impl RunIdentity {
    /// What a table row is called: the label, else the model path's last component (or the hash).
    pub fn display(&self) -> String {
        match &self.label {
            Some(l) => l.clone(),
            None => Path::new(&self.model).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        }
    }
}

/// A run directory's summary, with what the table needs from its manifest.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The directory.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: Summary,
    /// The run's model and label.
    pub identity: RunIdentity,
    /// The sampling seed (`manifest.seed`), when recorded.
    pub seed: Option<u64>,
}

/// Reads `DIR/summary.json`.
pub fn read_summary(dir: &Path) -> Result<RunSummary> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| json_error(&path, &e))?;
    let m = &summary.manifest;
    let label = string_at(m, &["label"]).or_else(|| string_at(m, &["settings", "label"]));
    let model = string_at(m, &["model_hash"])
        .or_else(|| string_at(m, &["model", "sha256"]))
        .or_else(|| string_at(m, &["model", "hash"]))
        .or_else(|| string_at(m, &["model_path"]))
        .or_else(|| string_at(m, &["model", "path"]))
        .or_else(|| string_at(m, &["model"]))
        .unwrap_or_else(|| dir.display().to_string());
    let seed = u64_at(m, &["seed"]).or_else(|| u64_at(m, &["settings", "seed"]));
    Ok(RunSummary { dir: dir.to_path_buf(), summary, identity: RunIdentity { label, model }, seed })
}

/// A whole run directory: its summary and its samples, in file order, one per (benchmark, row).
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Summary and identity.
    pub run: RunSummary,
    /// The samples; a row written twice (a re-judged sample appended by a resumed run) keeps its last line.
    pub samples: Vec<SampleRecord>,
}

impl RunDir {
    /// Reads `DIR/summary.json` and `DIR/samples.jsonl`. A malformed line is an error naming it, except a last
    /// line without its newline (a write cut by `kill -9`), which is skipped with a warning.
    pub fn open(dir: &Path) -> Result<Self> {
        let run = read_summary(dir)?;
        let path = dir.join(SAMPLES_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let mut samples: Vec<SampleRecord> = Vec::new();
        let mut index: BTreeMap<(String, usize), usize> = BTreeMap::new();
        let lines: Vec<&str> = text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec: SampleRecord = match serde_json::from_str(line) {
                Ok(r) => r,
                Err(_) if i + 1 == lines.len() => {
                    tracing::warn!("{}:{}: skipping an unfinished last line", path.display(), i + 1);
                    continue;
                }
                Err(e) => {
                    let msg = format!("line {}: not a sample record: {e}", i + 1);
                    return Err(Error::Data { path, msg });
                }
            };
            match index.get(&(rec.benchmark.clone(), rec.row)) {
                Some(&k) => samples[k] = rec,
                None => {
                    index.insert((rec.benchmark.clone(), rec.row), samples.len());
                    samples.push(rec);
                }
            }
        }
        Ok(Self { run, samples })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.run.dir
    }
}

/// A sample's score by metric name (`vie_all`, `vie_sc`, `vie_pq` or a sub-score).
pub fn metric_of(s: &SampleRecord, metric: &str) -> Option<f64> {
    match metric {
        "vie_all" => s.vie_all,
        "vie_sc" => s.vie_sc,
        "vie_pq" => s.vie_pq,
        "edit_success" => s.edit_success,
        "overediting" => s.overediting,
        "naturalness" => s.naturalness,
        "artifacts" => s.artifacts,
        _ => None,
    }
}

/// The seven metrics of a run, in the order reports show them.
pub const METRICS: [&str; 7] =
    ["vie_all", "vie_sc", "vie_pq", "edit_success", "overediting", "naturalness", "artifacts"];

fn json_error(path: &Path, e: &serde_json::Error) -> Error {
    Error::Json { path: path.to_path_buf(), line: e.line(), column: e.column(), msg: e.to_string() }
}

fn at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| v.get(k))
}

fn string_at(v: &Value, keys: &[&str]) -> Option<String> {
    at(v, keys).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

fn u64_at(v: &Value, keys: &[&str]) -> Option<u64> {
    at(v, keys).and_then(Value::as_u64)
}

//! The run directory's records, the contract that `earl eval judge`, `table`, `report` and `compare`, the tests and
//! users' scripts read (docs/eval.md): one [`SampleRecord`] per line of `samples.jsonl`, and `summary.json` as a
//! [`Summary`]. Field names are fixed here and nowhere else.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One evaluated sample (a line of `samples.jsonl`). Paths are relative to the run directory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Benchmark name.
    pub benchmark: String,
    /// Index of the row in the dataset (file-name order, then row order).
    pub row: usize,
    /// The dataset's own id, raw.
    pub native_id: serde_json::Value,
    /// The edit instruction as given to the model.
    pub instruction: String,
    /// Task column, when the benchmark has one.
    pub task: Option<String>,
    /// AURORA's source column, when the benchmark has one.
    pub source: Option<String>,
    /// The source resized to the judge's area (what the judge saw as "original").
    pub original: Option<String>,
    /// The edited image (white 256×256 when none decoded).
    pub edited: Option<String>,
    /// The ground truth, when the benchmark has one.
    pub gt: Option<String>,
    /// Text the model wrote before the image (its reasoning chain).
    pub reasoning: String,
    /// `eos`, `length` (cut by the token cap) or `error`.
    pub finish_reason: String,
    /// Whether the completion held a decodable image.
    pub valid_image: bool,
    /// The edited grid as `[h, w]`, when one decoded.
    pub grid: Option<[u32; 2]>,
    /// The sampling seed of the run (the sample's stream is keyed by (seed, row)).
    pub seed: u64,
    /// The token budget this sample ran with.
    pub max_new_tokens: usize,
    /// Prompt ids, prefill included.
    pub prompt_ids: Vec<i64>,
    /// Generated ids.
    pub generated_ids: Vec<i64>,
    /// The judge's raw replies.
    pub judge_replies: Vec<String>,
    /// The judge's reasons.
    pub judge_reasons: Vec<String>,
    /// Semantic consistency (0–10).
    pub vie_sc: Option<f64>,
    /// Perceptual quality (0–10).
    pub vie_pq: Option<f64>,
    /// Overall = √(SC·PQ).
    pub vie_all: Option<f64>,
    /// SC sub-score 1.
    pub edit_success: Option<f64>,
    /// SC sub-score 2.
    pub overediting: Option<f64>,
    /// PQ sub-score 1.
    pub naturalness: Option<f64>,
    /// PQ sub-score 2.
    pub artifacts: Option<f64>,
    /// Why the sample has no edit (unreadable row, unencodable source) or no image (why none decoded), if so.
    pub error: Option<String>,
    /// Whether the judge failed on this sample (its scores are then the mode's: 0 in `reference` mode).
    pub judge_failed: bool,
    /// Why the judge failed (transport error, unparsable reply), if it did.
    #[serde(default)]
    pub judge_error: Option<String>,
    /// Whether a judge has scored this sample (false in a run without a judge, and for rows without an edit).
    #[serde(default)]
    pub judged: bool,
    /// The row's extra data for the judge ([`crate::bench::BenchRow::extra`]), kept for `earl eval judge`.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
    /// Seconds spent generating this sample.
    pub generate_s: f64,
}

/// Mean and population standard deviation of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean over the counted samples.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Samples counted.
    pub count: usize,
}

/// Metric name → statistics.
pub type MetricTable = BTreeMap<String, MeanStd>;

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Benchmark name.
    pub benchmark: String,
    /// Samples in the run.
    pub n: usize,
    /// `vie_all`, `vie_sc`, `vie_pq`, `edit_success`, `overediting`, `naturalness`, `artifacts`.
    pub metrics: MetricTable,
    /// `"source"`, `"task"`, `"source_task"` → group name → metrics (only the groupings the benchmark has).
    pub groups: BTreeMap<String, BTreeMap<String, MetricTable>>,
    /// Samples the judge failed on (counted in the means as the mode says).
    pub judge_failures: usize,
    /// Samples whose completion held no decodable image.
    pub invalid_images: usize,
    /// Samples without an edit (unreadable row or unencodable source): recorded with their error, not scored.
    #[serde(default)]
    pub errors: usize,
    /// Samples no judge has scored yet (a run without a judge; `earl eval judge` scores them).
    #[serde(default)]
    pub unjudged: usize,
    /// Commit, model and VQ hashes, judge, prompt hashes, seed and every setting.
    pub manifest: serde_json::Value,
}

//! Evaluation benchmarks: the six datasets of the paper's table (OmniEdit, EmuEdit, AURORA, MagicBrush, VisMin,
//! I2EBench) read from local copies of their Hugging Face parquet files, a generic adapter for any parquet or JSONL
//! file with named columns, and (with [mini]) the synthetic world's test splits. A benchmark is a
//! [`BenchmarkSource`]: the dataset's rows in file-name then row order, the reference's selection of them (all rows,
//! or the first 1000 of `Dataset.shuffle(seed=42)`), and one [`BenchRow`] per selected index. The selection and the
//! rows are the reference's (mair-lab/EARL `baselines/`); `earl eval run` only reads them.
//!
//! [`files`] picks a benchmark's files in its download, [`table`] reads their rows, [`shuffle`] is numpy's
//! permutation bit for bit, and [`adapters`] holds the benchmark definitions.
pub mod adapters;
pub mod files;
pub mod shuffle;
pub mod table;

use image::RgbImage;

use earl_core::Result;

/// One benchmark sample, as the evaluation loop consumes it.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// The row's index in the dataset (file-name order, then row order): the sample's identity in a run directory
    /// and the key of its sampling stream.
    pub row: usize,
    /// The dataset's own id of the row, raw (`idx`, `id`, `omni_edit_id`, …); `Null` when it has none.
    pub native_id: serde_json::Value,
    /// The edit instruction, after the benchmark's cleaning (VisMin's `edit_instruction: ` prefix removed).
    pub instruction: String,
    /// The source image, as stored (not resized).
    pub source_image: RgbImage,
    /// The ground-truth edit, when the benchmark has one.
    pub ground_truth: Option<RgbImage>,
    /// The task column (`task`, or VisMin's file-derived task), when the benchmark has one.
    pub task: Option<String>,
    /// AURORA's `source` column, when the benchmark has one.
    pub source: Option<String>,
    /// Extra per-row data a judge may need (the mini world's scene graphs); `Null` otherwise.
    pub extra: serde_json::Value,
}

/// A benchmark opened over its data.
pub trait BenchmarkSource: Send + Sync {
    /// The benchmark's name (`omniedit`, …, `generic`, `mini-s-test`, …).
    fn name(&self) -> &str;
    /// Rows in the whole dataset (before selection).
    fn dataset_len(&self) -> usize;
    /// The reference's selection: dataset row indices in evaluation order.
    fn selection(&self) -> &[usize];
    /// Reads dataset row `row`. An unreadable image or text cell is an error naming the file, row and column; the
    /// evaluation records it on the sample and goes on.
    fn read(&self, row: usize) -> Result<BenchRow>;
    /// What a run manifest records about the data: files with sizes and SHA-256, columns, selection rule.
    fn manifest(&self) -> serde_json::Value;
}

/// Column names of the generic adapter (`--benchmark generic`): any parquet or JSONL file with named columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenericColumns {
    /// Source image column.
    pub source: String,
    /// Instruction column.
    pub instruction: String,
    /// Ground-truth image column (optional).
    pub gt: Option<String>,
    /// Task column (optional).
    pub task: Option<String>,
    /// Id column (optional).
    pub id: Option<String>,
}

/// Opens benchmark `name` over the dataset directory (or file) `data`; `columns` is used by `generic` only.
/// Unknown names, a missing directory, missing or renamed columns and an empty benchmark are one-line errors.
/// The mini world's test splits (`mini-…`, [`crate::mini`]) are generated, not read: `data` only may give a seed.
pub fn open(name: &str, data: &std::path::Path, columns: Option<&GenericColumns>) -> Result<Box<dyn BenchmarkSource>> {
    if crate::mini::is_mini(name) {
        return Ok(Box::new(crate::mini::MiniBenchmark::open(name, data)?));
    }
    let spec = adapters::spec(name, columns)?;
    if columns.is_some() && name != "generic" {
        tracing::warn!("benchmark {name}: the generic columns given are ignored (they are for `generic` only)");
    }
    Ok(Box::new(adapters::Benchmark::open(spec, data)?))
}

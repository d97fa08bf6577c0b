//! `earl eval run`: generate an edit for every selected sample of a benchmark, judge it, and keep everything in a run
//! directory that survives interruption ([`record`] is its contract, [`dir`] its files). [`config`] holds the
//! settings, [`runner`] the loop, [`judging`] the verdicts and `earl eval judge`, [`summary`] the aggregates and
//! [`manifest`] what identifies a run. Progress (a bar with ETA and tokens/s in the CLI) is reported through
//! [`Progress`]; the library prints nothing.
pub mod config;
pub mod dir;
pub mod judging;
pub mod manifest;
pub mod record;
pub mod runner;
pub mod summary;

use std::path::Path;

use earl_core::device::{default_dtype, device_name, dtype_name, parse_device, parse_dtype};
use earl_core::{Editor, Error, Result};
use serde_json::json;
use tch::Device;

pub use config::{EvalConfig, JudgeConfig, RawEvalConfig};
pub use judging::{judge_fingerprint, judge_run_with};
pub use record::{MeanStd, MetricTable, SampleRecord, Summary};

use crate::bench::BenchmarkSource;
use crate::judge::Judge;
use dir::{write_report_hook, RunDir};

/// An I/O error on `path`.
pub(crate) fn io_err(path: impl AsRef<Path>, source: std::io::Error) -> Error {
    Error::Io { path: path.as_ref().to_path_buf(), source }
}

/// What a run reports as it goes (all methods default to nothing).
pub trait Progress: Send {
    /// The run's size: `total` samples selected, `done` already in the directory.
    fn start(&mut self, total: usize, done: usize) {
        let _ = (total, done);
    }
    /// `n` tokens were generated.
    fn tokens(&mut self, n: usize) {
        let _ = n;
    }
    /// A sample was finished and written.
    fn sample(&mut self, rec: &SampleRecord) {
        let _ = rec;
    }
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Runs (or resumes) the evaluation `cfg` into the run directory `out`; `force` allows reusing a directory made by
/// another model or config (its samples are then discarded, never mixed).
pub fn run_eval(cfg: &EvalConfig, out: &Path, force: bool) -> Result<Summary> {
    run_eval_with(cfg, out, force, &mut NoProgress)
}

/// [`run_eval`] reporting to `progress`: opens the benchmark ([`crate::bench::open`]) and builds the judge of
/// `cfg`: VIEScore with `judge_url`; without it, the exact verifier for a mini benchmark and none otherwise.
pub fn run_eval_with(cfg: &EvalConfig, out: &Path, force: bool, progress: &mut dyn Progress) -> Result<Summary> {
    let bench = crate::bench::open(&cfg.benchmark, &cfg.data, cfg.columns.as_ref())?;
    let judge: Option<Box<dyn Judge>> = match &cfg.judge {
        Some(j) => Some(Box::new(j.build()?)),
        None if crate::mini::is_mini(&cfg.benchmark) => Some(Box::new(crate::mini::MiniJudge)),
        None => None,
    };
    run_eval_on(cfg, bench.as_ref(), judge.as_deref(), out, force, progress)
}

/// The run itself, over an opened benchmark and judge (the mini world's verifier, or a test's rows).
pub fn run_eval_on(
    cfg: &EvalConfig,
    bench: &dyn BenchmarkSource,
    judge: Option<&dyn Judge>,
    out: &Path,
    force: bool,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    let all = bench.selection();
    let selection = &all[..cfg.limit.unwrap_or(all.len()).min(all.len())];
    if selection.is_empty() {
        return Err(Error::Input(format!("benchmark {} has no samples in {}", bench.name(), cfg.data.display())));
    }
    let prefill: earl_core::Prefill = cfg.mode.parse()?;
    let device = parse_device(&cfg.device)?;
    let kind = match &cfg.dtype {
        Some(d) => parse_dtype(d)?,
        None => default_dtype(device),
    };
    let vq_kind = parse_dtype(&cfg.vq_dtype)?;
    let hash = |p: &Path| manifest::dir_hashes(p);
    let (model, vq) = (hash(&cfg.model)?, hash(&cfg.vq)?);
    let tokenizer = if cfg.tokenizer == cfg.model { model.clone() } else { hash(&cfg.tokenizer)? };
    let judge_manifest = judge.map_or(serde_json::Value::Null, |j| j.manifest());
    let settings = json!({
        "seed": cfg.seed, "mode": prefill.to_string(), "area": cfg.area, "judge_area": cfg.judge_area,
        "max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size, "sampling": cfg.sampling, "grid_constraint": true, "cfg": false,
        "dtype": dtype_name(kind), "vq_dtype": dtype_name(vq_kind),
        "device_type": if matches!(device, Device::Cpu) { "cpu" } else { "cuda" },
    });
    let fingerprint = json!({
        "benchmark": bench.name(), "data": bench.manifest(), "model": model["sha256"], "vq": vq["sha256"],
        "tokenizer": tokenizer["sha256"], "settings": settings, "judge": judge_fingerprint(&judge_manifest),
    });
    let mut all_settings = settings.clone();
    all_settings["limit"] = json!(cfg.limit);
    all_settings["device"] = json!(device_name(device));
    let engine = earl_core::generate::Engine::resolve(&cfg.engine, device)?;
    engine.check_device(device)?;
    all_settings["engine"] = json!(engine.as_str());
    let manifest = json!({
        "commit": manifest::commit(), "benchmark": bench.name(), "data": bench.manifest(), "dataset_len":
        bench.dataset_len(), "model": model, "vq": vq, "tokenizer": tokenizer, "seed": cfg.seed,
        "settings": all_settings, "judge": judge_manifest,
    });
    let dir = RunDir::open(out, &fingerprint, &manifest, force)?;
    let todo = runner::remaining(selection, &dir.load_samples()?);
    progress.start(selection.len(), selection.len() - todo.len());
    if !todo.is_empty() {
        let mut editor = Editor::load(&cfg.model, &cfg.vq, &cfg.tokenizer, kind, vq_kind, device)?;
        editor.codec.image_cfg.area = cfg.area;
        let r = runner::Runner { cfg, editor: &editor, prefill, bench, engine };
        r.run(&dir, &todo, judge, progress)?;
    }
    finish(&dir, bench.name(), selection)
}

/// Writes `summary.json` over the samples of `selection` (in its order) and calls the report hook.
fn finish(dir: &RunDir, benchmark: &str, selection: &[usize]) -> Result<Summary> {
    let samples = dir.load_samples()?;
    let by_row: std::collections::HashMap<usize, &SampleRecord> = samples.iter().map(|r| (r.row, r)).collect();
    let selected: Vec<SampleRecord> = selection.iter().filter_map(|r| by_row.get(r).map(|&s| s.clone())).collect();
    let manifest: serde_json::Value = std::fs::read_to_string(dir.file(dir::MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let summary = summary::summarize(benchmark, &selected, manifest);
    dir.write_summary(&summary)?;
    write_report_hook(dir, &summary, &selected)?;
    Ok(summary)
}

/// `earl eval judge RUN_DIR`: re-scores the run's saved edits with the judge of `judge` (see [`judging`]); without
/// one, a run of a mini benchmark is re-scored by the exact verifier, as `earl eval run` judges it, and any other
/// run is an error (VIEScore needs an endpoint).
pub fn judge_run(out: &Path, judge: Option<&JudgeConfig>, progress: &mut dyn Progress) -> Result<Summary> {
    match judge {
        Some(judge) => {
            let j = judge.build()?;
            judge_run_with(out, &j, judge.concurrency.max(1) * 2, progress)
        }
        None => {
            let benchmark = run_benchmark(out)?;
            if !crate::mini::is_mini(&benchmark) {
                return Err(Error::Input(format!(
                    "{}: a {benchmark} run is judged by VIEScore, which needs --judge-url (only mini benchmarks have \
                     a built-in judge)",
                    out.display()
                )));
            }
            judge_run_with(out, &crate::mini::MiniJudge, 64, progress)
        }
    }
}

/// The benchmark a run directory's manifest names.
fn run_benchmark(out: &Path) -> Result<String> {
    let path = out.join(dir::MANIFEST);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| Error::Input(format!("{} is not a run directory (no {})", out.display(), dir::MANIFEST)))?;
    let m: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })?;
    m["benchmark"].as_str().map(str::to_string).ok_or_else(|| Error::Data { path, msg: "names no benchmark".into() })
}

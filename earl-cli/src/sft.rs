//! `earl sft --config experiments/sft/….toml`: runs or resumes an SFT experiment (earl-core `train::run_sft`),
//! writes `run_manifest.json` (config hash, git commit, seed, versions) beside the metrics log and checkpoints, and
//! shows a progress bar with loss, lr and throughput. The output directory is locked before anything is written to
//! it, so a second run there stops with an error naming the first.
use std::path::PathBuf;

use anyhow::{Context, Result};
use earl_core::runlock::RunLock;
use earl_core::tokenizer::Emu3Tokenizer;
use earl_core::train::run::RunSummary;
use earl_core::train::{
    open_sources, open_validation_sources, run_sft_locked, DataStream, RunControl, SftExperiment, ValidationSet,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct SftArgs {
    /// Experiment file (TOML; `${VAR}` in paths is read from the environment).
    #[arg(long)]
    pub config: PathBuf,
    /// Override the experiment's `device` (auto, cpu, cuda, cuda:N; the experiment's default is auto: cuda when
    /// available, else cpu).
    #[arg(long)]
    pub device: Option<String>,
    /// Override `max_steps` (e.g. a short smoke run).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Run directory; overrides the experiment's `output_dir`.
    #[arg(long = "out", alias = "output-dir")]
    pub out: Option<PathBuf>,
    /// Skip checking every shard's SHA-256 against its manifest before training.
    #[arg(long)]
    pub no_verify: bool,
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn run(args: &SftArgs) -> Result<i32> {
    let mut exp = SftExperiment::from_file(&args.config)?;
    if let Some(d) = &args.device {
        exp.device = d.clone();
    }
    if let Some(n) = args.max_steps {
        exp.max_steps = n;
    }
    if let Some(o) = &args.out {
        exp.output_dir = o.clone();
    }
    train(&exp, &args.config, !args.no_verify)?;
    Ok(0)
}

/// Runs or resumes `exp` (read from `config_file`) as `earl sft` does: run manifest, progress bar, summary line.
/// `earl experiment run` runs its SFT stages through this.
pub fn train(exp: &SftExperiment, config_file: &std::path::Path, verify: bool) -> Result<RunSummary> {
    // Before the (possibly slow) data loading, so a second run on the directory fails at once.
    let lock = RunLock::acquire(&exp.output_dir)?;
    if verify {
        crate::data::verify_datasets(exp.data_paths.iter().chain(&exp.validation_paths))?;
    }
    let tok = if exp.data_format == earl_core::train::DataFormat::Edits {
        Some(
            Emu3Tokenizer::from_dir(&exp.tokenizer)
                .with_context(|| format!("tokenizer {}", exp.tokenizer.display()))?,
        )
    } else {
        None
    };
    let sources = open_sources(exp, tok.as_ref())?;
    let mut stream = DataStream::new(sources, exp.coefficients.as_deref(), exp.seed)?;
    let validation = if exp.validation_paths.is_empty() {
        None
    } else {
        let sources = open_validation_sources(exp, tok.as_ref())?;
        Some(ValidationSet::sample(&sources, exp.validation_size, exp.seed)?)
    };
    let manifest = serde_json::json!({
        "experiment": exp.name,
        "config_file": config_file,
        "config_hash": exp.hash(),
        "config": exp,
        "git_commit": git_commit(),
        "seed": exp.seed,
        "earl_version": env!("CARGO_PKG_VERSION"),
        "libtorch_cuda": tch::Cuda::is_available(),
        "samples_per_epoch": stream.epoch_len(),
        "validation_samples": validation.as_ref().map_or(0, |v| v.len()),
    });
    let path = exp.output_dir.join("run_manifest.json");
    earl_core::fsio::write_atomic(&path, (serde_json::to_string_pretty(&manifest)? + "\n").as_bytes())?;

    let device = earl_core::device::parse_device(&exp.device)?;
    let kind = if exp.bf16 { tch::Kind::BFloat16 } else { tch::Kind::Float };
    crate::choice::announce("sft", device, Some(kind), Some(&exp.output_dir));
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")?.progress_chars("=> "),
    );
    bar.set_prefix(exp.name.clone());
    let mut last_eval = None;
    let summary = run_sft_locked(&lock, exp, &mut stream, validation.as_ref(), RunControl::default(), &mut |log| {
        bar.set_length(log.total_steps);
        bar.set_position(log.report.step);
        if let Some(e) = log.eval {
            bar.println(format!("step {}: eval_loss {:.4} ({} samples)", log.report.step, e.eval_loss, e.eval_samples));
            last_eval = Some(e.eval_loss);
        }
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} |g| {:.2} {:.0} tok/s",
            log.report.loss, log.report.lr, log.report.grad_norm, log.tokens_per_s
        ));
    })?;
    bar.finish();
    let first = summary.losses.first().copied().unwrap_or(f64::NAN);
    let last = summary.losses.last().copied().unwrap_or(f64::NAN);
    let eval = last_eval.map_or(String::new(), |e| format!(", last eval_loss {e:.4}"));
    println!(
        "sft {}: steps {}..{} of {}, loss {first:.4} → {last:.4}{eval}; checkpoints and metrics.jsonl in {}",
        exp.name,
        summary.start_step,
        summary.final_step,
        summary.total_steps,
        exp.output_dir.display()
    );
    Ok(summary)
}

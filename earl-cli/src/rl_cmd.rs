//! `earl rl --config experiments/rl/….toml`: the GRPO loop (earl-core `rl::run`) with the rewards the config
//! enables (offline ones, or the verifier through earl-eval). Metrics go to `<run>/metrics.jsonl`, episodes to
//! `<run>/episodes/`, checkpoints to `<run>/checkpoints/`; rerunning the command resumes.
use std::path::PathBuf;

use anyhow::{Context, Result};
use earl_core::device::parse_dtype;
use earl_core::rl::run::{RlOptions, RlRunner};
use earl_eval::RlExperiment;

#[derive(clap::Args)]
pub struct RlArgs {
    /// Experiment file (TOML; see docs/rl.md).
    #[arg(long)]
    config: PathBuf,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Compute dtype (masters and optimizer state stay f32). Default: bf16 on CUDA, f32 on CPU.
    #[arg(long)]
    dtype: Option<String>,
    /// Vision tokenizer (needed by pixel and verifier rewards, and for episode images).
    #[arg(long)]
    vq: Option<PathBuf>,
    /// Vision-tokenizer dtype (EARL decodes in f32 whatever the policy runs in).
    #[arg(long, default_value = "f32")]
    vq_dtype: String,
    /// Decode path of the rollouts: eager, graph (CUDA graphs; CUDA only) or auto (graph on CUDA, else eager).
    #[arg(long, default_value = "auto")]
    engine: String,
    /// Run directory (default: base_exp_dir/run_name of the config).
    #[arg(long = "out", alias = "out-dir")]
    out: Option<PathBuf>,
    /// Stop after this many iterations in total.
    #[arg(long)]
    max_iterations: Option<u64>,
    /// Skip checking every shard's SHA-256 against its manifest before training.
    #[arg(long)]
    no_verify: bool,
}

pub fn run(a: &RlArgs) -> Result<i32> {
    let exp = RlExperiment::load(&a.config).with_context(|| format!("reading {}", a.config.display()))?;
    let how = RunHow {
        device: &a.device,
        dtype: a.dtype.as_deref(),
        vq: a.vq.clone(),
        vq_dtype: &a.vq_dtype,
        engine: &a.engine,
        out: a.out.clone(),
        max_iterations: a.max_iterations,
        verify: !a.no_verify,
    };
    train(exp, &how)?;
    Ok(0)
}

/// Where and how an RL experiment runs (what its file does not say): `earl rl`'s flags, or a chain's `[rl]` keys.
pub struct RunHow<'a> {
    pub device: &'a str,
    pub dtype: Option<&'a str>,
    pub vq: Option<PathBuf>,
    pub vq_dtype: &'a str,
    pub engine: &'a str,
    pub out: Option<PathBuf>,
    pub max_iterations: Option<u64>,
    pub verify: bool,
}

/// Runs or resumes `exp` as `earl rl` does, one line per iteration. `earl experiment run` runs its RL stages
/// through this.
pub fn train(exp: RlExperiment, a: &RunHow<'_>) -> Result<()> {
    let (device, kind) = crate::choice::device_and_dtype(a.device, a.dtype)?;
    let engine = earl_core::generate::Engine::resolve(a.engine, device)?;
    engine.check_device(device)?;
    if a.verify {
        crate::data::verify_datasets(exp.rl.data.train_paths.iter())?;
    }
    let rewards = earl_eval::rewards::reward_set_for_data(&exp.rl.reward, &exp.verifier, &exp.rl.data.train_paths)?;
    let reachable = std::time::Duration::from_secs(5);
    earl_eval::rewards::check_verifier_reachable(&exp.rl.reward, &exp.verifier, reachable)?;
    let vq_kind = parse_dtype(a.vq_dtype)?;
    let opts = RlOptions {
        device,
        kind,
        vq_dir: a.vq.clone(),
        vq_kind,
        out_dir: a.out.clone(),
        max_iterations: a.max_iterations,
        engine,
    };
    let mut runner = RlRunner::new(exp.rl, rewards, &opts)?;
    crate::choice::announce("rl", device, Some(kind), Some(runner.out_dir()));
    eprintln!("rl: rollouts on the {engine} engine");
    runner.run(&mut |r| {
        println!(
            "iter {:>4}  reward {:.4} ± {:.4}  kl {:.2e}  loss {:+.4e}  len {:.1}  non-stop {:.2}  \
             gen {:.2}s  reward {:.2}s  ref {:.2}s  train {:.2}s",
            r.iteration,
            r.reward_mean,
            r.reward_std,
            r.kl,
            r.loss,
            r.response_len_mean,
            r.non_stop_rate,
            r.time_generation_s,
            r.time_rewards_s,
            r.time_reference_s,
            r.time_training_s
        );
    })?;
    Ok(())
}

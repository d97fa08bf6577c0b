//! The GRPO loop of EARL (`earl rl`). One iteration: draw `episodes_per_iteration / generations_per_sample` prompts
//! (seeded, without replacement inside the iteration, with replacement across iterations), sample
//! `generations_per_sample` completions each from the *current* policy through the edit pipeline (grid constraint and
//! assistant prefill from the config; `run/rollout.rs`), score them (completions that did not stop get 0), compute
//! group advantages, then take one optimizer step: the KL-regularised policy-gradient loss over every completion token,
//! normalised by the iteration's completion tokens, accumulated over micro-batches of `per_device_batch_size`, AdamW
//! (no decay by default), clipping (`run/update.rs`). Log-probs come from temperature-scaled logits of the policy and
//! of a frozen copy of the initial policy; dropout is off. Every random choice derives from (seed, iteration), so a run
//! resumed from a checkpoint continues exactly as the uninterrupted one; the run holds its directory's lock, and a
//! resume first drops the metric lines of iterations the checkpoint does not cover. Records are streamed: each
//! iteration reads only the records of the prompts it draws (`run/prompts.rs`).
mod episodes;
mod prompts;
mod rollout;
mod update;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::{Device, Kind};

use super::bookkeeping::{clean_up, saves_after};
use super::config::RlConfig;
use super::grpo;
use super::reward::RewardSet;
use crate::edit::ImageCodec;
use crate::error::{Error, Result};
use crate::generate::FinishReason;
use crate::model::Emu3ForCausalLM;
use crate::prompt::Prefill;
use crate::runlock::RunLock;
use crate::tokenizer::Emu3Tokenizer;
use crate::train::checkpoint::{resume_latest, save_checkpoint, TrainerState};
use crate::train::{AdamWConfig, CosineSchedule, LossNorm, Recipe, SftTrainer};
use crate::weights::SafetensorsStore;
use prompts::PromptPool;

/// Where and how to run (what the TOML file does not say).
#[derive(Debug, Clone)]
pub struct RlOptions {
    /// Device of policy, reference and vision tokenizer.
    pub device: Device,
    /// Compute dtype of policy and reference (masters and optimizer state are f32).
    pub kind: Kind,
    /// Vision tokenizer, needed by pixel-space and verifier rewards and for episode images.
    pub vq_dir: Option<PathBuf>,
    /// Its dtype: f32 in EARL whatever the policy's dtype.
    pub vq_kind: Kind,
    /// Run directory (default: `base_exp_dir/run_name`).
    pub out_dir: Option<PathBuf>,
    /// Stop after this many iterations in total (default: the config's `num_iterations`).
    pub max_iterations: Option<u64>,
    /// Decode path of the rollouts ([`crate::generate::Engine::default_for`] the device, unless told). Not part of
    /// the fingerprint: both engines sample the same tokens from the same streams.
    pub engine: crate::generate::Engine,
}

/// Metrics of one iteration (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct IterationReport {
    /// 0-based iteration index.
    pub iteration: u64,
    /// Mean final reward over the iteration's completions.
    pub reward_mean: f64,
    /// Population standard deviation of the final rewards.
    pub reward_std: f64,
    /// Mean of every reward component over the iteration's completions.
    pub components: BTreeMap<String, f64>,
    /// Mean completion length in tokens.
    pub response_len_mean: f64,
    /// Share of completions that did not end on a stop token (scored 0).
    pub non_stop_rate: f64,
    /// Share of completions holding a well-formed image block.
    pub valid_image_rate: f64,
    /// GRPO loss (policy term + β·KL penalty), the iteration's completion-token mean.
    #[serde(serialize_with = "crate::train::divergence::finite_or_text")]
    pub loss: f64,
    /// Policy-gradient term −logp·A, token mean over the iteration.
    #[serde(serialize_with = "crate::train::divergence::finite_or_text")]
    pub policy_loss: f64,
    /// k3 KL penalty against the reference policy, token mean (before β).
    #[serde(serialize_with = "crate::train::divergence::finite_or_text")]
    pub kl: f64,
    /// Mean exact entropy of the sampling distributions over completion tokens.
    #[serde(serialize_with = "crate::train::divergence::finite_or_text")]
    pub entropy: f64,
    /// Share of tokens with |A| < 1e-6 (EARL's `close_to_zero_advantages`).
    pub near_zero_advantage_share: f64,
    /// Global gradient L2 norm before clipping.
    #[serde(serialize_with = "crate::train::divergence::finite_or_text")]
    pub grad_norm: f64,
    /// Completion tokens the loss is normalised by.
    pub completion_tokens: f64,
    /// Seconds per phase: generation, rewards, reference log-probs, training (policy forward/backward + step).
    pub time_generation_s: f64,
    /// Seconds spent scoring.
    pub time_rewards_s: f64,
    /// Seconds spent on reference-policy log-probs.
    pub time_reference_s: f64,
    /// Seconds spent on policy forward/backward passes and the optimizer step.
    pub time_training_s: f64,
}

/// A GRPO run: policy trainer, frozen reference, rewards and prompt pool, bound to a run directory.
pub struct RlRunner {
    /// The validated experiment.
    pub cfg: RlConfig,
    /// The policy with its AdamW state (the SFT trainer, driven by the GRPO loss).
    pub trainer: SftTrainer,
    reference: Emu3ForCausalLM,
    tok: Emu3Tokenizer,
    /// The edit pipeline's image steps, when a vision tokenizer is set.
    codec: Option<ImageCodec>,
    rewards: RewardSet,
    prompts: PromptPool,
    out_dir: PathBuf,
    max_iterations: u64,
    prefill: Prefill,
    engine: crate::generate::Engine,
}

impl RlRunner {
    /// Loads tokenizer, policy, reference and (with `vq_dir`) the vision tokenizer, and opens the training data.
    /// Fails before loading anything when a reward scores decoded images and no vision tokenizer is set.
    pub fn new(cfg: RlConfig, rewards: RewardSet, opts: &RlOptions) -> Result<Self> {
        // Checked before anything loads: the graph engine needs CUDA; without a VQ these rewards would be shown 1×1
        // stand-ins.
        opts.engine.check_device(opts.device)?;
        if let (Some(reward), None) = (cfg.reward.image_rewards().first(), &opts.vq_dir) {
            return Err(Error::Config {
                path: cfg.source.clone(),
                msg: format!("the {reward} reward scores decoded images but no vision tokenizer is set (vq_dir, --vq)"),
            });
        }
        let model_dir = PathBuf::from(&cfg.model_path);
        let tok = Emu3Tokenizer::from_dir(Path::new(&cfg.tokenizer_path))?;
        let lm_cfg = crate::config::Emu3Config::from_dir(&model_dir)?;
        let o = &cfg.optim;
        let recipe = Recipe {
            adamw: AdamWConfig {
                beta1: o.adam_beta1,
                beta2: o.adam_beta2,
                eps: o.adam_epsilon,
                weight_decay: o.weight_decay,
            },
            // EARL's GRPO uses a constant learning rate.
            schedule: CosineSchedule {
                lr: o.learning_rate,
                min_lr: o.learning_rate,
                warmup_steps: 0,
                total_steps: o.num_iterations.max(1),
            },
            max_grad_norm: o.max_grad_norm,
            loss_norm: LossNorm::GlobalTokens,
            seed: cfg.random_seed,
            gradient_checkpointing: o.gradient_checkpointing,
            loss_chunk_tokens: 0,
            nan_policy: o.nan_policy,
        };
        let masters = SafetensorsStore::open(&model_dir, Kind::Float, opts.device)?;
        let trainer = SftTrainer::new(&masters, &lm_cfg, opts.kind, recipe)?;
        let reference = Emu3ForCausalLM::from_dir(&model_dir, opts.kind, opts.device)?;
        let codec = opts.vq_dir.as_deref().map(|d| ImageCodec::from_dir(d, opts.vq_kind, opts.device)).transpose()?;
        let (data, seed) = (&cfg.data, cfg.random_seed);
        let prompts =
            PromptPool::open(&data.train_paths, &data.train_mixture, seed, cfg.generation.prompts_per_iteration)?;
        let prefill = Prefill::Literal(cfg.generation.assistant_prefill.clone());
        let out_dir = opts.out_dir.clone().unwrap_or_else(|| cfg.base_exp_dir.join(&cfg.run_name));
        let max_iterations = opts.max_iterations.unwrap_or(cfg.optim.num_iterations);
        let engine = opts.engine;
        Ok(RlRunner { cfg, trainer, reference, tok, codec, rewards, prompts, out_dir, max_iterations, prefill, engine })
    }

    /// The run directory.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Runs (or resumes, from the newest checkpoint in `out_dir/checkpoints` that restores) up to the last
    /// iteration. Fails with [`Error::Busy`] while another run holds `out_dir`.
    pub fn run(&mut self, on_iteration: &mut dyn FnMut(&IterationReport)) -> Result<Vec<IterationReport>> {
        let _lock = RunLock::acquire(&self.out_dir)?;
        crate::fsio::remove_leftovers(&self.out_dir)?;
        let ckpts = self.out_dir.join("checkpoints");
        let mut start = 0;
        let fingerprint = self.cfg.fingerprint();
        if let Some((state, dir)) = resume_latest(&ckpts, &mut self.trainer)? {
            fingerprint.check_resume(&state, &dir)?;
            start = state.global_step;
            tracing::info!(iteration = start, dir = %dir.display(), "resuming GRPO run");
        }
        self.write_manifest()?;
        let metrics_path = self.out_dir.join("metrics.jsonl");
        crate::train::run::truncate_metrics(&metrics_path, "iteration", start)?;
        let mut reports = Vec::new();
        for it in start..self.max_iterations {
            let report = self.iteration(it)?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&metrics_path)
                .map_err(|e| Error::io(&metrics_path, e))?;
            writeln!(f, "{}", serde_json::to_string(&report).unwrap_or_default())
                .map_err(|e| Error::io(&metrics_path, e))?;
            on_iteration(&report);
            let log = &self.cfg.logging;
            if saves_after(it, self.cfg.optim.num_iterations, log.save_checkpoints_every_n_iterations) {
                let state = TrainerState {
                    global_step: it + 1,
                    samples_seen: (it + 1) * self.cfg.generation.prompts_per_iteration as u64,
                    seed: self.cfg.random_seed,
                    config_hash: fingerprint.hash(),
                    config: fingerprint.to_json(),
                };
                save_checkpoint(&ckpts, &self.trainer, &state, Kind::Float)?;
                clean_up(&ckpts, it + 1, log.keep_checkpoints_every_n_iterations)?;
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// `run_manifest.json`, rewritten at every start: the rewards' own records, e.g. the verifier's prompt files and
    /// their SHA-256, or that it uses the project's own wording (its rewards then differ from the paper's).
    fn write_manifest(&self) -> Result<()> {
        let path = self.out_dir.join("run_manifest.json");
        let manifest = serde_json::json!({
            "run_name": self.cfg.run_name, "random_seed": self.cfg.random_seed, "rewards": self.rewards.manifest(),
        });
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
        crate::fsio::write_atomic(&path, text.as_bytes())
    }

    /// One GRPO iteration (generation, rewards, one optimizer step).
    pub fn iteration(&mut self, it: u64) -> Result<IterationReport> {
        let _span = tracing::info_span!("grpo_iteration", it).entered();
        let g = self.cfg.generation.clone();
        let t0 = Instant::now();
        // Only the drawn prompts' records are read (streamed, as SFT reads its data).
        let picked = self.prompts.draw(self.cfg.random_seed, it, g.prompts_per_iteration);
        let records = self.prompts.read(&picked)?;
        let episodes = self.rollout(it, &g, &records)?;
        let time_generation_s = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let (scores, components, valid) = self.score(&episodes, &records)?;
        let time_rewards_s = t1.elapsed().as_secs_f64();
        let (adv, adv_m) = grpo::group_advantages(&scores, g.generations_per_sample)?;

        let mut report = self.train_step(it, &episodes, &adv)?;
        report.time_generation_s = time_generation_s;
        report.time_rewards_s = time_rewards_s;
        let n = episodes.len() as f64;
        report.reward_mean = adv_m.reward_mean;
        report.reward_std = adv_m.reward_std;
        report.components = components;
        report.response_len_mean = episodes.iter().map(|e| e.tokens.len() as f64).sum::<f64>() / n;
        report.non_stop_rate = episodes.iter().filter(|e| e.finish != FinishReason::Stop).count() as f64 / n;
        report.valid_image_rate = valid as f64 / n;
        let every = self.cfg.logging.log_episodes_every_n_iterations;
        if every > 0 && it.is_multiple_of(every) {
            self.dump_episodes(it, &episodes, &scores, &records)?;
        }
        Ok(report)
    }
}

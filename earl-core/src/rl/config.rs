//! The RL (GRPO) experiment configuration, in two levels: [`RawRlConfig`] mirrors a TOML file field for field with
//! the names of EARL's `rl/nano_aha_moment.py::TrainingArgs` (so the reference's jsonnet configs translate one to
//! one) plus our extensions (optimizer constants EARL hard-codes, offline rewards), and [`RlConfig`] is the
//! validated result with no `Option`s.
//!
//! Files are read by the shared experiment layer ([`crate::experiment`]): `extends` chains (as jsonnet's
//! `(import 'a') + (import 'b')` in the reference), `${VAR}` / `${VAR:-default}`, paths starting with `./` or `../`
//! relative to the file that sets them, errors naming file, line and key. The verifier section — every key that
//! starts with `reward_function_` (EARL's judge-client fields) or is a `reward_*_template` (judge prompts) — is not
//! earl-core's: it is kept as written in [`RewardConfig::verifier`] and validated by earl-eval, which owns the
//! verifier client. Field semantics and defaults are listed in docs/rl.md.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::grpo::TokenSchedule;
use super::reward::FinalReward;
use crate::error::Result;
use crate::experiment::Layers;
use crate::generate::SamplingParams;

/// Serde mirror of one RL TOML file (without `extends` and the verifier section). Unknown fields are rejected.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRlConfig {
    // Data (EARL names).
    /// Dataset files to train on (EARL `train_paths_file`; required).
    pub train_paths_file: Option<Vec<String>>,
    /// Mixture weight per training dataset (EARL `coefficients`); empty or unset upsamples every dataset to the
    /// largest.
    pub coefficients: Option<Vec<f64>>,
    /// EARL's validation datasets, which its loop never evaluates: only an empty list is accepted.
    pub val_paths_file: Option<Vec<String>>,
    /// Weights of the validation datasets (EARL `val_coefficients`): only an empty list is accepted.
    pub val_coefficients: Option<Vec<f64>>,
    /// Parent directory of runs; a run writes to `base_exp_dir/run_name` (required).
    pub base_exp_dir: Option<String>,
    /// Seed for data mixing and sampling (default 42).
    pub random_seed: Option<u64>,
    // Model.
    /// SFT checkpoint to start from: a directory or hub id (required).
    pub model_path: Option<String>,
    /// Text tokenizer directory or hub id (default: `model_path`).
    pub tokenizer_path: Option<String>,
    /// Text after the assistant turn opens, e.g. `<|image start|>` or the think prefix (required).
    pub assistant_prefill: Option<String>,
    // Optimisation.
    /// AdamW learning rate (required; the paper uses 3e-6).
    pub learning_rate: Option<f64>,
    /// Number of GRPO iterations (required).
    pub num_iterations: Option<u64>,
    /// β of the k3 KL penalty against the reference policy (required; the paper uses 3e-4).
    pub kl_coeff: Option<f64>,
    /// Episodes per micro-batch of the update (required; the paper uses 4 or 8).
    pub per_device_batch_size: Option<usize>,
    /// AdamW β1 (ours, default 0.9; EARL hard-codes it in its DeepSpeed config).
    pub adam_beta1: Option<f64>,
    /// AdamW β2 (ours, default 0.999; EARL hard-codes it).
    pub adam_beta2: Option<f64>,
    /// AdamW ε (ours, default 1e-8; EARL hard-codes it).
    pub adam_epsilon: Option<f64>,
    /// AdamW weight decay (ours, default 0.0; EARL hard-codes it).
    pub weight_decay: Option<f64>,
    /// Gradient-norm clip (ours, default 1.0; EARL hard-codes it).
    pub max_grad_norm: Option<f64>,
    /// Recompute layers in the backward pass (default true, as EARL's `gradient_checkpointing_enable()`).
    pub gradient_checkpointing: Option<bool>,
    /// Positions per chunk of head, log-probs and loss with checkpointing (ours; default 0 = all at once).
    pub loss_chunk_tokens: Option<i64>,
    /// What a NaN or infinite loss or gradient norm does (ours; default `stop`).
    pub nan_policy: Option<crate::train::NanPolicy>,
    // Generation.
    /// Sampling temperature of rollouts and log-probs (required; the paper uses 1.0).
    pub temperature: Option<f64>,
    /// Completions generated per iteration (required; the paper uses 128).
    pub episodes_per_iteration: Option<usize>,
    /// Completions per prompt, the GRPO group size (required, >= 2; the paper uses 8).
    pub generations_per_sample: Option<usize>,
    /// Most new tokens per completion (required; the paper uses 2048).
    pub max_response_tokens: Option<usize>,
    /// Nucleus-sampling mass, in (0, 1] (default 1.0 = off).
    pub top_p: Option<f64>,
    /// −1 = off, as the reference writes it ([`crate::generate::TopK`]).
    pub top_k: Option<crate::generate::TopK>,
    /// Prompt + response length limit in tokens, as vLLM's `max_model_len` in EARL (default 4096).
    pub model_context_size: Option<usize>,
    // Emu3 specifics.
    /// Constrain image tokens to the source image's grid (default true).
    pub emu3_use_logit_processor: Option<bool>,
    /// Normalise text and visual log-probs over their own vocabularies (default true).
    pub separate_language_and_vision_vocabs: Option<bool>,
    /// Alternate text-only and visual-only training in cycles (default false).
    pub train_text_tokens_only: Option<bool>,
    /// Iterations per text-only cycle (default 10).
    pub text_only_cycle_steps: Option<u64>,
    /// Leading iterations of each text-only cycle that train text tokens (default 10).
    pub text_only_steps: Option<u64>,
    /// Train visual tokens only for the first steps of each cycle (default false).
    pub train_vision_tokens_only: Option<bool>,
    /// Iterations per vision-only cycle (default 10).
    pub vision_only_cycle_steps: Option<u64>,
    /// Leading iterations of each vision-only cycle that train visual tokens only (default 10).
    pub vision_only_steps: Option<u64>,
    // Rewards.
    /// Compute the VIEScore verifier reward (default true, as EARL).
    pub reward_compute_viescore: Option<bool>,
    /// Compute the GroundScore verifier reward (default true, as EARL).
    pub reward_compute_ground_score: Option<bool>,
    /// Compute the offline token-agreement reward (ours; default false).
    pub reward_compute_token_agreement: Option<bool>,
    /// Compute the offline pixel-similarity reward (ours; default false).
    pub reward_compute_pixel_similarity: Option<bool>,
    /// Compute EARL-mini's exact-verifier reward (ours; default false; built by earl-eval from `earl_mini`).
    pub reward_compute_mini: Option<bool>,
    /// Which reward (or combination) GRPO optimises; see docs/rewards.md (default `"viescore"`).
    pub reward_final_reward: Option<String>,
    // Logging and checkpointing.
    /// Run directory name under `base_exp_dir` (default: the run file's stem).
    pub run_name: Option<String>,
    /// Episode-dump cadence in iterations (default 20; 0 = never).
    pub log_episodes_every_n_iterations: Option<u64>,
    /// Checkpoint cadence in iterations (default 0 = never).
    pub save_checkpoints_every_n_iterations: Option<u64>,
    /// Older checkpoints at multiples of this keep their model (default 0 = keep all).
    pub keep_checkpoints_every_n_iterations: Option<u64>,
    // Fields of the reference that configure machinery earl does not have (vLLM, the Hub, hub revisions, the
    // collator's padding lengths). They parse, so that validation can reject each with a message saying why
    // (`load::reject_reference_only`); none is accepted.
    /// EARL's vLLM memory share: rejected.
    pub vllm_gpu_memory_utilization: Option<f64>,
    /// EARL's Hub upload cadence: rejected.
    pub push_to_hub_every_n_iterations: Option<u64>,
    /// EARL's Hub upload target: rejected.
    pub push_to_hub_repo_id: Option<String>,
    /// EARL's hub revision of `model_path`: rejected.
    pub model_revision: Option<String>,
    /// Prompt padding length of EARL's collator: rejected.
    pub max_prompt_len: Option<usize>,
    /// Completion padding length of EARL's collator: rejected.
    pub max_completion_len: Option<usize>,
}

/// How the training datasets are mixed (EARL `create_datasets`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Mixture {
    /// No coefficients: every dataset is upsampled to the size of the largest.
    UpsampleToLargest,
    /// One coefficient per dataset: ≥ 1 ⇒ int(c) full copies plus a random fraction; < 1 ⇒ a random subset.
    Coefficients(Vec<f64>),
}

/// The training data. EARL's `val_paths_file`/`val_coefficients` build a validation set its loop never reads;
/// only empty lists are accepted here.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataConfig {
    /// Training dataset files, resolved.
    pub train_paths: Vec<PathBuf>,
    /// How the training datasets are mixed.
    pub train_mixture: Mixture,
}

/// How rollouts are generated (EARL's generation fields); the engine's own settings are
/// [`crate::generate::GenerationConfig`], built from these for every rollout.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RolloutConfig {
    /// Completions generated per iteration.
    pub episodes_per_iteration: usize,
    /// Completions per prompt (the GRPO group size, >= 2).
    pub generations_per_sample: usize,
    /// `episodes_per_iteration / generations_per_sample`: prompts drawn per iteration.
    pub prompts_per_iteration: usize,
    /// EARL's `temperature`, `top_p`, `top_k`.
    pub sampling: SamplingParams,
    /// Most new tokens per completion.
    pub max_response_tokens: usize,
    /// Prompt + response limit in tokens (vLLM's `max_model_len` rule; see docs/rl.md, Rollouts).
    pub model_context_size: usize,
    /// EARL `emu3_use_logit_processor`: constrain image tokens to the source image's grid.
    pub grid_constraint: bool,
    /// Text appended after the assistant turn opens (`<|image start|>` forces a direct edit; the think models
    /// get "Let's think step by step. …").
    pub assistant_prefill: String,
}

/// Optimisation settings: AdamW (EARL's DeepSpeed constants by default), iterations and micro-batching.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OptimConfig {
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Number of GRPO iterations.
    pub num_iterations: u64,
    /// Episodes per micro-batch; gradients accumulate over an iteration's micro-batches.
    pub per_device_batch_size: usize,
    /// AdamW β1 (default 0.9).
    pub adam_beta1: f64,
    /// AdamW β2 (default 0.999).
    pub adam_beta2: f64,
    /// AdamW ε (default 1e-8).
    pub adam_epsilon: f64,
    /// AdamW decoupled weight decay (default 0.0).
    pub weight_decay: f64,
    /// Global gradient-norm clip before each update (default 1.0).
    pub max_grad_norm: f64,
    /// Recompute each layer in the backward pass (memory only; gradients unchanged). On by default, as the
    /// reference's `gradient_checkpointing_enable()`.
    pub gradient_checkpointing: bool,
    /// With checkpointing: run the head, log-probs and loss this many positions at a time (0 = all at once), so
    /// the [B, T, V] logits of a micro-batch never exist. Ours, not EARL's; memory only (summation order).
    pub loss_chunk_tokens: i64,
    /// What an iteration with a NaN or infinite loss or gradient norm does (ours; EARL trains on).
    pub nan_policy: crate::train::NanPolicy,
}

/// The GRPO objective's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrpoConfig {
    /// β of the k3 KL penalty against the reference policy.
    pub kl_coeff: f64,
    /// Normalise text and visual log-probs over their own vocabularies ([`super::grpo::VocabSplit`]).
    pub separate_language_and_vision_vocabs: bool,
    /// Which token kinds each iteration trains (text-only / vision-only cycles).
    pub token_schedule: TokenSchedule,
}

/// Which rewards are computed, which one is optimised, and the verifier's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RewardConfig {
    /// Compute the VIEScore verifier reward (EARL `reward_compute_viescore`).
    pub viescore: bool,
    /// Compute the GroundScore verifier reward (EARL `reward_compute_ground_score`).
    pub ground_score: bool,
    /// Compute the offline token-agreement reward (ours).
    pub token_agreement: bool,
    /// Compute the offline pixel-similarity reward (ours).
    pub pixel_similarity: bool,
    /// Compute EARL-mini's exact-verifier reward (ours): offline, it scores the decoded image.
    pub mini: bool,
    /// The reward GRPO optimises (EARL `reward_final_reward`).
    pub final_reward: FinalReward,
    /// The verifier section as written (keys `reward_function_*` and `reward_*_template`, with their origins):
    /// earl-eval validates it (`earl_eval::VerifierConfig`).
    pub verifier: Layers,
}

impl RewardConfig {
    /// Whether a reward that asks the verifier (VIEScore, GroundScore) is on.
    pub fn needs_verifier(&self) -> bool {
        self.viescore || self.ground_score
    }
}

impl RewardConfig {
    /// Names of the enabled rewards that score decoded images (so need a vision tokenizer): the verifier ones,
    /// pixel similarity and the mini verifier.
    pub fn image_rewards(&self) -> Vec<&'static str> {
        let needs = ["viescore", "ground_score", "pixel_similarity", "mini"];
        self.enabled().into_iter().filter(|n| needs.contains(n)).collect()
    }

    /// Names of the enabled rewards, in a fixed order.
    pub fn enabled(&self) -> Vec<&'static str> {
        [
            (self.viescore, "viescore"),
            (self.ground_score, "ground_score"),
            (self.token_agreement, "token_agreement"),
            (self.pixel_similarity, "pixel_similarity"),
            (self.mini, "mini"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

/// Episode-dump and checkpoint cadence.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoggingConfig {
    /// Dump episodes every n iterations (and at iteration 0); 0 = never.
    pub log_episodes_every_n_iterations: u64,
    /// Save after iteration i when i % n == 0 or i is the last, never after iteration 0 (see
    /// [`super::bookkeeping::saves_after`]); 0 = never (EARL: unset).
    pub save_checkpoints_every_n_iterations: u64,
    /// After a save, older checkpoints are deleted except that those of iterations at multiples of this keep their
    /// model (see [`super::bookkeeping::retention`]); 0 = keep every checkpoint (EARL: unset).
    pub keep_checkpoints_every_n_iterations: u64,
}

/// The validated RL experiment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RlConfig {
    /// The run file this config was loaded from.
    pub source: PathBuf,
    /// Run directory name under `base_exp_dir`.
    pub run_name: String,
    /// Parent directory of runs.
    pub base_exp_dir: PathBuf,
    /// SFT checkpoint the policy (and the KL reference) start from: a directory or hub id.
    pub model_path: String,
    /// Text tokenizer directory or hub id.
    pub tokenizer_path: String,
    /// Seed for data mixing and sampling.
    pub random_seed: u64,
    /// Training data and mixture.
    pub data: DataConfig,
    /// Rollout generation settings.
    pub generation: RolloutConfig,
    /// Optimiser and batching settings.
    pub optim: OptimConfig,
    /// GRPO objective settings.
    pub grpo: GrpoConfig,
    /// Reward selection and verifier settings.
    pub reward: RewardConfig,
    /// Episode-dump and checkpoint cadence.
    pub logging: LoggingConfig,
}

mod load;

/// Whether `key` belongs to the verifier section, which earl-eval owns (see the module header).
pub fn is_verifier_key(key: &str) -> bool {
    key.starts_with("reward_function_") || (key.starts_with("reward_") && key.ends_with("_template"))
}

impl RlConfig {
    /// The fields that decide the run's results (recorded in every GRPO checkpoint): all but the config file's
    /// path, where the run writes (`run_name`, `base_exp_dir`) and its logging and checkpoint cadence.
    pub fn fingerprint(&self) -> crate::train::fingerprint::Fingerprint {
        crate::train::fingerprint::Fingerprint::of(self, &["source", "run_name", "base_exp_dir", "logging"])
    }

    /// Loads, merges (`extends`), expands `${VAR}` from the process environment and validates.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_env(path, &|k| std::env::var(k).ok())
    }

    /// As [`RlConfig::load`], reading variables through `env` (tests, or a launcher with its own variables).
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        Self::from_layers(Layers::load::<RawRlConfig>(path, &is_verifier_key)?, env)
    }

    /// Validates already merged layers (an experiment file with a chain's overrides laid over it); the verifier
    /// keys among them are split off as [`RlConfig::load`] does.
    pub fn from_layers(mut layers: Layers, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let verifier = layers.split_off(&is_verifier_key);
        load::validate(&layers, verifier, env)
    }

    /// Parses one file on its own (no `extends`, no validation): how fragments such as a base file are checked.
    pub fn parse_fragment(path: &Path) -> Result<RawRlConfig> {
        Layers::parse_fragment(path, &is_verifier_key)
    }
}

#[cfg(test)]
mod tests;

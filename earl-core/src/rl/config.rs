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
    pub train_paths_file: Option<Vec<String>>,
    pub coefficients: Option<Vec<f64>>,
    pub val_paths_file: Option<Vec<String>>,
    pub val_coefficients: Option<Vec<f64>>,
    pub base_exp_dir: Option<String>,
    pub random_seed: Option<u64>,
    // Model.
    pub model_path: Option<String>,
    pub tokenizer_path: Option<String>,
    pub assistant_prefill: Option<String>,
    // Optimisation.
    pub learning_rate: Option<f64>,
    pub num_iterations: Option<u64>,
    pub kl_coeff: Option<f64>,
    pub per_device_batch_size: Option<usize>,
    pub adam_beta1: Option<f64>,
    pub adam_beta2: Option<f64>,
    pub adam_epsilon: Option<f64>,
    pub weight_decay: Option<f64>,
    pub max_grad_norm: Option<f64>,
    pub gradient_checkpointing: Option<bool>,
    pub loss_chunk_tokens: Option<i64>,
    pub nan_policy: Option<crate::train::NanPolicy>,
    // Generation.
    pub temperature: Option<f64>,
    pub episodes_per_iteration: Option<usize>,
    pub generations_per_sample: Option<usize>,
    pub max_response_tokens: Option<usize>,
    pub top_p: Option<f64>,
    /// −1 = off, as the reference writes it ([`crate::generate::TopK`]).
    pub top_k: Option<crate::generate::TopK>,
    pub model_context_size: Option<usize>,
    // Emu3 specifics.
    pub emu3_use_logit_processor: Option<bool>,
    pub separate_language_and_vision_vocabs: Option<bool>,
    pub train_text_tokens_only: Option<bool>,
    pub text_only_cycle_steps: Option<u64>,
    pub text_only_steps: Option<u64>,
    pub train_vision_tokens_only: Option<bool>,
    pub vision_only_cycle_steps: Option<u64>,
    pub vision_only_steps: Option<u64>,
    // Rewards.
    pub reward_compute_viescore: Option<bool>,
    pub reward_compute_ground_score: Option<bool>,
    pub reward_compute_token_agreement: Option<bool>,
    pub reward_compute_pixel_similarity: Option<bool>,
    pub reward_final_reward: Option<String>,
    // Logging and checkpointing.
    pub run_name: Option<String>,
    pub log_episodes_every_n_iterations: Option<u64>,
    pub save_checkpoints_every_n_iterations: Option<u64>,
    pub keep_checkpoints_every_n_iterations: Option<u64>,
    // Fields of the reference that configure machinery earl does not have (vLLM, the Hub, hub revisions, the
    // collator's padding lengths). They parse, so that validation can reject each with a message saying why
    // (`load::reject_reference_only`); none is accepted.
    pub vllm_gpu_memory_utilization: Option<f64>,
    pub push_to_hub_every_n_iterations: Option<u64>,
    pub push_to_hub_repo_id: Option<String>,
    pub model_revision: Option<String>,
    pub max_prompt_len: Option<usize>,
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
    pub train_paths: Vec<PathBuf>,
    pub train_mixture: Mixture,
}

/// How rollouts are generated (EARL's generation fields); the engine's own settings are
/// [`crate::generate::GenerationConfig`], built from these for every rollout.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RolloutConfig {
    pub episodes_per_iteration: usize,
    pub generations_per_sample: usize,
    /// `episodes_per_iteration / generations_per_sample`: prompts drawn per iteration.
    pub prompts_per_iteration: usize,
    /// EARL's `temperature`, `top_p`, `top_k`.
    pub sampling: SamplingParams,
    pub max_response_tokens: usize,
    pub model_context_size: usize,
    /// EARL `emu3_use_logit_processor`: constrain image tokens to the source image's grid.
    pub grid_constraint: bool,
    /// Text appended after the assistant turn opens (`<|image start|>` forces a direct edit; the think models
    /// get "Let's think step by step. …").
    pub assistant_prefill: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OptimConfig {
    pub learning_rate: f64,
    pub num_iterations: u64,
    pub per_device_batch_size: usize,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    pub weight_decay: f64,
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

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrpoConfig {
    pub kl_coeff: f64,
    pub separate_language_and_vision_vocabs: bool,
    pub token_schedule: TokenSchedule,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RewardConfig {
    pub viescore: bool,
    pub ground_score: bool,
    pub token_agreement: bool,
    pub pixel_similarity: bool,
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
    /// Names of the enabled rewards that score decoded images (so need a vision tokenizer): the verifier ones and
    /// pixel similarity.
    pub fn image_rewards(&self) -> Vec<&'static str> {
        let needs = ["viescore", "ground_score", "pixel_similarity"];
        self.enabled().into_iter().filter(|n| needs.contains(n)).collect()
    }

    /// Names of the enabled rewards, in a fixed order.
    pub fn enabled(&self) -> Vec<&'static str> {
        [
            (self.viescore, "viescore"),
            (self.ground_score, "ground_score"),
            (self.token_agreement, "token_agreement"),
            (self.pixel_similarity, "pixel_similarity"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

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
    pub source: PathBuf,
    pub run_name: String,
    pub base_exp_dir: PathBuf,
    pub model_path: String,
    pub tokenizer_path: String,
    pub random_seed: u64,
    pub data: DataConfig,
    pub generation: RolloutConfig,
    pub optim: OptimConfig,
    pub grpo: GrpoConfig,
    pub reward: RewardConfig,
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
        let mut layers = Layers::load::<RawRlConfig>(path, &is_verifier_key)?;
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

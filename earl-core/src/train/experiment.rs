//! SFT experiment files (TOML), in two levels: [`RawSftExperiment`] mirrors the file — field names are the
//! reference's `train_image_editing.py` arguments (`model_name_or_path`, `data_paths`, `coefficients`, `cot_keys`,
//! `learning_rate`, `min_learning_rate`, `warmup_steps`, `adam_beta2`, `max_grad_norm`, …) so EARL's shell scripts
//! translate one to one — and [`SftExperiment`] is the validated result with every default applied and `${VAR}`
//! references in paths expanded from the environment (an unset variable is an error naming it).
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::loss::LossNorm;
use super::optim::AdamWConfig;
use crate::error::{Error, Result};

/// The TOML file as written. Defaults are the paper's `scripts/ie_sft.sh` values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSftExperiment {
    pub name: String,
    pub model_name_or_path: String,
    /// Tokenizer directory for `edits` data; default: `model_name_or_path` (as the reference loads it).
    #[serde(default)]
    pub tokenizer_path: Option<String>,
    pub data_paths: Vec<String>,
    /// `sequences` (pre-tokenized ids + labels) or `edits` (tokenized edit records, laid out by the prompt module).
    #[serde(default = "d_format")]
    pub data_format: String,
    #[serde(default)]
    pub coefficients: Vec<f64>,
    #[serde(default)]
    pub cot_keys: Vec<String>,
    pub output_dir: String,
    #[serde(default = "d_seed")]
    pub seed: u64,
    #[serde(default = "d_epochs")]
    pub num_train_epochs: f64,
    /// > 0 overrides `num_train_epochs`.
    #[serde(default)]
    pub max_steps: u64,
    #[serde(default = "d_batch")]
    pub per_device_train_batch_size: usize,
    #[serde(default = "d_accum")]
    pub gradient_accumulation_steps: usize,
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    #[serde(default = "d_min_lr")]
    pub min_learning_rate: f64,
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    #[serde(default = "d_clip")]
    pub max_grad_norm: f64,
    #[serde(default = "d_b1")]
    pub adam_beta1: f64,
    #[serde(default = "d_b2")]
    pub adam_beta2: f64,
    #[serde(default = "d_eps")]
    pub adam_epsilon: f64,
    #[serde(default = "d_warmup")]
    pub warmup_steps: u64,
    #[serde(default = "d_sched")]
    pub lr_scheduler_type: String,
    #[serde(default = "d_save")]
    pub save_steps: u64,
    #[serde(default)]
    pub save_total_limit: usize,
    #[serde(default = "d_one")]
    pub logging_steps: u64,
    #[serde(default = "d_true")]
    pub bf16: bool,
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// With `gradient_checkpointing`: run the head and the loss this many positions at a time (0 = all at once).
    #[serde(default)]
    pub loss_chunk_tokens: i64,
    /// What a step with a NaN or infinite loss or gradient norm does: "stop" (default) or "skip_step".
    #[serde(default)]
    pub nan_policy: crate::train::NanPolicy,
    /// Sequences longer than this are rejected (the reference's `max_position_embeddings` argument).
    #[serde(default)]
    pub max_position_embeddings: Option<i64>,
    /// Target image area the data was tokenized at: recorded in the run manifest, and a dataset whose manifest
    /// records another area is refused.
    #[serde(default)]
    pub image_area: Option<u64>,
    /// Training dropout; default: the model config's `attention_dropout` (0.1 for Emu3, what the paper trained with).
    #[serde(default)]
    pub attention_dropout: Option<f64>,
    /// `micro_batch_mean` reproduces the reference Trainer; `global_tokens` weights every response token equally.
    #[serde(default = "d_norm")]
    pub loss_normalization: LossNorm,
    #[serde(default = "d_device")]
    pub device: String,
    /// Validation datasets (the reference's `validation_paths`); empty = no evaluation.
    #[serde(default)]
    pub validation_paths: Vec<String>,
    /// Validation samples in all: `validation_size / len(validation_paths)` drawn from each (the reference's rule).
    #[serde(default = "d_val_size")]
    pub validation_size: usize,
    /// Evaluate every this many optimizer steps (the reference's `eval_steps` with `eval_strategy = "steps"`).
    #[serde(default = "d_save")]
    pub eval_steps: u64,
    #[serde(default = "d_one_usize")]
    pub per_device_eval_batch_size: usize,
}

fn d_val_size() -> usize {
    50
}
fn d_one_usize() -> usize {
    1
}
fn d_format() -> String {
    "edits".into()
}
fn d_seed() -> u64 {
    42
}
fn d_epochs() -> f64 {
    10.0
}
fn d_batch() -> usize {
    2
}
fn d_accum() -> usize {
    8
}
fn d_lr() -> f64 {
    1e-4
}
fn d_min_lr() -> f64 {
    1e-5
}
fn d_wd() -> f64 {
    0.1
}
fn d_clip() -> f64 {
    5.0
}
fn d_b1() -> f64 {
    0.9
}
fn d_b2() -> f64 {
    0.95
}
fn d_eps() -> f64 {
    1e-6
}
fn d_warmup() -> u64 {
    30
}
fn d_sched() -> String {
    "cosine_with_min_lr".into()
}
fn d_save() -> u64 {
    100
}
fn d_one() -> u64 {
    1
}
fn d_true() -> bool {
    true
}
fn d_norm() -> LossNorm {
    LossNorm::GlobalTokens
}
fn d_device() -> String {
    "cuda".into()
}

/// A validated experiment.
#[derive(Debug, Clone, Serialize)]
pub struct SftExperiment {
    pub name: String,
    pub model: PathBuf,
    pub tokenizer: PathBuf,
    pub data_paths: Vec<PathBuf>,
    pub data_format: String,
    pub coefficients: Option<Vec<f64>>,
    pub cot_keys: Vec<String>,
    pub output_dir: PathBuf,
    pub seed: u64,
    pub num_train_epochs: f64,
    pub max_steps: u64,
    pub micro_batch: usize,
    pub grad_accum: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub adamw: AdamWConfig,
    pub max_grad_norm: f64,
    pub save_steps: u64,
    pub save_total_limit: usize,
    pub logging_steps: u64,
    pub bf16: bool,
    pub gradient_checkpointing: bool,
    pub loss_chunk_tokens: i64,
    pub nan_policy: crate::train::NanPolicy,
    pub max_len: Option<i64>,
    pub image_area: Option<u64>,
    pub attention_dropout: Option<f64>,
    pub loss_norm: LossNorm,
    pub device: String,
    pub validation_paths: Vec<PathBuf>,
    pub validation_size: usize,
    pub eval_steps: u64,
    pub eval_batch: usize,
}

/// Replaces `${VAR}` with the environment's value; `what` names the field in errors.
pub fn expand_vars(
    s: &str,
    what: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').ok_or_else(|| format!("{what}: unterminated ${{ in {s:?}"))? + i;
        let var = &rest[i + 2..end];
        let val =
            lookup(var).ok_or_else(|| format!("{what}: environment variable {var} is not set (used in {s:?})"))?;
        out.push_str(&val);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl SftExperiment {
    /// Reads, expands and validates an experiment file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let raw: RawSftExperiment = toml::from_str(&text).map_err(|e| {
            let msg = e.message().to_string();
            let line = e.span().map(|s| text[..s.start].lines().count().max(1)).unwrap_or(0);
            Error::Config { path: path.to_path_buf(), msg: format!("line {line}: {msg}") }
        })?;
        raw.validate(&|v| std::env::var(v).ok()).map_err(|msg| Error::Config { path: path.to_path_buf(), msg })
    }

    /// SHA-256 of the resolved experiment (as JSON), recorded in checkpoints and the run manifest.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("serialisable");
        format!("{:x}", Sha256::digest(&json))
    }
}

impl RawSftExperiment {
    pub fn validate(self, env: &dyn Fn(&str) -> Option<String>) -> std::result::Result<SftExperiment, String> {
        let p = |s: &str, what: &str| expand_vars(s, what, env).map(PathBuf::from);
        if self.data_paths.is_empty() {
            return Err("data_paths is empty".into());
        }
        if !self.coefficients.is_empty() && self.coefficients.len() != self.data_paths.len() {
            return Err(format!("{} coefficients for {} data_paths", self.coefficients.len(), self.data_paths.len()));
        }
        if !matches!(self.data_format.as_str(), "edits" | "sequences") {
            return Err(format!("data_format {:?} is not \"edits\" or \"sequences\"", self.data_format));
        }
        if self.lr_scheduler_type != "cosine_with_min_lr" {
            return Err(format!(
                "lr_scheduler_type {:?} is not supported (the paper uses cosine_with_min_lr)",
                self.lr_scheduler_type
            ));
        }
        if self.per_device_train_batch_size == 0 || self.gradient_accumulation_steps == 0 {
            return Err("per_device_train_batch_size and gradient_accumulation_steps must be ≥ 1".into());
        }
        if self.max_steps == 0 && !(self.num_train_epochs > 0.0) {
            return Err("set num_train_epochs > 0 or max_steps > 0".into());
        }
        if !(self.learning_rate > 0.0) || self.min_learning_rate < 0.0 || self.min_learning_rate > self.learning_rate {
            return Err(format!(
                "need 0 ≤ min_learning_rate ({}) ≤ learning_rate ({}), learning_rate > 0",
                self.min_learning_rate, self.learning_rate
            ));
        }
        if !(0.0..1.0).contains(&self.adam_beta1)
            || !(0.0..1.0).contains(&self.adam_beta2)
            || !(self.adam_epsilon > 0.0)
        {
            return Err("adam_beta1/adam_beta2 must lie in [0, 1) and adam_epsilon be > 0".into());
        }
        if self.loss_chunk_tokens < 0 || (self.loss_chunk_tokens > 0 && !self.gradient_checkpointing) {
            return Err("loss_chunk_tokens must be ≥ 0, and > 0 only with gradient_checkpointing = true".into());
        }
        if !self.validation_paths.is_empty() && (self.eval_steps == 0 || self.per_device_eval_batch_size == 0) {
            return Err("with validation_paths, eval_steps and per_device_eval_batch_size must be ≥ 1".into());
        }
        if let Some(d) = self.attention_dropout {
            if !(0.0..1.0).contains(&d) {
                return Err(format!("attention_dropout {d} is not in [0, 1)"));
            }
        }
        Ok(SftExperiment {
            model: p(&self.model_name_or_path, "model_name_or_path")?,
            tokenizer: p(self.tokenizer_path.as_deref().unwrap_or(&self.model_name_or_path), "tokenizer_path")?,
            data_paths: self.data_paths.iter().map(|d| p(d, "data_paths")).collect::<std::result::Result<_, _>>()?,
            output_dir: p(&self.output_dir, "output_dir")?,
            name: self.name,
            data_format: self.data_format,
            coefficients: (!self.coefficients.is_empty()).then_some(self.coefficients),
            cot_keys: self.cot_keys,
            seed: self.seed,
            num_train_epochs: self.num_train_epochs,
            max_steps: self.max_steps,
            micro_batch: self.per_device_train_batch_size,
            grad_accum: self.gradient_accumulation_steps,
            lr: self.learning_rate,
            min_lr: self.min_learning_rate,
            warmup_steps: self.warmup_steps,
            adamw: AdamWConfig {
                beta1: self.adam_beta1,
                beta2: self.adam_beta2,
                eps: self.adam_epsilon,
                weight_decay: self.weight_decay,
            },
            max_grad_norm: self.max_grad_norm,
            save_steps: self.save_steps,
            save_total_limit: self.save_total_limit,
            logging_steps: self.logging_steps.max(1),
            bf16: self.bf16,
            gradient_checkpointing: self.gradient_checkpointing,
            loss_chunk_tokens: self.loss_chunk_tokens,
            nan_policy: self.nan_policy,
            max_len: self.max_position_embeddings,
            image_area: self.image_area,
            attention_dropout: self.attention_dropout,
            loss_norm: self.loss_normalization,
            device: self.device,
            validation_paths: self
                .validation_paths
                .iter()
                .map(|d| p(d, "validation_paths"))
                .collect::<std::result::Result<_, _>>()?,
            validation_size: self.validation_size,
            eval_steps: self.eval_steps,
            eval_batch: self.per_device_eval_batch_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        (v == "EARL_DATA").then(|| "/data".to_string())
    }

    #[test]
    fn paper_defaults_and_variable_expansion() {
        let raw: RawSftExperiment = toml::from_str(
            r#"name = "s"
model_name_or_path = "BAAI/Emu3-Stage1"
data_paths = ["${EARL_DATA}/omniedit"]
output_dir = "runs/s""#,
        )
        .unwrap();
        let e = raw.validate(&env).unwrap();
        assert_eq!(e.data_paths, vec![PathBuf::from("/data/omniedit")]);
        assert_eq!(
            (e.lr, e.min_lr, e.warmup_steps, e.max_grad_norm, e.micro_batch, e.grad_accum),
            (1e-4, 1e-5, 30, 5.0, 2, 8)
        );
        assert_eq!(e.adamw, AdamWConfig::default());
        assert!(e.coefficients.is_none());
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let base = "name = \"s\"\nmodel_name_or_path = \"m\"\noutput_dir = \"o\"\n";
        let parse = |extra: &str| toml::from_str::<RawSftExperiment>(&format!("{base}{extra}"));
        assert!(parse("data_paths = [\"a\"]\nlearnin_rate = 1.0\n").unwrap_err().to_string().contains("learnin_rate"));
        let e = parse("data_paths = [\"${NOPE}/x\"]\n").unwrap().validate(&env).unwrap_err();
        assert!(e.contains("NOPE is not set"), "{e}");
        let e = parse("data_paths = [\"a\", \"b\"]\ncoefficients = [1.0]\n").unwrap().validate(&env).unwrap_err();
        assert!(e.contains("1 coefficients for 2"), "{e}");
        let e = parse("data_paths = [\"a\"]\nlr_scheduler_type = \"linear\"\n").unwrap().validate(&env).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        let e = parse("data_paths = [\"a\"]\nloss_chunk_tokens = 512\n").unwrap().validate(&env).unwrap_err();
        assert!(e.contains("only with gradient_checkpointing"), "{e}");
    }
}

//! SFT experiment files (TOML), in two levels: [`RawSftExperiment`] mirrors a file — field names are the
//! reference's `train_image_editing.py` arguments (`model_name_or_path`, `data_paths`, `coefficients`, `cot_keys`,
//! `learning_rate`, `min_learning_rate`, `warmup_steps`, `adam_beta2`, `max_grad_norm`, …) so EARL's shell scripts
//! translate one to one — and [`SftExperiment`] is the validated result with every default applied. Files are read
//! by the shared experiment layer ([`crate::experiment`]): `extends` chains, `${VAR}` / `${VAR:-default}` from the
//! environment (an unset variable is an error naming key and file), `./` paths relative to the file that sets them.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::loss::LossNorm;
use super::optim::AdamWConfig;
use crate::error::Result;
use crate::experiment::{Layers, Resolver};

/// What the datasets hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// Tokenized edit records, laid out as training sequences by the prompt module (needs the text tokenizer).
    Edits,
    /// Pre-tokenized `input_ids` + `labels`.
    Sequences,
}

impl DataFormat {
    /// The name written in experiment files and dataset manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            DataFormat::Edits => "edits",
            DataFormat::Sequences => "sequences",
        }
    }
}

/// One TOML file as written (every field optional, so that base files check on their own). Defaults, applied in
/// validation, are the paper's `scripts/ie_sft.sh` values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSftExperiment {
    /// Experiment name (required).
    pub name: Option<String>,
    /// Base model to fine-tune: a checkpoint directory or hub id (required).
    pub model_name_or_path: Option<String>,
    /// Tokenizer directory for `edits` data; default: `model_name_or_path` (as the reference loads it).
    pub tokenizer_path: Option<String>,
    /// Training datasets (required, non-empty).
    pub data_paths: Option<Vec<String>>,
    /// `sequences` (pre-tokenized ids + labels) or `edits` (tokenized edit records, laid out by the prompt module).
    pub data_format: Option<DataFormat>,
    /// Mixture weight per dataset (the reference's `coefficients`); unset or empty upsamples every dataset to the
    /// largest.
    pub coefficients: Option<Vec<f64>>,
    /// CoT-map keys whose reasoning is written before the edited image (the reference's `cot_keys`; default none).
    pub cot_keys: Option<Vec<String>>,
    /// Run directory: manifest, metrics and checkpoints (required).
    pub output_dir: Option<String>,
    /// Seed of the mixture, the epoch orders and dropout (default 42).
    pub seed: Option<u64>,
    /// Epochs over the mixture, fractional allowed (default 10).
    pub num_train_epochs: Option<f64>,
    /// > 0 overrides `num_train_epochs`.
    pub max_steps: Option<u64>,
    /// Sequences per micro-batch (default 2).
    pub per_device_train_batch_size: Option<usize>,
    /// Micro-batches per optimizer step (default 8).
    pub gradient_accumulation_steps: Option<usize>,
    /// Peak learning rate after warm-up (default 1e-4).
    pub learning_rate: Option<f64>,
    /// Floor of the cosine schedule (default 1e-5).
    pub min_learning_rate: Option<f64>,
    /// AdamW decoupled weight decay; biases and norm weights are exempt (default 0.1).
    pub weight_decay: Option<f64>,
    /// Global L2 gradient-norm clip (default 5.0).
    pub max_grad_norm: Option<f64>,
    /// AdamW β1 (default 0.9).
    pub adam_beta1: Option<f64>,
    /// AdamW β2 (default 0.95).
    pub adam_beta2: Option<f64>,
    /// AdamW ε (default 1e-6).
    pub adam_epsilon: Option<f64>,
    /// Linear warm-up steps from lr 0 (default 30).
    pub warmup_steps: Option<u64>,
    /// Learning-rate schedule; only `cosine_with_min_lr` (the default, the paper's) is accepted.
    pub lr_scheduler_type: Option<String>,
    /// Checkpoint every this many optimizer steps (default 100).
    pub save_steps: Option<u64>,
    /// Checkpoints kept, oldest pruned first (default 0 = keep all).
    pub save_total_limit: Option<usize>,
    /// Metrics line every this many optimizer steps (default 1).
    pub logging_steps: Option<u64>,
    /// Compute in bf16 with fp32 master weights; false trains in fp32 (default true).
    pub bf16: Option<bool>,
    /// Recompute layers in the backward pass; gradients unchanged (default false).
    pub gradient_checkpointing: Option<bool>,
    /// With `gradient_checkpointing`: run the head and the loss this many positions at a time (0 = all at once).
    pub loss_chunk_tokens: Option<i64>,
    /// What a step with a NaN or infinite loss or gradient norm does: "stop" (default) or "skip_step".
    pub nan_policy: Option<crate::train::NanPolicy>,
    /// Sequences longer than this are rejected (the reference's `max_position_embeddings` argument).
    pub max_position_embeddings: Option<i64>,
    /// Target image area the data was tokenized at: recorded in the run manifest, and a dataset whose manifest
    /// records another area is refused.
    pub image_area: Option<u64>,
    /// Training dropout; default: the model config's `attention_dropout` (0.1 for Emu3, what the paper trained with).
    pub attention_dropout: Option<f64>,
    /// `micro_batch_mean` reproduces the reference Trainer; `global_tokens` weights every response token equally.
    pub loss_normalization: Option<LossNorm>,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (the default: cuda when one is available); `earl sft --device` overrides.
    pub device: Option<String>,
    /// Validation datasets (the reference's `validation_paths`); empty = no evaluation.
    pub validation_paths: Option<Vec<String>>,
    /// Validation samples in all: `validation_size / len(validation_paths)` drawn from each (the reference's rule).
    pub validation_size: Option<usize>,
    /// Evaluate every this many optimizer steps (the reference's `eval_steps` with `eval_strategy = "steps"`).
    pub eval_steps: Option<u64>,
    /// Sequences per validation batch (default 1).
    pub per_device_eval_batch_size: Option<usize>,
}

/// A validated experiment.
#[derive(Debug, Clone, Serialize)]
pub struct SftExperiment {
    /// Experiment name.
    pub name: String,
    /// Base model directory or hub id.
    pub model: PathBuf,
    /// Text tokenizer directory or hub id.
    pub tokenizer: PathBuf,
    /// Training datasets, resolved.
    pub data_paths: Vec<PathBuf>,
    /// What the datasets hold.
    pub data_format: DataFormat,
    /// Mixture weight per dataset; `None` upsamples every dataset to the largest.
    pub coefficients: Option<Vec<f64>>,
    /// CoT-map keys written as reasoning before the edited image.
    pub cot_keys: Vec<String>,
    /// Run directory.
    pub output_dir: PathBuf,
    /// Seed of the mixture, the epoch orders and dropout.
    pub seed: u64,
    /// Epochs over the mixture (fractional allowed); ignored when `max_steps` > 0.
    pub num_train_epochs: f64,
    /// Optimizer steps; 0 = derived from `num_train_epochs`.
    pub max_steps: u64,
    /// Sequences per micro-batch (`per_device_train_batch_size`).
    pub micro_batch: usize,
    /// Micro-batches per optimizer step (`gradient_accumulation_steps`).
    pub grad_accum: usize,
    /// Peak learning rate (`learning_rate`).
    pub lr: f64,
    /// Floor of the cosine schedule (`min_learning_rate`).
    pub min_lr: f64,
    /// Linear warm-up steps from lr 0.
    pub warmup_steps: u64,
    /// AdamW β1, β2, ε and weight decay.
    pub adamw: AdamWConfig,
    /// Global L2 gradient-norm clip.
    pub max_grad_norm: f64,
    /// Checkpoint every this many optimizer steps.
    pub save_steps: u64,
    /// Checkpoints kept (0 = all).
    pub save_total_limit: usize,
    /// Metrics line every this many optimizer steps (>= 1).
    pub logging_steps: u64,
    /// bf16 compute with fp32 masters (else fp32).
    pub bf16: bool,
    /// Recompute layers in the backward pass.
    pub gradient_checkpointing: bool,
    /// Positions per head-and-loss chunk with checkpointing (0 = all at once).
    pub loss_chunk_tokens: i64,
    /// What a step with a NaN or infinite loss or gradient norm does.
    pub nan_policy: crate::train::NanPolicy,
    /// Longest accepted sequence in tokens (`max_position_embeddings`); `None` = no limit.
    pub max_len: Option<i64>,
    /// Image area (pixels) the data must have been tokenized at; `None` = not checked.
    pub image_area: Option<u64>,
    /// Training dropout override; `None` = the model config's.
    pub attention_dropout: Option<f64>,
    /// How token losses are averaged over a step.
    pub loss_norm: LossNorm,
    /// As written (`auto` = cuda when available); parsed by `device::parse_device` when the run starts.
    pub device: String,
    /// Validation datasets; empty = no evaluation.
    pub validation_paths: Vec<PathBuf>,
    /// Validation samples in all, split evenly over `validation_paths` (default 50).
    pub validation_size: usize,
    /// Evaluate every this many optimizer steps (default 100).
    pub eval_steps: u64,
    /// Sequences per validation batch (`per_device_eval_batch_size`).
    pub eval_batch: usize,
}

impl SftExperiment {
    /// Reads, merges (`extends`), expands `${VAR}` from the process environment and validates an experiment file.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::load_with_env(path, &|v| std::env::var(v).ok())
    }

    /// As [`SftExperiment::from_file`], reading variables through `env`.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        Self::from_layers(&Layers::load::<RawSftExperiment>(path, &|_| false)?, env)
    }

    /// Validates already merged layers (an experiment file with a chain's overrides laid over it).
    pub fn from_layers(layers: &Layers, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let raw: RawSftExperiment = layers.deserialize()?;
        raw.validate(&Resolver::new(layers, env))
    }

    /// The fields that decide the run's results, recorded in checkpoints and the run manifest. Left out: where the
    /// run writes and what it is called, how often it logs, saves and validates, how many checkpoints it keeps, and
    /// the validation set (it is only evaluated), so a run that was moved or whose bookkeeping changed still resumes.
    pub fn fingerprint(&self) -> crate::train::fingerprint::Fingerprint {
        const LEFT_OUT: [&str; 9] = [
            "name",
            "output_dir",
            "save_steps",
            "save_total_limit",
            "logging_steps",
            "validation_paths",
            "validation_size",
            "eval_steps",
            "eval_batch",
        ];
        crate::train::fingerprint::Fingerprint::of(self, &LEFT_OUT)
    }

    /// SHA-256 of [`Self::fingerprint`].
    pub fn hash(&self) -> String {
        self.fingerprint().hash()
    }
}

/// The validated optimisation settings, with the paper's defaults.
struct Optim {
    lr: f64,
    min_lr: f64,
    adamw: AdamWConfig,
    max_grad_norm: f64,
}

impl RawSftExperiment {
    fn optim(&self, r: &Resolver<'_>) -> Result<Optim> {
        let lr = self.learning_rate.unwrap_or(1e-4);
        let min_lr = self.min_learning_rate.unwrap_or(1e-5);
        r.check(lr > 0.0 && (0.0..=lr).contains(&min_lr), "learning_rate", || {
            format!("need 0 ≤ min_learning_rate ({min_lr}) ≤ learning_rate ({lr}), learning_rate > 0")
        })?;
        let schedule = self.lr_scheduler_type.as_deref().unwrap_or("cosine_with_min_lr");
        r.check(schedule == "cosine_with_min_lr", "lr_scheduler_type", || {
            format!("lr_scheduler_type {schedule:?} is not supported (the paper uses cosine_with_min_lr)")
        })?;
        let adamw = AdamWConfig {
            beta1: self.adam_beta1.unwrap_or(0.9),
            beta2: self.adam_beta2.unwrap_or(0.95),
            eps: self.adam_epsilon.unwrap_or(1e-6),
            weight_decay: self.weight_decay.unwrap_or(0.1),
        };
        let betas_ok = (0.0..1.0).contains(&adamw.beta1) && (0.0..1.0).contains(&adamw.beta2);
        r.check(betas_ok && adamw.eps > 0.0, "adam_beta1", || {
            "adam_beta1/adam_beta2 must lie in [0, 1) and adam_epsilon be > 0".into()
        })?;
        Ok(Optim { lr, min_lr, adamw, max_grad_norm: self.max_grad_norm.unwrap_or(5.0) })
    }

    /// Checks of the batch, schedule, memory and validation settings.
    fn check(&self, r: &Resolver<'_>) -> Result<()> {
        let data_paths = r.need(self.data_paths.as_ref(), "data_paths")?;
        r.check(!data_paths.is_empty(), "data_paths", || "data_paths is empty".into())?;
        let coefs = self.coefficients.as_deref().unwrap_or_default();
        r.check(coefs.is_empty() || coefs.len() == data_paths.len(), "coefficients", || {
            format!("{} coefficients for {} data_paths", coefs.len(), data_paths.len())
        })?;
        let (micro, accum) = (self.per_device_train_batch_size, self.gradient_accumulation_steps);
        r.check(micro != Some(0) && accum != Some(0), "per_device_train_batch_size", || {
            "per_device_train_batch_size and gradient_accumulation_steps must be ≥ 1".into()
        })?;
        let epochs = self.num_train_epochs.unwrap_or(10.0);
        r.check(self.max_steps.unwrap_or(0) > 0 || epochs > 0.0, "num_train_epochs", || {
            "set num_train_epochs > 0 or max_steps > 0".into()
        })?;
        let chunk = self.loss_chunk_tokens.unwrap_or(0);
        let checkpointing = self.gradient_checkpointing.unwrap_or(false);
        r.check(chunk >= 0 && (chunk == 0 || checkpointing), "loss_chunk_tokens", || {
            "loss_chunk_tokens must be ≥ 0, and > 0 only with gradient_checkpointing = true".into()
        })?;
        let validating = self.validation_paths.as_ref().is_some_and(|v| !v.is_empty());
        let (eval_steps, eval_batch) = (self.eval_steps.unwrap_or(100), self.per_device_eval_batch_size.unwrap_or(1));
        r.check(!validating || (eval_steps > 0 && eval_batch > 0), "eval_steps", || {
            "with validation_paths, eval_steps and per_device_eval_batch_size must be ≥ 1".into()
        })?;
        if let Some(d) = self.attention_dropout {
            r.check((0.0..1.0).contains(&d), "attention_dropout", || {
                format!("attention_dropout {d} is not in [0, 1)")
            })?;
        }
        Ok(())
    }

    fn validate(self, r: &Resolver<'_>) -> Result<SftExperiment> {
        self.check(r)?;
        let o = self.optim(r)?;
        let model_name = r.need(self.model_name_or_path.as_deref(), "model_name_or_path")?;
        let tokenizer = match &self.tokenizer_path {
            Some(t) => r.path("tokenizer_path", t)?,
            None => r.path("model_name_or_path", model_name)?,
        };
        let output_dir = r.need(self.output_dir.as_deref(), "output_dir")?;
        let coefficients = self.coefficients.filter(|c| !c.is_empty());
        Ok(SftExperiment {
            name: r.need(self.name, "name")?,
            model: r.path("model_name_or_path", model_name)?,
            tokenizer,
            data_paths: r.paths("data_paths", self.data_paths.as_deref().unwrap_or_default())?,
            output_dir: r.path("output_dir", output_dir)?,
            data_format: self.data_format.unwrap_or(DataFormat::Edits),
            coefficients,
            cot_keys: self.cot_keys.unwrap_or_default(),
            seed: self.seed.unwrap_or(42),
            num_train_epochs: self.num_train_epochs.unwrap_or(10.0),
            max_steps: self.max_steps.unwrap_or(0),
            micro_batch: self.per_device_train_batch_size.unwrap_or(2),
            grad_accum: self.gradient_accumulation_steps.unwrap_or(8),
            lr: o.lr,
            min_lr: o.min_lr,
            warmup_steps: self.warmup_steps.unwrap_or(30),
            adamw: o.adamw,
            max_grad_norm: o.max_grad_norm,
            save_steps: self.save_steps.unwrap_or(100),
            save_total_limit: self.save_total_limit.unwrap_or(0),
            logging_steps: self.logging_steps.unwrap_or(1).max(1),
            bf16: self.bf16.unwrap_or(true),
            gradient_checkpointing: self.gradient_checkpointing.unwrap_or(false),
            loss_chunk_tokens: self.loss_chunk_tokens.unwrap_or(0),
            nan_policy: self.nan_policy.unwrap_or_default(),
            max_len: self.max_position_embeddings,
            image_area: self.image_area,
            attention_dropout: self.attention_dropout,
            loss_norm: self.loss_normalization.unwrap_or(LossNorm::GlobalTokens),
            device: self.device.unwrap_or_else(|| "auto".into()),
            validation_paths: r.paths("validation_paths", self.validation_paths.as_deref().unwrap_or_default())?,
            validation_size: self.validation_size.unwrap_or(50),
            eval_steps: self.eval_steps.unwrap_or(100),
            eval_batch: self.per_device_eval_batch_size.unwrap_or(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        (v == "EARL_DATA").then(|| "/data".to_string())
    }

    fn load(text: &str) -> Result<SftExperiment> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        SftExperiment::load_with_env(&p, &env)
    }

    #[test]
    fn paper_defaults_and_variable_expansion() {
        let e = load(
            r#"name = "s"
model_name_or_path = "BAAI/Emu3-Stage1"
data_paths = ["${EARL_DATA}/omniedit"]
output_dir = "runs/s""#,
        )
        .unwrap();
        assert_eq!(e.data_paths, vec![PathBuf::from("/data/omniedit")]);
        assert_eq!(
            (e.lr, e.min_lr, e.warmup_steps, e.max_grad_norm, e.micro_batch, e.grad_accum),
            (1e-4, 1e-5, 30, 5.0, 2, 8)
        );
        assert_eq!(e.adamw, AdamWConfig::default());
        assert!(e.coefficients.is_none());
        assert_eq!((e.data_format, e.device.as_str()), (DataFormat::Edits, "auto"));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let base = "name = \"s\"\nmodel_name_or_path = \"m\"\noutput_dir = \"o\"\n";
        let err = |extra: &str| load(&format!("{base}{extra}")).unwrap_err().to_string();
        let e = err("data_paths = [\"a\"]\nlearnin_rate = 1.0\n");
        assert!(e.contains("line 5, column 16: unknown field `learnin_rate`"), "{e}");
        let e = err("data_paths = [\"${NOPE}/x\"]\n");
        assert!(e.contains("line 4: data_paths: environment variable NOPE is not set"), "{e}");
        let e = err("data_paths = [\"a\", \"b\"]\ncoefficients = [1.0]\n");
        assert!(e.contains("1 coefficients for 2"), "{e}");
        let e = err("data_paths = [\"a\"]\nlr_scheduler_type = \"linear\"\n");
        assert!(e.contains("not supported"), "{e}");
        let e = err("data_paths = [\"a\"]\nloss_chunk_tokens = 512\n");
        assert!(e.contains("only with gradient_checkpointing"), "{e}");
        let e = err("data_paths = [\"a\"]\ndata_format = \"pairs\"\n");
        assert!(e.contains("line 5") && e.contains("`edits` or `sequences`"), "{e}");
        let e = load("name = \"s\"\n").unwrap_err().to_string();
        assert!(e.contains("missing required field `data_paths`"), "{e}");
    }

    #[test]
    fn a_file_can_extend_a_base() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("base.toml"), "model_name_or_path = \"m\"\nlearning_rate = 0.5\nseed = 1\n")
            .unwrap();
        let p = d.path().join("run.toml");
        std::fs::write(
            &p,
            "extends = \"base.toml\"\nname = \"r\"\ndata_paths = [\"./d\"]\noutput_dir = \"o\"\nseed = 2\n",
        )
        .unwrap();
        let e = SftExperiment::load_with_env(&p, &env).unwrap();
        assert_eq!((e.lr, e.seed, e.model.to_str().unwrap()), (0.5, 2, "m"));
        assert_eq!(e.data_paths, vec![d.path().join("./d")]);
    }
}

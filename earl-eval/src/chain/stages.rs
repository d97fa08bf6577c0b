//! The stages of a chain once validated: what each runs (its experiment, with the chain's wiring applied), where it
//! writes, what it starts from ([`StageInput`]) and what it hands on ([`StageOutput`]). An evaluation stage keeps its
//! table as written (variables expanded): the evaluation runner validates it (`run::EvalConfig::from_raw`) when the
//! stage is checked or run, so this module depends on no field of that config but `benchmark`, `model` and
//! `tokenizer`.
use std::path::{Path, PathBuf};

use earl_core::experiment::{expand_vars, Layers, Resolver};
use earl_core::train::fingerprint::Fingerprint;
use earl_core::train::SftExperiment;
use earl_core::Result;
use serde::{Deserialize, Serialize};
use toml::Value;

use crate::config::RlExperiment;
use crate::run::{EvalConfig, RawEvalConfig};

/// The kinds of stage, in the order a chain runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// Supervised fine-tuning (`earl sft`).
    Sft,
    /// GRPO (`earl rl`).
    Rl,
    /// One benchmark (`earl eval run`).
    Eval,
}

impl StageKind {
    /// The stage's table name.
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Sft => "sft",
            StageKind::Rl => "rl",
            StageKind::Eval => "eval",
        }
    }
}

/// What a training stage hands on: the model directory and the text tokenizer that goes with it (checkpoints hold
/// no tokenizer, so it is passed along from the stage that had one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageOutput {
    /// Model directory (a checkpoint).
    pub model: PathBuf,
    /// Text tokenizer directory or hub id.
    pub tokenizer: PathBuf,
}

/// Where a stage's model comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct StageInput {
    /// The stage that produces it: `sft`, `rl`, or `FILE:stage` for another chain's (`[chain] from`).
    pub stage: String,
    /// That stage's fingerprint hash.
    pub fingerprint: String,
    /// Its output as planned before it runs (the SFT checkpoint's step is only known after).
    pub planned: StageOutput,
}

/// The SFT stage.
#[derive(Debug, Clone)]
pub struct SftStage {
    /// The experiment, with `output_dir` (and, with `from`, the model) set by the chain.
    pub exp: SftExperiment,
    /// `<out>/sft`.
    pub dir: PathBuf,
    /// Where the model comes from when the chain wires it (`from`); `None` = the experiment's own.
    pub input: Option<StageInput>,
    /// What it will hand on (the model is the stage directory until the final checkpoint is known).
    pub planned: StageOutput,
    /// Its fingerprint (the experiment's, without the wired paths, and the input's).
    pub fingerprint: Fingerprint,
}

/// The RL stage.
#[derive(Debug, Clone)]
pub struct RlStage {
    /// The experiment, written to `<out>/rl`, its model wired from the previous training stage.
    pub exp: RlExperiment,
    /// Vision tokenizer (`earl rl --vq`).
    pub vq: Option<PathBuf>,
    /// Its dtype (`earl rl --vq-dtype`; default f32).
    pub vq_dtype: Option<String>,
    /// Device (`earl rl --device`; default auto).
    pub device: Option<String>,
    /// Compute dtype (`earl rl --dtype`).
    pub dtype: Option<String>,
    /// Rollout decode engine (`earl rl --engine`: eager, graph or auto; default auto).
    pub engine: Option<String>,
    /// `<out>/rl`.
    pub dir: PathBuf,
    /// Where the model comes from when wired.
    pub input: Option<StageInput>,
    /// What it will hand on: `<out>/rl/checkpoints/checkpoint-{num_iterations}`.
    pub planned: StageOutput,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

/// One evaluation.
#[derive(Debug, Clone)]
pub struct EvalStage {
    /// The benchmark.
    pub benchmark: String,
    /// The evaluation's settings as written, variables expanded and the model wired (a `RawEvalConfig`).
    pub values: toml::Table,
    /// `<out>/eval/<benchmark>`.
    pub dir: PathBuf,
    /// Where the model comes from when wired.
    pub input: Option<StageInput>,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

impl EvalStage {
    /// The settings with the model of `input` (the tokenizer was wired when the chain was loaded: it is known
    /// before the stage that hands it on runs; only an SFT checkpoint's step is not).
    pub fn wired(&self, input: Option<&StageOutput>) -> toml::Table {
        let mut v = self.values.clone();
        if let Some(o) = input {
            v.insert("model".into(), Value::String(o.model.to_string_lossy().into_owned()));
        }
        v
    }

    /// Validates `settings` (from [`EvalStage::wired`]) as the evaluation runner's config; relative paths that
    /// remain are relative to `base_dir` (the chain file's directory).
    pub fn config(&self, settings: toml::Table, base_dir: &Path, file: &Path) -> Result<EvalConfig> {
        let raw: RawEvalConfig = Value::Table(settings)
            .try_into()
            .map_err(|e| super::config::err(file, format!("[[eval]] {}: {}", self.benchmark, e.message().trim())))?;
        EvalConfig::from_raw(raw, base_dir)
    }
}

/// An evaluation's layers as a table, each string with `${VAR}` expanded and, when it starts with `./` or `../`,
/// made relative to the file that set it (the rule of every experiment path).
pub(super) fn expand_eval(layers: &Layers, env: &dyn Fn(&str) -> Option<String>) -> Result<toml::Table> {
    let r = Resolver::new(layers, env);
    let mut out = toml::Table::new();
    for key in layers.keys() {
        let dir = layers.origin(key).map(|o| o.dir().to_path_buf()).unwrap_or_default();
        let v = layers.get(key).cloned().unwrap_or(Value::Boolean(false));
        out.insert(key.to_string(), expand_value(v, &dir, &|s| expand_vars(s, env).map_err(|m| r.err(key, m)))?);
    }
    Ok(out)
}

fn expand_value(v: Value, dir: &Path, expand: &dyn Fn(&str) -> Result<String>) -> Result<Value> {
    Ok(match v {
        Value::String(s) => {
            let s = expand(&s)?;
            let relative = s.starts_with("./") || s.starts_with("../");
            Value::String(if relative { dir.join(&s).to_string_lossy().into_owned() } else { s })
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| expand_value(x, dir, expand)).collect::<Result<_>>()?),
        Value::Table(t) => {
            Value::Table(t.into_iter().map(|(k, x)| Ok((k, expand_value(x, dir, expand)?))).collect::<Result<_>>()?)
        }
        other => other,
    })
}

//! The stage loaders of a chain: a stage table split into the chain's own keys and the overrides, laid over the
//! experiment file it names (the shared experiment layer, so an override is checked and located as the file's own
//! keys are), with where the stage writes and the model it starts from set by the chain, and its fingerprint.
use std::path::{Path, PathBuf};

use earl_core::experiment::{Layers, Origin, Resolver};
use earl_core::rl::config::RawRlConfig;
use earl_core::train::experiment::RawSftExperiment;
use earl_core::train::fingerprint::Fingerprint;
use earl_core::train::SftExperiment;
use earl_core::Result;
use toml::Value;

use super::config::err;
use super::stages::{EvalStage, RlStage, SftStage, StageInput, StageKind, StageOutput};
use crate::config::RlExperiment;

/// Keys of a stage table that the chain reads itself instead of passing them to the stage's config.
fn chain_keys(kind: StageKind) -> &'static [&'static str] {
    match kind {
        StageKind::Sft => &["config"],
        StageKind::Rl => &["config", "vq", "vq_dtype", "device", "dtype", "engine"],
        StageKind::Eval => &["config"],
    }
}

/// A path of a chain key: expanded, and relative to the chain file unless absolute (as `extends` is).
pub(super) fn chain_path(r: &Resolver<'_>, key: &str, v: &Value) -> Result<PathBuf> {
    let s = v.as_str().ok_or_else(|| r.err(key, "must be a string (a path)"))?;
    let p = PathBuf::from(r.expand(key, s)?);
    let dir = r.layers().origin(key).map(|o| o.dir().to_path_buf()).unwrap_or_default();
    Ok(if p.is_absolute() { p } else { dir.join(p) })
}

/// Where a wired value is recorded as set: the stage table's line (the table itself, when it has no keys).
fn wired_origin(table: &Layers, file: &Path) -> Origin {
    let first = table.keys().next().and_then(|k| table.origin(k)).cloned();
    first.unwrap_or(Origin { file: file.to_path_buf(), line: 1, column: 1 })
}

/// What every stage loader needs: the chain file, the variables, and the chain's directory.
pub(super) struct Ctx<'a> {
    pub file: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub out: &'a Path,
    /// `[chain] seed`: set as every stage's seed (SFT `seed`, RL `random_seed`, eval `seed`), so it is part of
    /// every stage's fingerprint.
    pub seed: Option<u64>,
}

impl Ctx<'_> {
    /// The stage table split into the chain's own keys and the overrides, and the layers they apply to (the
    /// named experiment file, or for an eval stage without `config`, nothing).
    fn layers<F: serde::de::DeserializeOwned>(
        &self,
        kind: StageKind,
        table: Layers,
        owned_elsewhere: &dyn Fn(&str) -> bool,
    ) -> Result<(Layers, Layers)> {
        let mut overrides = table;
        let own = overrides.split_off(&|k| chain_keys(kind).contains(&k));
        let r = Resolver::new(&own, self.env);
        let mut base = match own.get("config") {
            Some(v) => Layers::load::<F>(&chain_path(&r, "config", v)?, owned_elsewhere)?,
            None if kind == StageKind::Eval => Layers::default(),
            None => {
                let msg = format!("[{}] needs `config`, the experiment file it runs", kind.as_str());
                return Err(err(self.file, msg));
            }
        };
        base.overlay(overrides);
        Ok((base, own))
    }

    /// Refuses a key of the stage table that the chain sets itself.
    fn refuse(&self, table: &Layers, key: &str, why: &str) -> Result<()> {
        match table.origin(key) {
            Some(o) => Err(err(&o.file, format!("line {}: {key}: {why}; remove it", o.line))),
            None => Ok(()),
        }
    }

    pub(super) fn sft(&self, table: Layers, input: Option<&StageInput>) -> Result<SftStage> {
        let here = wired_origin(&table, self.file);
        self.refuse(&table, "output_dir", "the chain writes this stage to <out>/sft")?;
        if input.is_some() {
            self.refuse(&table, "model_name_or_path", "wired from the chain's `from`")?;
        }
        let sets_tokenizer = table.get("tokenizer_path").is_some();
        let (mut layers, _) = self.layers::<RawSftExperiment>(StageKind::Sft, table, &|_| false)?;
        let dir = self.out.join("sft");
        layers.set("output_dir", Value::String(dir.to_string_lossy().into()), here.clone());
        if let Some(seed) = self.seed {
            layers.set("seed", Value::Integer(seed as i64), here.clone());
        }
        if let Some(i) = input {
            layers.set("model_name_or_path", path_value(&i.planned.model), here.clone());
            if !sets_tokenizer {
                layers.set("tokenizer_path", path_value(&i.planned.tokenizer), here);
            }
        }
        let exp = SftExperiment::from_layers(&layers, self.env)?;
        let own = strip(exp.fingerprint().to_json(), input, &["model", "tokenizer"], sets_tokenizer);
        let planned = StageOutput { model: dir.clone(), tokenizer: exp.tokenizer.clone() };
        Ok(SftStage { fingerprint: fingerprint(own, input), exp, dir, input: input.cloned(), planned })
    }

    pub(super) fn rl(&self, table: Layers, input: Option<&StageInput>) -> Result<RlStage> {
        let here = wired_origin(&table, self.file);
        for key in ["base_exp_dir", "run_name"] {
            self.refuse(&table, key, "the chain writes this stage to <out>/rl")?;
        }
        if input.is_some() {
            self.refuse(&table, "model_path", "wired from the previous training stage")?;
        }
        let sets_tokenizer = table.get("tokenizer_path").is_some();
        let verifier = &earl_core::rl::config::is_verifier_key;
        let (mut layers, own) = self.layers::<RawRlConfig>(StageKind::Rl, table, verifier)?;
        layers.set("base_exp_dir", path_value(self.out), here.clone());
        layers.set("run_name", Value::String("rl".into()), here.clone());
        if let Some(seed) = self.seed {
            layers.set("random_seed", Value::Integer(seed as i64), here.clone());
        }
        if let Some(i) = input {
            layers.set("model_path", path_value(&i.planned.model), here.clone());
            if !sets_tokenizer {
                layers.set("tokenizer_path", path_value(&i.planned.tokenizer), here);
            }
        }
        let exp = RlExperiment::from_layers(layers.clone(), self.env)?;
        let r = Resolver::new(&own, self.env);
        let text = |k: &str| {
            own.get(k)
                .map(|v| v.as_str().map(|s| r.expand(k, s)).unwrap_or_else(|| Err(r.err(k, "must be a string"))))
                .transpose()
        };
        let vq = own.get("vq").map(|v| chain_path(&r, "vq", v)).transpose()?;
        let (device, dtype, vq_dtype) = (text("device")?, text("dtype")?, text("vq_dtype")?);
        // The rollouts' decode path; not in the fingerprint (both engines sample the same tokens).
        let engine = text("engine")?;
        if let Some(e) = &engine {
            earl_core::generate::Engine::resolve(e, tch::Device::Cpu).map_err(|x| r.err("engine", x))?;
        }
        let (n, every) = (exp.rl.optim.num_iterations, exp.rl.logging.save_checkpoints_every_n_iterations);
        if !earl_core::rl::bookkeeping::saves_after(n - 1, n, every) {
            let msg = "the chain needs the final checkpoint: set save_checkpoints_every_n_iterations ≥ 1 (and num_iterations ≥ 2)";
            return Err(err(layers.source(), msg));
        }
        let dir = self.out.join("rl");
        let mut own_fp =
            strip(exp.rl.fingerprint().to_json(), input, &["model_path", "tokenizer_path"], sets_tokenizer);
        own_fp["chain.vq"] = serde_json::json!(vq);
        own_fp["chain.dtype"] = serde_json::json!(dtype);
        let planned = StageOutput {
            model: dir.join("checkpoints").join(format!("checkpoint-{n}")),
            tokenizer: PathBuf::from(&exp.rl.tokenizer_path),
        };
        let fingerprint = fingerprint(own_fp, input);
        Ok(RlStage { exp, vq, vq_dtype, device, dtype, engine, dir, input: input.cloned(), planned, fingerprint })
    }

    pub(super) fn eval(&self, table: Layers, input: Option<&StageInput>, index: usize) -> Result<EvalStage> {
        if input.is_some() {
            self.refuse(&table, "model", "wired from the chain's last training stage")?;
        }
        let sets_tokenizer = table.get("tokenizer").is_some();
        let (layers, _) = self.layers::<toml::Table>(StageKind::Eval, table, &|_| false)?;
        let mut values = super::stages::expand_eval(&layers, self.env)?;
        if let Some(seed) = self.seed {
            values.insert("seed".into(), Value::Integer(seed as i64));
        }
        let benchmark = match values.get("benchmark") {
            Some(Value::String(b)) if !b.is_empty() => b.clone(),
            _ => return Err(err(self.file, format!("[[eval]] number {}: `benchmark` is required", index + 1))),
        };
        if input.is_none() && !values.contains_key("model") {
            return Err(err(
                self.file,
                format!("[[eval]] {benchmark}: `model` is required (no training stage to take it from)"),
            ));
        }
        let mut own = serde_json::to_value(&values).unwrap_or_default();
        if let (Some(i), Some(o)) = (input, own.as_object_mut()) {
            o.remove("model");
            if !sets_tokenizer {
                o.remove("tokenizer");
            }
            values.insert("model".into(), path_value(&i.planned.model));
            if !sets_tokenizer {
                values.insert("tokenizer".into(), path_value(&i.planned.tokenizer));
            }
        }
        let dir = self.out.join("eval").join(&benchmark);
        Ok(EvalStage { fingerprint: fingerprint(own, input), benchmark, values, dir, input: input.cloned() })
    }
}

fn path_value(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

/// A stage's own fingerprint fields without the wired ones (their identity is the input's fingerprint).
fn strip(
    mut fields: serde_json::Value,
    input: Option<&StageInput>,
    wired: &[&str],
    tokenizer_set: bool,
) -> serde_json::Value {
    if let (Some(_), Some(o)) = (input, fields.as_object_mut()) {
        o.remove(wired[0]);
        if !tokenizer_set {
            o.remove(wired[1]);
        }
    }
    fields
}

/// A stage's fingerprint: its own fields and the fingerprint of the stage it starts from, so a change anywhere
/// upstream changes every stage after it.
fn fingerprint(mut own: serde_json::Value, input: Option<&StageInput>) -> Fingerprint {
    if let Some(o) = own.as_object_mut() {
        o.insert("chain.input".into(), serde_json::json!(input.map(|i| i.fingerprint.clone())));
    }
    Fingerprint::of(&own, &[])
}

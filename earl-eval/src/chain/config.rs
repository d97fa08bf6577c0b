//! Reading a chain file: the `[chain]` header, the stage tables in their fixed order, each training stage's
//! experiment file with the table's overrides laid over it (the shared experiment layer, so errors name the file,
//! line and key that is wrong), and the wiring of every stage's input model to the previous stage's output. Nothing
//! is run and no path is required to exist: `earl experiment run` and the tests of experiments/paper/ load alike.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use earl_core::experiment::{Layers, Origin, Resolver};
use earl_core::rl::config::RawRlConfig;
use earl_core::train::experiment::RawSftExperiment;
use earl_core::train::fingerprint::Fingerprint;
use earl_core::train::SftExperiment;
use earl_core::{Error, Result};
use serde::Deserialize;
use toml::{Spanned, Value};

use super::stages::{EvalStage, RlStage, SftStage, StageInput, StageKind, StageOutput};
use crate::config::RlExperiment;

/// Serde mirror of the `[chain]` header.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Option<String>,
    out: Option<String>,
    from: Option<String>,
}

/// A stage table as written: its keys with their origins.
type Table = BTreeMap<String, Spanned<Value>>;

/// The chain file's tables (their names and order are checked before this is read).
#[derive(Deserialize)]
struct RawChainFile {
    chain: Option<Table>,
    sft: Option<Table>,
    rl: Option<Table>,
    eval: Option<Vec<Table>>,
}

/// A validated chain: where it writes, what it starts from, and its stages in order.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The chain's name (`[chain] name`, default: the file's stem): its row in `earl experiment compare`.
    pub name: String,
    /// The chain file.
    pub file: PathBuf,
    /// The chain's directory: `chain.json` and one directory per stage.
    pub out: PathBuf,
    /// The chain whose final model this one starts from (`[chain] from`).
    pub from: Option<Upstream>,
    /// The SFT stage.
    pub sft: Option<SftStage>,
    /// The RL stage.
    pub rl: Option<RlStage>,
    /// The evaluations, in file order.
    pub evals: Vec<EvalStage>,
}

/// The training stage of another chain that this chain starts from.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// That chain's file.
    pub file: PathBuf,
    /// That chain's directory (its `chain.json` records the output).
    pub out: PathBuf,
    /// The stage whose output is used (its last training stage).
    pub stage: StageKind,
    /// That stage's fingerprint: a change upstream invalidates this chain's stages.
    pub fingerprint: String,
    /// The output as planned (the model is only known once that stage has run).
    pub planned: StageOutput,
}

/// Keys of a stage table that the chain reads itself instead of passing them to the stage's config.
fn chain_keys(kind: StageKind) -> &'static [&'static str] {
    match kind {
        StageKind::Sft => &["config"],
        StageKind::Rl => &["config", "vq", "vq_dtype", "device", "dtype"],
        StageKind::Eval => &["config"],
    }
}

pub(super) fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Config { path: path.to_path_buf(), msg: msg.into() }
}

/// The top-level tables must be stages in the order they run (a chain reads as it executes).
fn check_tables(file: &Path, text: &str) -> Result<()> {
    let top: BTreeMap<String, Spanned<Value>> = toml::from_str(text).map_err(|e| err(file, e.message().trim()))?;
    const ORDER: [&str; 4] = ["chain", "sft", "rl", "eval"];
    let mut seen: Vec<(usize, &str)> = Vec::new();
    for (k, v) in &top {
        let Some(rank) = ORDER.iter().position(|s| s == k) else {
            return Err(err(
                file,
                format!("unknown stage `{k}` (a chain has [chain], [sft], [rl] and [[eval]] tables)"),
            ));
        };
        let shape_ok = match (rank, v.get_ref()) {
            (3, Value::Array(a)) => a.iter().all(Value::is_table),
            (3, _) => false,
            (_, v) => v.is_table(),
        };
        if !shape_ok {
            let want = if rank == 3 { "one [[eval]] table per evaluation" } else { "a table" };
            return Err(err(file, format!("`{k}` must be {want}")));
        }
        seen.push((v.span().start, ORDER[rank]));
    }
    seen.sort();
    let stages: Vec<&str> = seen.iter().map(|(_, s)| *s).filter(|s| *s != "chain").collect();
    for w in stages.windows(2) {
        let (a, b) = (ORDER.iter().position(|s| *s == w[0]), ORDER.iter().position(|s| *s == w[1]));
        if a > b {
            return Err(err(
                file,
                format!("stage `{}` comes after `{}`: stages run in the order sft → rl → eval", w[0], w[1]),
            ));
        }
    }
    if stages.is_empty() {
        return Err(err(file, "no stage: a chain has at least one of [sft], [rl], [[eval]]"));
    }
    Ok(())
}

/// A path of a chain key: expanded, and relative to the chain file unless absolute (as `extends` is).
fn chain_path(r: &Resolver<'_>, key: &str, v: &Value) -> Result<PathBuf> {
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

/// The header's name (default: the file's stem), `out`, and `from` (resolved).
fn read_header(
    path: &Path,
    header: &Layers,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, PathBuf, Option<PathBuf>)> {
    let h: RawHeader = header.deserialize()?;
    let r = Resolver::new(header, env);
    let name = match &h.name {
        Some(n) => r.expand("name", n)?,
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let out = r.path("out", r.need(h.out.as_deref(), "[chain] out")?)?;
    let from = h.from.map(|s| chain_path(&r, "from", &Value::String(s))).transpose()?;
    Ok((name, out, from))
}

/// What every stage loader needs: the chain file, the variables, and the chain's directory.
pub(super) struct Ctx<'a> {
    pub file: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub out: &'a Path,
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

    fn sft(&self, table: Layers, input: Option<&StageInput>) -> Result<SftStage> {
        let here = wired_origin(&table, self.file);
        self.refuse(&table, "output_dir", "the chain writes this stage to <out>/sft")?;
        if input.is_some() {
            self.refuse(&table, "model_name_or_path", "wired from the chain's `from`")?;
        }
        let sets_tokenizer = table.get("tokenizer_path").is_some();
        let (mut layers, _) = self.layers::<RawSftExperiment>(StageKind::Sft, table, &|_| false)?;
        let dir = self.out.join("sft");
        layers.set("output_dir", Value::String(dir.to_string_lossy().into()), here.clone());
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

    fn rl(&self, table: Layers, input: Option<&StageInput>) -> Result<RlStage> {
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
        Ok(RlStage { exp, vq, vq_dtype, device, dtype, dir, input: input.cloned(), planned, fingerprint })
    }

    fn eval(&self, table: Layers, input: Option<&StageInput>, index: usize) -> Result<EvalStage> {
        if input.is_some() {
            self.refuse(&table, "model", "wired from the chain's last training stage")?;
        }
        let sets_tokenizer = table.get("tokenizer").is_some();
        let (layers, _) = self.layers::<toml::Table>(StageKind::Eval, table, &|_| false)?;
        let mut values = super::stages::expand_eval(&layers, self.env)?;
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

impl Chain {
    /// Loads and validates a chain file, reading `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_env(path, &|k| std::env::var(k).ok())
    }

    /// As [`Chain::load`], reading variables through `env`.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        Self::load_inner(path, env, &mut Vec::new())
    }

    /// Only the `[chain]` header: the chain's name and directory (what `earl experiment compare` needs; the
    /// stages' variables need not be set).
    pub fn header(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, PathBuf)> {
        let text = std::fs::read_to_string(path).map_err(|e| super::io_err(path, e))?;
        check_tables(path, &text)?;
        let raw: RawChainFile = toml::from_str(&text).map_err(|e| err(path, e.message().trim()))?;
        let header = Layers::from_table(path, &text, raw.chain.unwrap_or_default());
        let (name, out, _) = read_header(path, &header, env)?;
        Ok((name, out))
    }

    fn load_inner(path: &Path, env: &dyn Fn(&str) -> Option<String>, stack: &mut Vec<PathBuf>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| super::io_err(path, e))?;
        let canonical = path.canonicalize().map_err(|e| super::io_err(path, e))?;
        if stack.contains(&canonical) {
            return Err(err(path, "`from` forms a cycle"));
        }
        check_tables(path, &text)?;
        let raw: RawChainFile = toml::from_str(&text).map_err(|e| err(path, e.message().trim()))?;
        let header = Layers::from_table(path, &text, raw.chain.unwrap_or_default());
        let (name, out, from) = read_header(path, &header, env)?;
        let from = match from {
            Some(up) => {
                let r = Resolver::new(&header, env);
                stack.push(canonical);
                let upstream = Chain::load_inner(&up, env, stack)?;
                stack.pop();
                Some(upstream.as_upstream().ok_or_else(|| r.err("from", "that chain has no training stage"))?)
            }
            None => None,
        };
        let ctx = Ctx { file: path, env, out: &out };
        let mut input = from.as_ref().map(|u| StageInput {
            stage: format!("{}:{}", u.file.display(), u.stage.as_str()),
            fingerprint: u.fingerprint.clone(),
            planned: u.planned.clone(),
        });
        let table = |t: Table| Layers::from_table(path, &text, t);
        let sft = raw.sft.map(|t| ctx.sft(table(t), input.as_ref())).transpose()?;
        if let Some(s) = &sft {
            input =
                Some(StageInput { stage: "sft".into(), fingerprint: s.fingerprint.hash(), planned: s.planned.clone() });
        }
        let rl = raw.rl.map(|t| ctx.rl(table(t), input.as_ref())).transpose()?;
        if let Some(s) = &rl {
            input =
                Some(StageInput { stage: "rl".into(), fingerprint: s.fingerprint.hash(), planned: s.planned.clone() });
        }
        let mut evals: Vec<EvalStage> = Vec::new();
        for (i, t) in raw.eval.unwrap_or_default().into_iter().enumerate() {
            let e = ctx.eval(table(t), input.as_ref(), i)?;
            if evals.iter().any(|x| x.benchmark == e.benchmark) {
                return Err(err(path, format!("two [[eval]] tables for benchmark `{}`", e.benchmark)));
            }
            evals.push(e);
        }
        Ok(Chain { name, file: path.to_path_buf(), out, from, sft, rl, evals })
    }

    /// This chain's last training stage, as another chain's `from` sees it.
    fn as_upstream(&self) -> Option<Upstream> {
        let (stage, fp, planned) = match (&self.rl, &self.sft) {
            (Some(rl), _) => (StageKind::Rl, &rl.fingerprint, &rl.planned),
            (None, Some(sft)) => (StageKind::Sft, &sft.fingerprint, &sft.planned),
            (None, None) => return None,
        };
        Some(Upstream {
            file: self.file.clone(),
            out: self.out.clone(),
            stage,
            fingerprint: fp.hash(),
            planned: planned.clone(),
        })
    }

    /// The stages in the order they run: (name in `chain.json`, kind, fingerprint, directory).
    pub fn stages(&self) -> Vec<(String, StageKind, &Fingerprint, &Path)> {
        let mut v: Vec<(String, StageKind, &Fingerprint, &Path)> = Vec::new();
        if let Some(s) = &self.sft {
            v.push(("sft".into(), StageKind::Sft, &s.fingerprint, &s.dir));
        }
        if let Some(s) = &self.rl {
            v.push(("rl".into(), StageKind::Rl, &s.fingerprint, &s.dir));
        }
        for e in &self.evals {
            v.push((format!("eval/{}", e.benchmark), StageKind::Eval, &e.fingerprint, &e.dir));
        }
        v
    }
}

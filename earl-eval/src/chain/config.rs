//! Reading a chain file: the `[chain]` header, the stage tables in their fixed order, each training stage's
//! experiment file with the table's overrides laid over it (the shared experiment layer, so errors name the file,
//! line and key that is wrong), and the wiring of every stage's input model to the previous stage's output. Nothing
//! is run and no path is required to exist: `earl experiment run` and the tests of experiments/paper/ load alike.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use earl_core::experiment::{Layers, Resolver};
use earl_core::train::fingerprint::Fingerprint;
use earl_core::{Error, Result};
use serde::Deserialize;
use toml::{Spanned, Value};

use super::stages::{EvalStage, RlStage, SftStage, StageInput, StageKind, StageOutput};
use super::wiring::{chain_path, Ctx};

/// Serde mirror of the `[chain]` header.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Option<String>,
    out: Option<String>,
    from: Option<String>,
    /// The seed of every stage; a string, so that it can come from a variable (`"${SEED:-0}"`).
    seed: Option<String>,
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

/// The `[chain]` header, validated.
struct Header {
    name: String,
    out: PathBuf,
    from: Option<PathBuf>,
    seed: Option<u64>,
}

/// The header's name (default: the file's stem), `out`, `from` (resolved) and `seed`.
fn read_header(path: &Path, header: &Layers, env: &dyn Fn(&str) -> Option<String>) -> Result<Header> {
    let h: RawHeader = header.deserialize()?;
    let r = Resolver::new(header, env);
    let name = match &h.name {
        Some(n) => r.expand("name", n)?,
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let out = r.path("out", r.need(h.out.as_deref(), "[chain] out")?)?;
    let from = h.from.map(|s| chain_path(&r, "from", &Value::String(s))).transpose()?;
    let seed = match &h.seed {
        Some(s) => {
            let text = r.expand("seed", s)?;
            Some(
                text.trim()
                    .parse::<u64>()
                    .map_err(|_| r.err("seed", format!("not a seed (an integer ≥ 0): {text:?}")))?,
            )
        }
        None => None,
    };
    Ok(Header { name, out, from, seed })
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
        let h = read_header(path, &header, env)?;
        Ok((h.name, h.out))
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
        let Header { name, out, from, seed } = read_header(path, &header, env)?;
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
        let ctx = Ctx { file: path, env, out: &out, seed };
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

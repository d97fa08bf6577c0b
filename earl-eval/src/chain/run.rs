//! Running a chain: each stage in order through a [`StageRunner`] (the `earl` CLI's, which runs them exactly as
//! `earl sft`, `earl rl` and `earl eval run` do; the tests' own), with `chain.json` kept up to date. A rerun skips the
//! stages recorded `done` whose fingerprint is unchanged, resumes the first other one (a stage killed midway resumes
//! from its own checkpoints or finished samples), and refuses — unless forced — a stage whose config changed since
//! it ran, because its output, and everything after it, would no longer be what the chain file says.
use std::path::Path;
use std::time::Instant;

use earl_core::runlock::RunLock;
use earl_core::train::fingerprint::Fingerprint;
use earl_core::train::run::RunSummary;
use earl_core::train::SftExperiment;
use earl_core::{Error, Result};

use super::config::{err, Chain, Upstream};
use super::manifest::{now_unix, ChainManifest, StageRecord, Status};
use super::stages::{EvalStage, RlStage, SftStage, StageInput, StageKind, StageOutput};
use crate::config::RlExperiment;
use crate::run::Summary;

/// A stage's failure as the runner reports it (the CLI's are `anyhow` errors).
pub type StageError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the stages themselves.
pub trait StageRunner {
    /// Runs or resumes `exp` (`stage.exp` with its input model wired) into `stage.dir`.
    fn sft(&mut self, stage: &SftStage, exp: &SftExperiment) -> std::result::Result<RunSummary, StageError>;
    /// Runs or resumes `exp` (`stage.exp` with its input model wired) into `stage.dir`, to its last iteration.
    fn rl(&mut self, stage: &RlStage, exp: RlExperiment) -> std::result::Result<(), StageError>;
    /// Runs or resumes the evaluation `settings` ([`EvalStage::wired`]) into `stage.dir`.
    fn eval(
        &mut self,
        stage: &EvalStage,
        settings: toml::Table,
        force: bool,
    ) -> std::result::Result<Summary, StageError>;
}

/// What happened to a stage in this run (for the caller to print).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Done in an earlier run, unchanged: skipped.
    Skipped(String),
    /// Starting (or resuming).
    Started(String),
    /// Finished in this run, after this many seconds.
    Finished(String, f64),
    /// Changed since it ran; its directory was removed (`--force`).
    Invalidated(String),
}

fn one_line(e: &StageError) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !line.contains(&t) {
            line = format!("{line}: {t}");
        }
        cause = c.source();
    }
    earl_core::error::headline(&line)
}

fn fresh(name: &str, kind: StageKind, fp: &Fingerprint, dir: &Path) -> StageRecord {
    StageRecord {
        name: name.into(),
        kind,
        fingerprint: fp.hash(),
        config: fp.to_json(),
        status: Status::Pending,
        dir: dir.to_path_buf(),
        output: None,
        summary: None,
        vie_all: None,
        started_unix: None,
        finished_unix: None,
        seconds: 0.0,
        attempts: 0,
        error: None,
    }
}

/// The manifest for this run: records of unchanged stages carried over, changed ones refused or (forced) reset.
fn reconcile(
    chain: &Chain,
    old: Option<ChainManifest>,
    force: bool,
    on: &mut dyn FnMut(Event),
) -> Result<ChainManifest> {
    let mut m = ChainManifest { chain: chain.name.clone(), file: chain.file.clone(), stages: Vec::new() };
    for (name, kind, fp, dir) in chain.stages() {
        let rec = old.as_ref().and_then(|o| o.stage(&name));
        match rec {
            Some(r) if r.fingerprint == fp.hash() => m.stages.push(r.clone()),
            Some(r) if r.status != Status::Pending && !force => {
                let changes = fp.changes_from(&r.config);
                let shown: Vec<&str> = changes.iter().take(3).map(String::as_str).collect();
                let more = if changes.len() > 3 { format!(" and {} more", changes.len() - 3) } else { String::new() };
                let msg = format!(
                    "stage {name} changed since it ran in {} ({}{more}); rerun with --force to redo it and the stages after it",
                    chain.out.display(),
                    shown.join(", ")
                );
                return Err(err(&chain.file, msg));
            }
            Some(r) => {
                if r.status != Status::Pending && dir.exists() {
                    earl_core::fsio::remove_dir_atomic(dir, "chain-invalidate")?;
                    on(Event::Invalidated(name.clone()));
                }
                m.stages.push(fresh(&name, kind, fp, dir));
            }
            None => m.stages.push(fresh(&name, kind, fp, dir)),
        }
    }
    Ok(m)
}

/// The output of another chain's training stage (`[chain] from`), which must be done under the same config.
fn upstream_output(chain: &Chain, u: &Upstream) -> Result<StageOutput> {
    let m = ChainManifest::read(&u.out)?;
    let rec = m.as_ref().and_then(|m| m.stage(u.stage.as_str()));
    let run_first = format!("run `earl experiment run {}` first", u.file.display());
    match rec {
        Some(r) if r.status == Status::Done && r.fingerprint == u.fingerprint => r.output.clone().ok_or_else(|| {
            err(&chain.file, format!("from: {} records no output for stage {}", u.out.display(), u.stage.as_str()))
        }),
        Some(r) if r.status == Status::Done => Err(err(
            &chain.file,
            format!("from: stage {} of {} changed since it ran; {run_first}", u.stage.as_str(), u.file.display()),
        )),
        _ => Err(err(
            &chain.file,
            format!("from: stage {} of {} is not finished; {run_first}", u.stage.as_str(), u.file.display()),
        )),
    }
}

/// The model a stage starts from, as recorded by the stage (or chain) that produced it.
fn input_output(chain: &Chain, m: &ChainManifest, input: Option<&StageInput>) -> Result<Option<StageOutput>> {
    let Some(i) = input else { return Ok(None) };
    if let Some(rec) = m.stage(&i.stage) {
        return rec
            .output
            .clone()
            .map(Some)
            .ok_or_else(|| err(&chain.file, format!("stage {} has no output", i.stage)));
    }
    match &chain.from {
        Some(u) => upstream_output(chain, u).map(Some),
        None => Err(err(&chain.file, format!("stage {} is not part of the chain", i.stage))),
    }
}

/// Whether a `done` record's output is still there (else the stage is run again; its own resume makes it quick).
fn output_present(rec: &StageRecord) -> bool {
    match (&rec.output, &rec.summary) {
        (Some(o), _) => o.model.join("config.json").exists(),
        (None, Some(s)) => s.exists(),
        (None, None) => false,
    }
}

/// Runs one stage; returns its record's new fields.
fn run_stage(
    chain: &Chain,
    name: &str,
    input: Option<StageOutput>,
    runner: &mut dyn StageRunner,
    force: bool,
    rec: &mut StageRecord,
) -> std::result::Result<(), StageError> {
    if name == "sft" {
        let stage = chain.sft.as_ref().ok_or("no sft stage")?;
        let mut exp = stage.exp.clone();
        if let Some(i) = input {
            exp.model = i.model;
        }
        let s = runner.sft(stage, &exp)?;
        if s.final_step < s.total_steps {
            return Err(format!("stopped at step {} of {}", s.final_step, s.total_steps).into());
        }
        let model = stage.dir.join(format!("checkpoint-{}", s.final_step));
        if !model.join("trainer_state.json").exists() {
            return Err(format!("finished without its final checkpoint {}", model.display()).into());
        }
        rec.output = Some(StageOutput { model, tokenizer: exp.tokenizer.clone() });
    } else if name == "rl" {
        let stage = chain.rl.as_ref().ok_or("no rl stage")?;
        let mut exp = stage.exp.clone();
        if let Some(i) = input {
            exp.rl.model_path = i.model.to_string_lossy().into_owned();
        }
        runner.rl(stage, exp)?;
        if !stage.planned.model.join("model.safetensors").exists() {
            return Err(format!("finished without its final checkpoint {}", stage.planned.model.display()).into());
        }
        rec.output = Some(stage.planned.clone());
    } else {
        let stage = chain.evals.iter().find(|e| format!("eval/{}", e.benchmark) == name).ok_or("no such eval")?;
        let summary = runner.eval(stage, stage.wired(input.as_ref()), force)?;
        rec.summary = Some(stage.dir.join("summary.json"));
        rec.vie_all = summary.metrics.get("vie_all").map(|m| m.mean);
    }
    Ok(())
}

/// Runs (or resumes) `chain` through `runner`; `on` sees each stage's fate. With `force`, a stage whose config
/// changed since it ran is redone from scratch (its directory removed), as are the stages after it. With `until`,
/// the run stops after that stage (`sft`, `rl` or `eval/<benchmark>`): a chain that starts from this one's model
/// can begin while this one's evaluations still run.
pub fn run_chain(
    chain: &Chain,
    runner: &mut dyn StageRunner,
    force: bool,
    until: Option<&str>,
    on: &mut dyn FnMut(Event),
) -> Result<ChainManifest> {
    let names: Vec<String> = chain.stages().into_iter().map(|(n, ..)| n).collect();
    if let Some(u) = until.filter(|u| !names.iter().any(|n| n == u)) {
        return Err(err(
            &chain.file,
            format!("--until {u}: the chain has no such stage (stages: {})", names.join(", ")),
        ));
    }
    std::fs::create_dir_all(&chain.out).map_err(|e| super::io_err(&chain.out, e))?;
    let _lock = RunLock::acquire(&chain.out)?;
    let mut m = reconcile(chain, ChainManifest::read(&chain.out)?, force, on)?;
    m.write(&chain.out)?;
    let inputs: Vec<Option<StageInput>> = chain_inputs(chain);
    for (i, (name, ..)) in chain.stages().into_iter().enumerate() {
        let rec = m.stages[i].clone();
        if rec.status == Status::Done && output_present(&rec) {
            on(Event::Skipped(name.clone()));
            if until == Some(name.as_str()) {
                break;
            }
            continue;
        }
        let input = input_output(chain, &m, inputs[i].as_ref())?;
        let mut rec = StageRecord { status: Status::Running, started_unix: Some(now_unix()), error: None, ..rec };
        rec.attempts += 1;
        m.stages[i] = rec.clone();
        m.write(&chain.out)?;
        on(Event::Started(name.clone()));
        let t0 = Instant::now();
        let result = run_stage(chain, &name, input, runner, force, &mut rec);
        rec.seconds += t0.elapsed().as_secs_f64();
        rec.finished_unix = Some(now_unix());
        rec.status = if result.is_ok() { Status::Done } else { Status::Failed };
        rec.error = result.as_ref().err().map(one_line);
        m.stages[i] = rec.clone();
        m.write(&chain.out)?;
        if let Some(e) = rec.error {
            return Err(Error::Input(format!("chain {}: stage {name}: {e}", chain.name)));
        }
        on(Event::Finished(name.clone(), rec.seconds));
        if until == Some(name.as_str()) {
            break;
        }
    }
    Ok(m)
}

/// Each stage's input, in [`Chain::stages`] order.
fn chain_inputs(chain: &Chain) -> Vec<Option<StageInput>> {
    let mut v = Vec::new();
    if let Some(s) = &chain.sft {
        v.push(s.input.clone());
    }
    if let Some(s) = &chain.rl {
        v.push(s.input.clone());
    }
    v.extend(chain.evals.iter().map(|e| e.input.clone()));
    v
}

//! Chains on the repository's tiny experiments with a recording runner (no model is trained here; the CLI tests run
//! a real sft → rl chain on the fixtures): located errors, the wiring of outputs to inputs, resuming, refusing a
//! changed stage, `from`, the table, and every chain of experiments/paper/.
use std::path::{Path, PathBuf};

use earl_core::train::run::RunSummary;
use earl_core::train::SftExperiment;

use super::*;
use crate::config::RlExperiment;
use crate::run::{MeanStd, Summary};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env(k: &str) -> Option<String> {
    match k {
        "EARL_FIXTURES" => Some(repo().join("fixtures").to_string_lossy().into_owned()),
        "EARL_RUNS" | "APP__BASE_EXP_DIR" => Some("/unused-runs".into()),
        _ => None,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A chain of the tiny SFT and RL experiments and two evaluations, writing into `dir/out`.
fn tiny_chain(dir: &Path, extra_rl: &str) -> PathBuf {
    let exp = repo().join("experiments");
    let text = format!(
        "[chain]\nname = \"tiny\"\nout = \"{out}\"\n\n[sft]\nconfig = \"{sft}\"\nmax_steps = 3\n\n\
         [rl]\nconfig = \"{rl}\"\nnum_iterations = 2\nsave_checkpoints_every_n_iterations = 1\n{extra_rl}\n\
         [[eval]]\nbenchmark = \"aurora\"\ndata = \"./aurora\"\n\n[[eval]]\nbenchmark = \"omniedit\"\n",
        out = dir.join("out").display(),
        sft = exp.join("sft/tiny.toml").display(),
        rl = exp.join("rl/tiny.toml").display(),
    );
    write(dir, "chain.toml", &text)
}

fn load(p: &Path) -> earl_core::Result<Chain> {
    Chain::load_with_env(p, &env)
}

fn load_err(dir: &Path, text: &str) -> String {
    load(&write(dir, "bad.toml", text)).unwrap_err().to_string()
}

/// Records what each stage was given and writes the outputs a real stage would.
#[derive(Default)]
struct Recorder {
    calls: Vec<String>,
    models: Vec<String>,
    fail_rl: bool,
}

impl StageRunner for Recorder {
    fn sft(&mut self, stage: &SftStage, exp: &SftExperiment) -> Result<RunSummary, StageError> {
        self.calls.push("sft".into());
        self.models.push(exp.model.display().to_string());
        let ck = stage.dir.join(format!("checkpoint-{}", exp.max_steps));
        std::fs::create_dir_all(&ck)?;
        std::fs::write(ck.join("config.json"), "{}")?;
        std::fs::write(ck.join("trainer_state.json"), "{}")?;
        Ok(RunSummary { start_step: 0, final_step: exp.max_steps, total_steps: exp.max_steps, losses: vec![] })
    }

    fn rl(&mut self, stage: &RlStage, exp: RlExperiment) -> Result<(), StageError> {
        self.calls.push("rl".into());
        self.models.push(exp.rl.model_path.clone());
        if self.fail_rl {
            return Err("killed".into());
        }
        std::fs::create_dir_all(&stage.planned.model)?;
        std::fs::write(stage.planned.model.join("config.json"), "{}")?;
        std::fs::write(stage.planned.model.join("model.safetensors"), "")?;
        Ok(())
    }

    fn eval(&mut self, stage: &EvalStage, settings: toml::Table, _force: bool) -> Result<Summary, StageError> {
        self.calls.push(format!("eval/{}", stage.benchmark));
        self.models.push(settings["model"].as_str().unwrap_or_default().to_string());
        let mut s = Summary { benchmark: stage.benchmark.clone(), n: 2, ..Default::default() };
        let mean = if stage.benchmark == "aurora" { 4.0 } else { 5.5 };
        s.metrics.insert("vie_all".into(), MeanStd { mean, std: 0.0, count: 2 });
        std::fs::create_dir_all(&stage.dir)?;
        std::fs::write(stage.dir.join("summary.json"), serde_json::to_string(&s)?)?;
        Ok(s)
    }
}

fn run(chain: &Chain, r: &mut Recorder, force: bool) -> earl_core::Result<(ChainManifest, Vec<Event>)> {
    let mut events = Vec::new();
    let m = run_chain(chain, r, force, None, &mut |e| events.push(e))?;
    Ok((m, events))
}

#[test]
fn bad_chains_are_located_one_line_errors() {
    let d = tempfile::tempdir().unwrap();
    let sft = repo().join("experiments/sft/tiny.toml");
    let head = "[chain]\nout = \"o\"\n";
    let e = load_err(d.path(), &format!("{head}[dpo]\nx = 1\n"));
    assert!(e.contains("unknown stage `dpo`"), "{e}");
    let e = load_err(
        d.path(),
        &format!("{head}[[eval]]\nbenchmark = \"a\"\nmodel = \"m\"\n[sft]\nconfig = \"{}\"\n", sft.display()),
    );
    assert!(e.contains("stage `eval` comes after `sft`: stages run in the order sft → rl → eval"), "{e}");
    let e = load_err(d.path(), &format!("{head}[sft]\nmax_steps = 3\n"));
    assert!(e.contains("bad.toml: invalid config: [sft] needs `config`"), "{e}");
    let e = load_err(d.path(), &format!("{head}[sft]\nconfig = \"nope.toml\"\n"));
    assert!(e.contains("nope.toml"), "{e}");
    let e = load_err(d.path(), &format!("[sft]\nconfig = \"{}\"\n", sft.display()));
    assert!(e.contains("missing required field `[chain] out`"), "{e}");
    // An override is checked as the experiment's own keys are, and located in the chain file.
    let e = load_err(d.path(), &format!("{head}[sft]\nconfig = \"{}\"\nlearnin_rate = 1.0\n", sft.display()));
    assert!(e.contains("bad.toml: invalid config: line 5, column 16: unknown field `learnin_rate`"), "{e}");
    let e = load_err(d.path(), &format!("{head}[sft]\nconfig = \"{}\"\noutput_dir = \"x\"\n", sft.display()));
    assert!(e.contains("line 5: output_dir: the chain writes this stage to <out>/sft"), "{e}");
    let e = load_err(
        d.path(),
        &format!("{head}[sft]\nconfig = \"{}\"\n[[eval]]\nbenchmark = \"a\"\nmodel = \"m\"\n", sft.display()),
    );
    assert!(e.contains("line 7: model: wired from the chain's last training stage"), "{e}");
    let e = load_err(d.path(), &format!("{head}[[eval]]\ndata = \"d\"\n"));
    assert!(e.contains("[[eval]] number 1: `benchmark` is required"), "{e}");
    let e = load_err(d.path(), &format!("{head}[[eval]]\nbenchmark = \"a\"\n"));
    assert!(e.contains("`model` is required (no training stage"), "{e}");
    let e = load_err(
        d.path(),
        &format!("{head}[[eval]]\nbenchmark = \"a\"\nmodel = \"m\"\n[[eval]]\nbenchmark = \"a\"\nmodel = \"m\"\n"),
    );
    assert!(e.contains("two [[eval]] tables for benchmark `a`"), "{e}");
    let e = load_err(d.path(), &format!("{head}[eval]\nbenchmark = \"a\"\n"));
    assert!(e.contains("`eval` must be one [[eval]] table per evaluation"), "{e}");
    let rl = repo().join("experiments/rl/tiny.toml");
    let e = load_err(
        d.path(),
        &format!("{head}[rl]\nconfig = \"{}\"\nsave_checkpoints_every_n_iterations = 0\n", rl.display()),
    );
    assert!(e.contains("the chain needs the final checkpoint"), "{e}");
    let e = load_err(d.path(), &format!("{head}[rl]\nconfig = \"{}\"\nengine = \"fast\"\n", rl.display()));
    assert!(e.contains("engine") && e.contains("write eager, graph or auto"), "{e}");
    write(d.path(), "a.toml", "[chain]\nout = \"a\"\nfrom = \"b.toml\"\n[[eval]]\nbenchmark = \"x\"\n");
    write(d.path(), "b.toml", "[chain]\nout = \"b\"\nfrom = \"a.toml\"\n[[eval]]\nbenchmark = \"x\"\n");
    let e = load(&d.path().join("a.toml")).unwrap_err().to_string();
    assert!(e.contains("`from` forms a cycle"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn outputs_are_wired_from_stage_to_stage() {
    let d = tempfile::tempdir().unwrap();
    let chain = load(&tiny_chain(d.path(), "")).unwrap();
    let out = d.path().join("out");
    let (sft, rl) = (chain.sft.as_ref().unwrap(), chain.rl.as_ref().unwrap());
    assert_eq!((sft.exp.output_dir.clone(), sft.exp.max_steps), (out.join("sft"), 3));
    assert_eq!(rl.input.as_ref().unwrap().stage, "sft");
    assert_eq!(rl.exp.rl.model_path, out.join("sft").display().to_string());
    // The SFT experiment's tokenizer (its model directory) goes along: checkpoints hold none.
    assert_eq!(rl.exp.rl.tokenizer_path, sft.exp.tokenizer.display().to_string());
    assert_eq!(rl.planned.model, out.join("rl/checkpoints/checkpoint-2"));
    let names: Vec<String> = chain.stages().into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["sft", "rl", "eval/aurora", "eval/omniedit"]);
    let aurora = &chain.evals[0];
    assert_eq!(aurora.values["model"].as_str().unwrap(), rl.planned.model.display().to_string());
    assert_eq!(aurora.values["data"].as_str().unwrap(), d.path().join("./aurora").display().to_string());
    assert_eq!(aurora.dir, out.join("eval/aurora"));

    let mut r = Recorder::default();
    let (m, _) = run(&chain, &mut r, false).unwrap();
    assert_eq!(r.calls, ["sft", "rl", "eval/aurora", "eval/omniedit"]);
    let sft_final = out.join("sft/checkpoint-3").display().to_string();
    let rl_final = out.join("rl/checkpoints/checkpoint-2").display().to_string();
    assert_eq!(r.models[1..], [sft_final.clone(), rl_final.clone(), rl_final]);
    assert!(m.stages.iter().all(|s| s.status == Status::Done && s.attempts == 1), "{m:?}");
    assert_eq!(m.stage("sft").unwrap().output.as_ref().unwrap().model.display().to_string(), sft_final);
    assert_eq!(m.stage("eval/aurora").unwrap().vie_all, Some(4.0));
    assert_eq!(ChainManifest::read(&out).unwrap().unwrap(), m);
}

#[test]
fn a_rerun_resumes_at_the_first_unfinished_stage() {
    let d = tempfile::tempdir().unwrap();
    let chain = load(&tiny_chain(d.path(), "")).unwrap();
    let mut r = Recorder { fail_rl: true, ..Default::default() };
    let e = run(&chain, &mut r, false).unwrap_err().to_string();
    assert!(e.contains("chain tiny: stage rl: killed"), "{e}");
    let m = ChainManifest::read(&chain.out).unwrap().unwrap();
    let status: Vec<Status> = m.stages.iter().map(|s| s.status).collect();
    assert_eq!(status, [Status::Done, Status::Failed, Status::Pending, Status::Pending]);
    assert_eq!(m.stage("rl").unwrap().error.as_deref(), Some("killed"));
    let mut r = Recorder::default();
    let (m, events) = run(&chain, &mut r, false).unwrap();
    assert_eq!(r.calls, ["rl", "eval/aurora", "eval/omniedit"]);
    assert_eq!(events[0], Event::Skipped("sft".into()));
    assert_eq!(m.stage("rl").unwrap().attempts, 2);
    // Everything done: nothing runs.
    let mut r = Recorder::default();
    let (_, events) = run(&chain, &mut r, false).unwrap();
    assert!(r.calls.is_empty() && events.iter().all(|e| matches!(e, Event::Skipped(_))), "{events:?}");
}

#[test]
fn until_stops_after_the_named_stage_and_a_rerun_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let chain = load(&tiny_chain(d.path(), "")).unwrap();
    let mut r = Recorder::default();
    let e = run_chain(&chain, &mut r, false, Some("eval/nope"), &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("--until eval/nope") && e.contains("sft, rl, eval/aurora"), "{e}");
    assert!(r.calls.is_empty());
    run_chain(&chain, &mut r, false, Some("rl"), &mut |_| {}).unwrap();
    assert_eq!(r.calls, ["sft", "rl"]);
    let m = ChainManifest::read(&chain.out).unwrap().unwrap();
    let status: Vec<Status> = m.stages.iter().map(|s| s.status).collect();
    assert_eq!(status, [Status::Done, Status::Done, Status::Pending, Status::Pending]);
    // Stopping at a stage already done runs nothing; without --until the rest runs.
    let mut r = Recorder::default();
    run_chain(&chain, &mut r, false, Some("sft"), &mut |_| {}).unwrap();
    assert!(r.calls.is_empty(), "{:?}", r.calls);
    let (_, _) = run(&chain, &mut r, false).unwrap();
    assert_eq!(r.calls, ["eval/aurora", "eval/omniedit"]);
}

#[test]
fn a_changed_stage_is_refused_unless_forced() {
    let d = tempfile::tempdir().unwrap();
    let chain = load(&tiny_chain(d.path(), "")).unwrap();
    run(&chain, &mut Recorder::default(), false).unwrap();
    let changed = load(&tiny_chain(d.path(), "learning_rate = 0.5\n")).unwrap();
    let e = run(&changed, &mut Recorder::default(), false).unwrap_err().to_string();
    assert!(e.contains("stage rl changed since it ran in") && e.contains("optim.learning_rate: 0.01 → 0.5"), "{e}");
    assert!(e.contains("rerun with --force") && e.lines().count() == 1, "{e}");
    let mut r = Recorder::default();
    let (m, events) = run(&changed, &mut r, true).unwrap();
    // The SFT stage is unchanged; the RL stage and the evaluations after it are redone.
    assert_eq!(r.calls, ["rl", "eval/aurora", "eval/omniedit"]);
    assert!(events.contains(&Event::Invalidated("rl".into())), "{events:?}");
    assert_eq!(m.stage("rl").unwrap().attempts, 1);
    // A change upstream changes every later fingerprint.
    let fp = |c: &Chain, i: usize| c.stages()[i].2.hash();
    assert_eq!(fp(&chain, 0), fp(&changed, 0));
    assert_ne!(fp(&chain, 2), fp(&changed, 2));
}

#[test]
fn a_chain_can_start_from_another_chains_model() {
    let d = tempfile::tempdir().unwrap();
    let up = tiny_chain(d.path(), "");
    let down = write(
        d.path(),
        "down.toml",
        &format!(
            "[chain]\nout = \"{}\"\nfrom = \"chain.toml\"\n[[eval]]\nbenchmark = \"vismin\"\n",
            d.path().join("down").display()
        ),
    );
    let chain = load(&down).unwrap();
    let e = run(&chain, &mut Recorder::default(), false).unwrap_err().to_string();
    assert!(e.contains("from: stage rl of") && e.contains("is not finished; run `earl experiment run"), "{e}");
    run(&load(&up).unwrap(), &mut Recorder::default(), false).unwrap();
    let mut r = Recorder::default();
    run(&chain, &mut r, false).unwrap();
    assert_eq!(r.models, [d.path().join("out/rl/checkpoints/checkpoint-2").display().to_string()]);
}

#[test]
fn the_table_has_the_papers_columns_and_the_unweighted_average() {
    let row = |name: &str, s: &[(&str, f64)]| ChainRow {
        name: name.into(),
        scores: s.iter().map(|(b, v)| (b.to_string(), *v)).collect(),
        spread: None,
        train_seconds: 0.0,
        eval_seconds: 0.0,
    };
    let t = format_table(
        &[row("a", &[("aurora", 4.0), ("omniedit", 6.0), ("custom", 2.5)]), row("b", &[("omniedit", 5.126)])],
        false,
    );
    // (6 + 4 + 2.5) / 3 = 4.1666…; row b misses two columns, so no average.
    let want = "| chain | OmniEdit | AURORA | custom | Avg (unweighted) |\n|---|---:|---:|---:|---:|\n\
                | a | 6.00 | 4.00 | 2.50 | 4.17 |\n| b | 5.13 | | | |\n";
    assert_eq!(t, want);
    let d = tempfile::tempdir().unwrap();
    let file = tiny_chain(d.path(), "");
    run(&load(&file).unwrap(), &mut Recorder::default(), false).unwrap();
    let r = chain_row(&file, &env).unwrap();
    let m = ChainManifest::read(&d.path().join("out")).unwrap().unwrap();
    let secs = |eval: bool| m.stages.iter().filter(|s| (s.kind == StageKind::Eval) == eval).map(|s| s.seconds).sum();
    let want = ChainRow {
        train_seconds: secs(false),
        eval_seconds: secs(true),
        ..row("tiny", &[("aurora", 4.0), ("omniedit", 5.5)])
    };
    assert_eq!(r, want);
    assert_eq!(chain_row(&d.path().join("out"), &env).unwrap(), r);
    let e = chain_row(
        &write(d.path(), "never.toml", "[chain]\nout = \"/nowhere\"\n[[eval]]\nbenchmark = \"a\"\nmodel = \"m\"\n"),
        &env,
    );
    assert!(e.unwrap_err().to_string().contains("the chain has not run"));
}

/// The variables a user of experiments/paper/ sets.
fn paper_env(k: &str) -> Option<String> {
    let v = match k {
        "EARL_BASE" => "/models/Emu3-Stage1",
        "EARL_DATA" => "/data",
        "EARL_RUNS" => "/runs",
        "EARL_VQ" => "/models/Emu3-VisionTokenizer",
        "EARL_JUDGE_KEY_FILE" => "/secrets/openai.key",
        "APP__DATA_DIR" => "/data",
        "APP__REWARD_FUNCTION_API_BASE" => "http://verifier:4877/v1",
        _ => return None,
    };
    Some(v.into())
}

fn paper_chains() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("experiments/paper"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_paper_chain_loads_and_is_wired() {
    let chains = paper_chains();
    assert_eq!(chains.len(), 14, "4 SFT chains and 10 RL chains");
    let benchmarks: Vec<&str> = table::PAPER_BENCHMARKS.iter().map(|b| b.0).collect();
    for p in chains {
        let c = Chain::load_with_env(&p, &paper_env).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!((c.name.as_str(), c.out.clone()), (name.as_str(), PathBuf::from("/runs/paper").join(&name)));
        let got: Vec<&str> = c.evals.iter().map(|e| e.benchmark.as_str()).collect();
        assert_eq!(got, benchmarks, "{name}");
        let last = c.rl.as_ref().map(|r| &r.planned).or(c.sft.as_ref().map(|s| &s.planned)).unwrap();
        for e in &c.evals {
            assert_eq!(e.values["model"].as_str().unwrap(), last.model.display().to_string(), "{name}");
            assert_eq!(e.values["vq"].as_str(), Some("/models/Emu3-VisionTokenizer"));
            assert!(e.values["data"].as_str().unwrap().starts_with("/data/bench/"), "{name}");
        }
        match name.split_once("__rl_") {
            Some((sft, data)) => {
                // An RL chain starts from the final model of the SFT chain of the same name.
                let rl = c.rl.as_ref().unwrap_or_else(|| panic!("{name}: no rl stage"));
                let up = c.from.as_ref().unwrap();
                assert_eq!(up.out, PathBuf::from("/runs/paper").join(sft), "{name}");
                assert_eq!(rl.exp.rl.model_path, up.planned.model.display().to_string(), "{name}");
                assert_eq!(rl.exp.rl.tokenizer_path, "/models/Emu3-Stage1", "{name}");
                assert_eq!(rl.exp.rl.base_exp_dir.join(&rl.exp.rl.run_name), c.out.join("rl"));
                assert_eq!(rl.vq.as_deref(), Some(Path::new("/models/Emu3-VisionTokenizer")));
                let n = rl.exp.rl.data.train_paths.len();
                assert_eq!(n, [("s", 1), ("c", 6), ("sc", 7)].iter().find(|x| x.0 == data).unwrap().1, "{name}");
                assert!(c.sft.is_none());
            }
            None => {
                let sft = c.sft.as_ref().unwrap();
                assert_eq!(sft.exp.output_dir, c.out.join("sft"));
                assert_eq!(sft.exp.tokenizer, PathBuf::from("/models/Emu3-Stage1"), "{name}");
                let think = !sft.exp.cot_keys.is_empty();
                assert_eq!(think, name == "sft_think_s", "{name}");
                // The two-stage SFT continues from SFT (S)'s final checkpoint.
                let from = c.from.as_ref().map(|u| u.out.clone());
                assert_eq!(from, (name == "sft_sc2stage").then(|| PathBuf::from("/runs/paper/sft_s")), "{name}");
                if let Some(u) = &c.from {
                    assert_eq!(sft.exp.model, u.planned.model, "{name}");
                }
            }
        }
    }
}

/// Every paper evaluation is a valid evaluation config, judge settings included.
#[test]
fn every_paper_evaluation_validates() {
    for p in paper_chains() {
        let c = Chain::load_with_env(&p, &paper_env).unwrap();
        for e in &c.evals {
            e.config(e.values.clone(), p.parent().unwrap(), &p).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
        }
    }
}

#[test]
fn rows_over_seeds_show_mean_and_sample_spread_in_the_mini_column_order() {
    let row = |s: &[(&str, f64)]| ChainRow {
        name: "sft_s".into(),
        scores: s.iter().map(|(b, v)| (b.to_string(), *v)).collect(),
        spread: None,
        train_seconds: 120.0,
        eval_seconds: 30.0,
    };
    let seeds = [
        row(&[("mini-ood-test", 1.0), ("mini-s-test", 6.0), ("mini-c-test", 2.0)]),
        ChainRow { train_seconds: 240.0, ..row(&[("mini-ood-test", 3.0), ("mini-s-test", 8.0), ("mini-c-test", 2.0)]) },
    ];
    let r = over_seeds(&seeds);
    let s = r.spread.as_ref().unwrap();
    // s-test: mean 7, sample std sqrt(((6-7)^2 + (8-7)^2) / 1) = 1.414…; averages 3 and 4.333…: std 0.943.
    assert_eq!((r.scores["mini-s-test"], s.seeds), (7.0, 2));
    assert!((s.scores["mini-s-test"] - 2f64.sqrt()).abs() < 1e-12);
    let t = format_table(std::slice::from_ref(&r), false);
    let want = "| chain | s-test | c-test | ood | Avg (unweighted) |\n|---|---:|---:|---:|---:|\n\
                | sft_s (2 seeds) | 7.00 ± 1.41 | 2.00 ± 0.00 | 2.00 ± 1.41 | 3.67 ± 0.94 |\n";
    assert_eq!(t, want);
    // With times: the mean training minutes (2 and 4 → 3.0) and evaluation minutes.
    let t = format_table(&[r], true);
    let want = "| chain | s-test | c-test | ood | Avg (unweighted) | train min | eval min |\n\
                |---|---:|---:|---:|---:|---:|---:|\n\
                | sft_s (2 seeds) | 7.00 ± 1.41 | 2.00 ± 0.00 | 2.00 ± 1.41 | 3.67 ± 0.94 | 3.0 | 0.5 |\n";
    assert_eq!(t, want);
    // A benchmark one seed lacks is left out, and the averages are over the others.
    let r = over_seeds(&[seeds[0].clone(), row(&[("mini-s-test", 8.0), ("mini-c-test", 4.0)])]);
    assert_eq!(r.scores.keys().collect::<Vec<_>>(), ["mini-c-test", "mini-s-test"]);
    assert_eq!(r.spread.unwrap().average, Some(2f64.sqrt()));
}

#[test]
fn a_chain_seed_from_a_variable_seeds_every_stage_and_enters_their_fingerprints() {
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(tiny_chain(d.path(), "")).unwrap();
    let text = base.replace("[chain]\n", "[chain]\nseed = \"${SEED:-3}\"\n");
    let file = write(d.path(), "seeded.toml", &text);
    let with = |seed: Option<&'static str>| {
        let e = move |k: &str| if k == "SEED" { seed.map(String::from) } else { env(k) };
        Chain::load_with_env(&file, &e).unwrap()
    };
    let (three, nine) = (with(None), with(Some("9")));
    assert_eq!(three.sft.as_ref().unwrap().exp.seed, 3);
    assert_eq!(nine.sft.as_ref().unwrap().exp.seed, 9);
    assert_eq!(nine.rl.as_ref().unwrap().exp.rl.random_seed, 9);
    assert!(nine.evals.iter().all(|e| e.values["seed"].as_integer() == Some(9)));
    for ((_, _, a, _), (_, _, b, _)) in three.stages().into_iter().zip(nine.stages()) {
        assert_ne!(a.hash(), b.hash(), "another seed is another run");
    }
    let e = Chain::load_with_env(&file, &|k| if k == "SEED" { Some("x1".into()) } else { env(k) });
    assert!(e.unwrap_err().to_string().contains("not a seed"));
}

#[test]
fn every_mini_chain_loads_and_is_seeded_by_its_variable() {
    let dir = repo().join("experiments/mini");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let e = |k: &str| match k {
            "EARL_MINI" => Some("/world".to_string()),
            "EARL_RUNS" => Some("/runs".to_string()),
            "EARL_MINI_SEED" => Some("2".to_string()),
            _ => None,
        };
        let c = Chain::load_with_env(&p, &e).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
        assert!(c.out.starts_with("/runs/mini/seed-2"), "{}", c.out.display());
        if let Some(s) = &c.sft {
            assert_eq!(s.exp.seed, 2);
        }
        if let Some(r) = &c.rl {
            assert_eq!(r.exp.rl.random_seed, 2);
        }
        assert_eq!(c.evals.len(), 3, "{}", p.display());
        n += 1;
    }
    assert_eq!(n, 7, "six chains and the smoke chain");
}

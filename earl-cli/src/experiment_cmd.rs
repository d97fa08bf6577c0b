//! `earl experiment run FILE.toml` runs a chain of stages (SFT → RL → eval; earl-eval `chain`), each exactly as
//! `earl sft`, `earl rl` and `earl eval run` would, and `earl experiment compare FILE…` prints the paper's table
//! over chains. Rerunning a chain resumes at its first unfinished stage; `chain.json` in the chain's directory says
//! where every stage stands.
use std::path::PathBuf;

use anyhow::Result;
use earl_core::train::run::RunSummary;
use earl_core::train::SftExperiment;
use earl_eval::chain::{self, Chain, EvalStage, Event, RlStage, SftStage, StageError, StageRunner};
use earl_eval::run::Summary;
use earl_eval::RlExperiment;

#[derive(clap::Subcommand)]
pub enum ExperimentCommand {
    /// Run (or resume) a chain of stages from a chain file (see docs/eval.md, "Experiment chains").
    Run(RunArgs),
    /// The paper's table over chains: one row per chain, one column per benchmark and their unweighted average.
    Compare {
        /// Chain files (or chain directories holding chain.json).
        #[arg(required = true)]
        chains: Vec<PathBuf>,
        /// One row per chain over these seeds (mean ± standard deviation): each chain file is read once per seed
        /// with --seed-var set to it (EARL-mini's chains write each seed's runs apart).
        #[arg(long, value_delimiter = ',')]
        seeds: Vec<u64>,
        /// The variable that chain files take their seed from.
        #[arg(long, default_value = "EARL_MINI_SEED")]
        seed_var: String,
        /// Two more columns: each row's training and evaluation wall time in minutes (chain.json's records).
        #[arg(long)]
        times: bool,
    },
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The chain file.
    file: PathBuf,
    /// Redo a stage whose config changed since it ran (its directory is removed), and every stage after it.
    #[arg(long)]
    force: bool,
    /// Device of every stage (overrides the SFT experiment's `device` and the `[rl]` table's).
    #[arg(long)]
    device: Option<String>,
    /// Skip checking every shard's SHA-256 against its manifest before training.
    #[arg(long)]
    no_verify: bool,
    /// Stop after this stage (`sft`, `rl` or `eval/<benchmark>`); a later run resumes after it.
    #[arg(long)]
    until: Option<String>,
}

pub fn run(cmd: &ExperimentCommand) -> Result<i32> {
    match cmd {
        ExperimentCommand::Run(a) => run_chain(a),
        ExperimentCommand::Compare { chains, seeds, seed_var, times } => compare(chains, seeds, seed_var, *times),
    }
}

fn run_chain(a: &RunArgs) -> Result<i32> {
    let chain = Chain::load(&a.file)?;
    // Every evaluation is validated before any stage trains, so a typo there does not wait for the training.
    let base = a.file.parent().unwrap_or(std::path::Path::new("")).to_path_buf();
    for e in &chain.evals {
        e.config(e.values.clone(), &base, &a.file)?;
    }
    let mut runner = CliRunner { args: a, base };
    let m = chain::run_chain(&chain, &mut runner, a.force, a.until.as_deref(), &mut |e| match e {
        Event::Skipped(s) => println!("stage {s}: done earlier, skipped"),
        Event::Started(s) => println!("stage {s}: running"),
        Event::Finished(s, secs) => println!("stage {s}: done in {secs:.0} s"),
        Event::Invalidated(s) => eprintln!("stage {s}: changed since it ran; removed its directory (--force)"),
    })?;
    println!("chain {}: {} stages done; {}", chain.name, m.stages.len(), chain.out.join(chain::MANIFEST).display());
    Ok(0)
}

fn compare(chains: &[PathBuf], seeds: &[u64], seed_var: &str, times: bool) -> Result<i32> {
    let env = |k: &str| std::env::var(k).ok();
    let rows = if seeds.is_empty() {
        chains.iter().map(|c| chain::chain_row(c, &env)).collect::<earl_core::Result<Vec<_>>>()?
    } else {
        let mut rows = Vec::new();
        for c in chains {
            let runs = seeds
                .iter()
                .map(|seed| {
                    let env = |k: &str| if k == seed_var { Some(seed.to_string()) } else { std::env::var(k).ok() };
                    chain::chain_row(c, &env)
                })
                .collect::<earl_core::Result<Vec<_>>>()?;
            rows.push(chain::over_seeds(&runs));
        }
        rows
    };
    print!("{}", chain::format_table(&rows, times));
    Ok(0)
}

/// The stages run as the single commands run them.
struct CliRunner<'a> {
    args: &'a RunArgs,
    base: PathBuf,
}

impl StageRunner for CliRunner<'_> {
    fn sft(&mut self, stage: &SftStage, exp: &SftExperiment) -> std::result::Result<RunSummary, StageError> {
        let mut exp = exp.clone();
        if let Some(d) = &self.args.device {
            exp.device = d.clone();
        }
        let _ = stage;
        // The run manifest records the file the experiment came from: here, the chain file.
        Ok(crate::sft::train(&exp, &self.args.file, !self.args.no_verify)?)
    }

    fn rl(&mut self, stage: &RlStage, exp: RlExperiment) -> std::result::Result<(), StageError> {
        let device = self.args.device.clone().or(stage.device.clone()).unwrap_or_else(|| "auto".into());
        let how = crate::rl_cmd::RunHow {
            device: &device,
            dtype: stage.dtype.as_deref(),
            vq: stage.vq.clone(),
            vq_dtype: stage.vq_dtype.as_deref().unwrap_or("f32"),
            engine: stage.engine.as_deref().unwrap_or("auto"),
            out: Some(stage.dir.clone()),
            max_iterations: None,
            verify: !self.args.no_verify,
        };
        Ok(crate::rl_cmd::train(exp, &how)?)
    }

    fn eval(
        &mut self,
        stage: &EvalStage,
        settings: toml::Table,
        force: bool,
    ) -> std::result::Result<Summary, StageError> {
        let cfg = stage.config(settings, &self.base, &self.args.file)?;
        Ok(earl_eval::run::run_eval(&cfg, &stage.dir, force)?)
    }
}

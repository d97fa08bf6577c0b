//! `earl eval run` and `earl eval judge`: thin fronts of `earl_eval::run` (flags → `RawEvalConfig`, a progress bar
//! with ETA and tokens/s, the summary's headline on stdout). See docs/eval.md for the run directory.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use earl_core::generate::TopK;
use earl_eval::bench::GenericColumns;
use earl_eval::judge::JudgeMode;
use earl_eval::run::{self, EvalConfig, JudgeConfig, Progress, RawEvalConfig, SampleRecord, Summary};

#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Generate and judge every selected sample of a benchmark into a run directory (resumable).
    Run(Box<RunArgs>),
    /// Score a run directory's saved edits again, without regenerating them.
    Judge(JudgeArgs),
    /// The paper-style table of run directories (rows = runs, columns = benchmarks + average), Markdown and CSV.
    Table(crate::eval_report_cmd::TableArgs),
    /// Write RUN_DIR/report.html: one offline file with the gallery, tables and histograms.
    Report(crate::eval_report_cmd::ReportArgs),
    /// Two runs side by side with per-sample score differences, as one HTML file.
    Compare(crate::eval_report_cmd::CompareArgs),
}

/// The judge flags shared by `run` and `judge`.
#[derive(clap::Args)]
pub struct JudgeFlags {
    /// OpenAI-compatible endpoint of the VIEScore judge (without it, `run` only generates).
    #[arg(long)]
    judge_url: Option<String>,
    /// Judge model (default gpt-4o-mini-2024-07-18, the paper's).
    #[arg(long)]
    judge_model: Option<String>,
    /// File holding the API key (none: no Authorization header).
    #[arg(long)]
    judge_key_file: Option<PathBuf>,
    /// reference (a failure scores 0 and is averaged in) or retry (retries; failures are reported apart).
    #[arg(long)]
    judge_mode: Option<JudgeMode>,
    /// Directory with viescore_sc.txt and viescore_pq.txt (scripts/fetch_judge_prompts.py writes prompts/paper/).
    #[arg(long)]
    judge_prompts: Option<PathBuf>,
    /// Judge requests in flight (default 8).
    #[arg(long)]
    judge_concurrency: Option<usize>,
}

impl JudgeFlags {
    fn into_raw(self, raw: &mut RawEvalConfig) {
        raw.judge_url = self.judge_url;
        raw.judge_model = self.judge_model;
        raw.judge_key_file = self.judge_key_file;
        raw.judge_mode = self.judge_mode;
        raw.judge_prompts = self.judge_prompts;
        raw.judge_concurrency = self.judge_concurrency;
    }
}

/// Parses `--columns source=src,instruction=prompt,gt=target`: every key once, `source` and `instruction` required.
fn parse_columns(text: &str) -> std::result::Result<GenericColumns, String> {
    let mut cols = GenericColumns::default();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, col) = part.split_once('=').ok_or_else(|| format!("{part:?} is not KEY=COLUMN"))?;
        let col = col.trim().to_string();
        let slot = match key.trim() {
            "source" => {
                cols.source = col;
                continue;
            }
            "instruction" => {
                cols.instruction = col;
                continue;
            }
            "gt" => &mut cols.gt,
            "task" => &mut cols.task,
            "id" => &mut cols.id,
            other => return Err(format!("unknown column key {other:?} (source, instruction, gt, task, id)")),
        };
        *slot = Some(col);
    }
    if cols.source.is_empty() || cols.instruction.is_empty() {
        return Err("`source=` and `instruction=` are required".into());
    }
    Ok(cols)
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// omniedit, emuedit, aurora, magicbrush, vismin, i2ebench (or generic).
    #[arg(long)]
    benchmark: String,
    /// The dataset's directory as a download leaves it (for generic: a parquet or JSONL file or directory).
    #[arg(long)]
    data: PathBuf,
    /// Generic benchmark's columns: `source=COL,instruction=COL[,gt=COL][,task=COL][,id=COL]`.
    #[arg(long, value_parser = parse_columns)]
    columns: Option<GenericColumns>,
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    vq: PathBuf,
    /// Text-tokenizer directory (default: the model directory).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The run directory.
    #[arg(long)]
    out: PathBuf,
    /// Only the first N samples of the selection.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Assistant prefill (E, E-legacy, CE, mixed, text:<literal>).
    #[arg(long, default_value = "E")]
    mode: String,
    /// Source area before encoding (default 65636, the reference's).
    #[arg(long)]
    area: Option<u64>,
    /// Area of the images the judge sees (default 65536).
    #[arg(long)]
    judge_area: Option<u64>,
    /// New-token cap (default 3000, lowered to what max_position_embeddings leaves).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Samples generated together (default 1, as the reference; each keeps its own row-keyed stream).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Decode path: eager, graph (CUDA graphs; CUDA only) or auto (default: graph on CUDA, else eager).
    #[arg(long)]
    engine: Option<String>,
    /// Top-k (default 2048; off or -1 for none).
    #[arg(long)]
    top_k: Option<TopK>,
    #[command(flatten)]
    judge: JudgeFlags,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Language-model dtype. Default: bf16 on CUDA, f32 on CPU.
    #[arg(long)]
    dtype: Option<String>,
    /// Reuse a run directory made by another model or config, discarding its samples.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
pub struct JudgeArgs {
    /// The run directory.
    run_dir: PathBuf,
    #[command(flatten)]
    judge: JudgeFlags,
}

/// The progress bar: samples done of total, ETA, tokens/s.
struct Bar {
    bar: indicatif::ProgressBar,
    tokens: usize,
    t0: Instant,
}

impl Bar {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} samples [{elapsed_precise}, ETA {eta}] {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Bar { bar, tokens: 0, t0: Instant::now() }
    }
}

impl Progress for Bar {
    fn start(&mut self, total: usize, done: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.bar.reset_eta();
    }
    fn tokens(&mut self, n: usize) {
        self.tokens += n;
        if self.tokens.is_multiple_of(64) {
            let rate = self.tokens as f64 / self.t0.elapsed().as_secs_f64().max(1e-9);
            self.bar.set_message(format!("{rate:.1} tok/s"));
        }
    }
    fn sample(&mut self, _rec: &SampleRecord) {
        self.bar.inc(1);
    }
}

fn print_summary(s: &Summary, out: &std::path::Path) {
    let m = |k: &str| s.metrics.get(k).map_or("-".to_string(), |v| format!("{:.3} ± {:.3}", v.mean, v.std));
    println!(
        "{}: n {}, vie_all {}, vie_sc {}, vie_pq {}; judge failures {}, invalid images {}, errors {}, unjudged {} ({})",
        s.benchmark,
        s.n,
        m("vie_all"),
        m("vie_sc"),
        m("vie_pq"),
        s.judge_failures,
        s.invalid_images,
        s.errors,
        s.unjudged,
        out.join(run::dir::SUMMARY).display()
    );
}

pub fn run(cmd: EvalCommand) -> Result<i32> {
    match cmd {
        EvalCommand::Table(args) => crate::eval_report_cmd::table(&args),
        EvalCommand::Report(args) => crate::eval_report_cmd::report(&args),
        EvalCommand::Compare(args) => crate::eval_report_cmd::compare(&args),
        EvalCommand::Run(a) => {
            let a = *a;
            let mut raw = RawEvalConfig {
                benchmark: Some(a.benchmark),
                data: Some(a.data),
                model: Some(a.model),
                vq: Some(a.vq),
                tokenizer: a.tokenizer,
                device: Some(a.device),
                dtype: a.dtype,
                limit: a.limit,
                seed: Some(a.seed),
                mode: Some(a.mode),
                area: a.area,
                judge_area: a.judge_area,
                columns: a.columns,
                max_new_tokens: a.max_new_tokens,
                batch_size: a.batch_size,
                engine: a.engine,
                top_k: a.top_k,
                ..Default::default()
            };
            a.judge.into_raw(&mut raw);
            let cwd = std::env::current_dir().context("reading the current directory")?;
            let cfg = EvalConfig::from_raw(raw, &cwd)?;
            if cfg.judge.is_none() && earl_eval::mini::is_mini(&cfg.benchmark) {
                eprintln!("earl eval run: no --judge-url: {} judges by the exact mini verifier", cfg.benchmark);
            } else if cfg.judge.is_none() {
                eprintln!("earl eval run: no --judge-url: generating only (score later with `earl eval judge`)");
            }
            let device = earl_core::device::parse_device(&cfg.device)?;
            crate::choice::announce("eval run", device, None, Some(&a.out));
            let mut bar = Bar::new();
            let summary = run::run_eval_with(&cfg, &a.out, a.force, &mut bar);
            bar.bar.finish_and_clear();
            print_summary(&summary?, &a.out);
            Ok(0)
        }
        EvalCommand::Judge(a) => {
            let mut raw = RawEvalConfig::default();
            a.judge.into_raw(&mut raw);
            let cwd = std::env::current_dir().context("reading the current directory")?;
            // Without --judge-url, a mini run is re-scored by the exact verifier (earl-eval says so for others).
            let judge = JudgeConfig::from_raw(&raw, &cwd)?;
            let mut bar = Bar::new();
            let summary = run::judge_run(&a.run_dir, judge.as_ref(), &mut bar);
            bar.bar.finish_and_clear();
            print_summary(&summary?, &a.run_dir);
            Ok(0)
        }
    }
}

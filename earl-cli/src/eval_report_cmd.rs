//! `earl eval table`, `earl eval report` and `earl eval compare`: reading run directories back into the paper's
//! table (Markdown and CSV), a run's `report.html`, and a two-run comparison page. Thin: the work is in
//! `earl_eval::{table, report}`.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

/// `earl eval table RUN_DIR…`.
#[derive(Args)]
pub struct TableArgs {
    /// Run directories (several seeds of one model and benchmark make one mean ± spread cell).
    #[arg(required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// overall (VIEScore, the paper's number), sc, pq, edit_success, overediting, naturalness or artifacts.
    #[arg(long, default_value = "overall")]
    pub metric: String,
    /// Also write the table as CSV here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also write the Markdown table here (it is always printed).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// `earl eval report RUN_DIR`.
#[derive(Args)]
pub struct ReportArgs {
    /// The run directory; the report is written into it as report.html.
    pub run_dir: PathBuf,
}

/// `earl eval compare RUN_A RUN_B`.
#[derive(Args)]
pub struct CompareArgs {
    /// The first run (A).
    pub run_a: PathBuf,
    /// The second run (B); differences are B − A.
    pub run_b: PathBuf,
    /// Where to write the comparison page.
    #[arg(long, default_value = "compare.html")]
    pub out: PathBuf,
}

/// Prints the table (and writes the files asked for).
pub fn table(args: &TableArgs) -> Result<i32> {
    let metric = earl_eval::table::parse_metric(&args.metric)?;
    let runs = args.run_dirs.iter().map(|d| earl_eval::rundir::read_summary(d)).collect::<Result<Vec<_>, _>>()?;
    let table = earl_eval::table::build(&runs, metric)?;
    let md = table.markdown();
    print!("{md}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, table.csv()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// Writes RUN_DIR/report.html and prints its path.
pub fn report(args: &ReportArgs) -> Result<i32> {
    let path = earl_eval::report::write_report(&args.run_dir)?;
    println!("{}", path.display());
    Ok(0)
}

/// Writes the comparison page and prints its path.
pub fn compare(args: &CompareArgs) -> Result<i32> {
    let path = earl_eval::report::write_compare(&args.run_a, &args.run_b, &args.out)?;
    println!("{}", path.display());
    Ok(0)
}

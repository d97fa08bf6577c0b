//! `earl experiment compare`: the paper's table over chains — one row per chain, one column per benchmark (mean
//! overall VIEScore, `metrics["vie_all"].mean` of each evaluation's `summary.json`) and their unweighted average, as
//! the paper reports it. The rows are gathered here; [`format_table`] is the one place that lays them out.
use std::collections::BTreeMap;
use std::path::Path;

use earl_core::{Error, Result};

use super::config::Chain;
use super::manifest::{ChainManifest, Status};
use super::stages::StageKind;
use crate::run::Summary;

/// One chain's scores: benchmark → mean overall VIEScore.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainRow {
    /// The chain's name.
    pub name: String,
    /// Benchmark → `vie_all` mean, for every finished evaluation (over seeds: the mean of the seeds' means).
    pub scores: BTreeMap<String, f64>,
    /// Over seeds ([`over_seeds`]): the spread of every cell; `None` for one run.
    pub spread: Option<Spread>,
    /// Wall seconds of the chain's own training stage (SFT or RL; 0 for none), as `chain.json` records them; over
    /// seeds, their mean.
    pub train_seconds: f64,
    /// Wall seconds of its finished evaluations, summed; over seeds, their mean.
    pub eval_seconds: f64,
}

/// How much a row's cells vary across seeds: the sample standard deviation (n − 1) of each benchmark's mean and of
/// the row's average.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// Seeds the row holds.
    pub seeds: usize,
    /// Benchmark → standard deviation across seeds (benchmarks every seed has).
    pub scores: BTreeMap<String, f64>,
    /// Standard deviation of the seeds' unweighted averages (`None` when a seed misses a column).
    pub average: Option<f64>,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// One chain's runs under several seeds as one row: each benchmark's mean over the seeds that have it all (a
/// benchmark some seed lacks is left out), its spread, and the spread of the rows' averages. `runs` is not empty.
pub fn over_seeds(runs: &[ChainRow]) -> ChainRow {
    let mut scores = BTreeMap::new();
    let mut spread = BTreeMap::new();
    let benches: Vec<&String> = runs.first().map(|r| r.scores.keys().collect()).unwrap_or_default();
    for b in benches {
        let v: Option<Vec<f64>> = runs.iter().map(|r| r.scores.get(b).copied()).collect();
        if let Some(v) = v {
            let (m, s) = mean_std(&v);
            scores.insert(b.clone(), m);
            spread.insert(b.clone(), s);
        }
    }
    let averages: Option<Vec<f64>> = runs
        .iter()
        .map(|r| {
            let all: Vec<f64> = scores.keys().filter_map(|b| r.scores.get(b).copied()).collect();
            (!all.is_empty()).then(|| all.iter().sum::<f64>() / all.len() as f64)
        })
        .collect();
    let name = runs.first().map(|r| r.name.clone()).unwrap_or_default();
    let average = averages.map(|a| mean_std(&a).1);
    let mean = |f: fn(&ChainRow) -> f64| runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64;
    ChainRow {
        name,
        scores,
        spread: Some(Spread { seeds: runs.len(), scores: spread, average }),
        train_seconds: mean(|r| r.train_seconds),
        eval_seconds: mean(|r| r.eval_seconds),
    }
}

/// The paper's benchmarks, in its table's order, with their column titles.
pub const PAPER_BENCHMARKS: [(&str, &str); 6] = [
    ("omniedit", "OmniEdit"),
    ("emuedit", "EmuEdit"),
    ("aurora", "AURORA"),
    ("magicbrush", "MagicBrush"),
    ("vismin", "VisMin"),
    ("i2ebench", "I2EBench"),
];

/// The row of a chain, given as its file or its directory (holding `chain.json`): the finished evaluations'
/// summaries. A chain that never ran is an error; one whose evaluations have not finished has empty cells.
pub fn chain_row(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<ChainRow> {
    let (name, out) = if path.is_dir() { (String::new(), path.to_path_buf()) } else { Chain::header(path, env)? };
    let m = ChainManifest::read(&out)?.ok_or_else(|| {
        Error::Input(format!("{}: the chain has not run (no chain.json in {})", path.display(), out.display()))
    })?;
    let mut scores = BTreeMap::new();
    let train_seconds = m.stages.iter().filter(|s| s.kind != StageKind::Eval).map(|s| s.seconds).sum();
    let mut eval_seconds = 0.0;
    for s in m.stages.iter().filter(|s| s.kind == StageKind::Eval && s.status == Status::Done) {
        eval_seconds += s.seconds;
        let Some(p) = &s.summary else { continue };
        let text = std::fs::read_to_string(p).map_err(|e| super::io_err(p, e))?;
        let summary: Summary = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: p.clone(),
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        })?;
        let mean = summary
            .metrics
            .get("vie_all")
            .map(|m| m.mean)
            .ok_or_else(|| Error::Data { path: p.clone(), msg: "has no vie_all metric".into() })?;
        scores.insert(summary.benchmark, mean);
    }
    let name = if name.is_empty() { m.chain } else { name };
    Ok(ChainRow { name, scores, spread: None, train_seconds, eval_seconds })
}

/// EARL-mini's test splits, in the order of its table.
pub const MINI_BENCHMARKS: [(&str, &str); 3] =
    [("mini-s-test", "s-test"), ("mini-c-test", "c-test"), ("mini-ood-test", "ood")];

/// The rows as a Markdown table: the paper's benchmarks that any row has, in the paper's order (then EARL-mini's
/// splits in theirs), then any other benchmark alphabetically, then the unweighted average of the columns (empty for
/// a row missing one of them). Scores have two decimals, as the paper prints them; a row over seeds shows
/// mean ± standard deviation. With `times`, two more columns give each row's training and evaluation wall time in
/// minutes.
pub fn format_table(rows: &[ChainRow], times: bool) -> String {
    let mut cols: Vec<(String, String)> = PAPER_BENCHMARKS
        .iter()
        .chain(MINI_BENCHMARKS.iter())
        .filter(|(b, _)| rows.iter().any(|r| r.scores.contains_key(*b)))
        .map(|(b, t)| (b.to_string(), t.to_string()))
        .collect();
    let mut others: Vec<&String> =
        rows.iter().flat_map(|r| r.scores.keys()).filter(|b| !cols.iter().any(|(c, _)| c == *b)).collect();
    others.sort();
    others.dedup();
    cols.extend(others.into_iter().map(|b| (b.clone(), b.clone())));
    let mut out = String::from("| chain |");
    for (_, title) in &cols {
        out.push_str(&format!(" {title} |"));
    }
    out.push_str(" Avg (unweighted) |");
    if times {
        out.push_str(" train min | eval min |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(cols.len() + 1 + if times { 2 } else { 0 }));
    out.push('\n');
    for r in rows {
        let name = match &r.spread {
            Some(s) => format!("{} ({} seeds)", r.name, s.seeds),
            None => r.name.clone(),
        };
        out.push_str(&format!("| {name} |"));
        let cells: Vec<Option<f64>> = cols.iter().map(|(b, _)| r.scores.get(b).copied()).collect();
        let pm = |v: f64, s: Option<f64>| match s {
            Some(s) => format!(" {v:.2} ± {s:.2} |"),
            None => format!(" {v:.2} |"),
        };
        for ((b, _), c) in cols.iter().zip(&cells) {
            let s = r.spread.as_ref().and_then(|s| s.scores.get(b).copied());
            out.push_str(&c.map_or(" |".to_string(), |v| pm(v, s)));
        }
        let all: Option<Vec<f64>> = cells.into_iter().collect();
        match all {
            Some(v) if !v.is_empty() => {
                let s = r.spread.as_ref().and_then(|s| s.average);
                out.push_str(&pm(v.iter().sum::<f64>() / v.len() as f64, s));
            }
            _ => out.push_str(" |"),
        }
        if times {
            out.push_str(&format!(" {:.1} | {:.1} |", r.train_seconds / 60.0, r.eval_seconds / 60.0));
        }
        out.push('\n');
    }
    out
}

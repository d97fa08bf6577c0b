//! `earl eval table`: the paper's table from run directories. Rows are runs (one model and label: see
//! [`RunIdentity`]), columns the benchmarks in the paper's order (OmniEdit, EmuEdit, AURORA, MagicBrush, VisMin,
//! I2EBench; then the mini world's test splits and any other benchmark present), and a last column that is the
//! unweighted mean of the benchmark columns shown, as the paper's "average" is of its six. A cell is the run's mean
//! of one metric (the paper reports the mean VIEScore overall, `vie_all`); several run directories of one model and
//! benchmark with different seeds make one cell, mean over seeds ± the sample standard deviation over seeds.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use earl_core::{Error, Result};

use crate::rundir::{RunIdentity, RunSummary, METRICS};

/// The paper's benchmark columns, in its order; other benchmarks follow (the mini world's first, then by name).
pub const PAPER_BENCHMARKS: [&str; 6] = ["omniedit", "emuedit", "aurora", "magicbrush", "vismin", "i2ebench"];
const MINI_BENCHMARKS: [&str; 3] = ["mini-s-test", "mini-c-test", "mini-ood-test"];

/// The metric of `--metric NAME`: `overall` (the default, `vie_all`), `sc`, `pq` or a sub-score; the summary's own
/// names (`vie_all`, `vie_sc`, `vie_pq`) are accepted too.
pub fn parse_metric(name: &str) -> Result<&'static str> {
    let key = match name {
        "overall" | "all" => "vie_all",
        "sc" => "vie_sc",
        "pq" => "vie_pq",
        other => other,
    };
    METRICS.iter().copied().find(|m| *m == key).ok_or_else(|| {
        Error::Input(format!(
            "--metric {name:?}: expected one of overall, sc, pq, edit_success, overediting, naturalness, artifacts"
        ))
    })
}

/// One cell: the mean of a metric over a run's samples, or over several seeds' runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Mean over the seeds of the per-run means.
    pub mean: f64,
    /// Sample standard deviation over seeds (n − 1 denominator); `None` with one seed.
    pub spread: Option<f64>,
    /// Seeds (run directories) aggregated.
    pub seeds: usize,
}

/// One row: a model and label.
#[derive(Debug, Clone)]
pub struct Row {
    /// What the row is called.
    pub name: String,
    /// The model and label it stands for.
    pub identity: RunIdentity,
    /// Benchmark → cell.
    pub cells: BTreeMap<String, Cell>,
    /// The unweighted mean of the row's cells, where it has every column.
    pub average: Option<Cell>,
}

/// The table of one metric.
#[derive(Debug, Clone)]
pub struct Table {
    /// The metric (`vie_all`, …).
    pub metric: &'static str,
    /// Benchmark columns, in order.
    pub benchmarks: Vec<String>,
    /// Rows, in the order their first run directory was given.
    pub rows: Vec<Row>,
    /// Judge failures and invalid images per run, which the means count as the run's mode says.
    pub notes: Vec<String>,
}

/// One run directory's contribution to a cell.
struct SeedRun<'a> {
    seed: Option<u64>,
    mean: f64,
    run: &'a RunSummary,
}

/// Builds the table of `metric` over `runs`. Two run directories of one model, label, benchmark and seed are an
/// error (the table never mixes two runs silently).
pub fn build(runs: &[RunSummary], metric: &'static str) -> Result<Table> {
    let mut identities: Vec<RunIdentity> = Vec::new();
    let mut groups: BTreeMap<(usize, String), Vec<SeedRun>> = BTreeMap::new();
    let mut notes = Vec::new();
    for run in runs {
        let id = identities.iter().position(|i| *i == run.identity).unwrap_or_else(|| {
            identities.push(run.identity.clone());
            identities.len() - 1
        });
        let s = &run.summary;
        if s.judge_failures > 0 || s.invalid_images > 0 {
            notes.push(format!(
                "{} ({}): {} of {} samples with judge failures, {} invalid images",
                run.dir.display(),
                s.benchmark,
                s.judge_failures,
                s.n,
                s.invalid_images
            ));
        }
        let Some(stat) = s.metrics.get(metric) else {
            notes.push(format!("{} ({}): no {metric} in summary.json", run.dir.display(), s.benchmark));
            continue;
        };
        let cell = groups.entry((id, s.benchmark.clone())).or_default();
        if let Some(other) = cell.iter().find(|r| r.seed == run.seed) {
            return Err(Error::Input(format!(
                "{} and {} are both {} on {} with {}: give one of them",
                other.run.dir.display(),
                run.dir.display(),
                run.identity.display(),
                s.benchmark,
                run.seed.map_or_else(|| "no seed recorded".to_string(), |n| format!("seed {n}"))
            )));
        }
        cell.push(SeedRun { seed: run.seed, mean: stat.mean, run });
    }
    let benchmarks = column_order(groups.keys().map(|(_, b)| b.as_str()));
    let names = row_names(&identities);
    let rows = identities
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (identity, name))| {
            let runs: BTreeMap<&str, &Vec<SeedRun>> =
                groups.iter().filter(|((r, _), _)| *r == i).map(|((_, b), v)| (b.as_str(), v)).collect();
            let cells =
                runs.iter().map(|(b, v)| (b.to_string(), cell_of(&v.iter().map(|r| r.mean).collect::<Vec<_>>())));
            let cells: BTreeMap<String, Cell> = cells.collect();
            let average = average_of(&benchmarks, &runs, &cells);
            Row { name, identity, cells, average }
        })
        .collect();
    Ok(Table { metric, benchmarks, rows, notes })
}

/// Mean and sample standard deviation of per-seed means.
fn cell_of(values: &[f64]) -> Cell {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let spread = (n > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    Cell { mean, spread, seeds: n }
}

/// The unweighted mean of the row's cells over every column, `None` if a column is missing. Its spread is over
/// seeds of the per-seed averages, when every column has the same seeds (else it has none).
fn average_of(
    benchmarks: &[String],
    runs: &BTreeMap<&str, &Vec<SeedRun>>,
    cells: &BTreeMap<String, Cell>,
) -> Option<Cell> {
    if benchmarks.is_empty() {
        return None;
    }
    let means: Vec<f64> = benchmarks.iter().map(|b| cells.get(b).map(|c| c.mean)).collect::<Option<_>>()?;
    let mean = means.iter().sum::<f64>() / means.len() as f64;
    let seeds_of = |b: &str| -> Vec<Option<u64>> {
        let mut s: Vec<Option<u64>> = runs[b].iter().map(|r| r.seed).collect();
        s.sort();
        s
    };
    let seeds = seeds_of(&benchmarks[0]);
    let same = seeds.len() > 1 && seeds.iter().all(Option::is_some) && benchmarks.iter().all(|b| seeds_of(b) == seeds);
    if !same {
        let n = benchmarks.iter().map(|b| cells[b].seeds).min().unwrap_or(1);
        return Some(Cell { mean, spread: None, seeds: n });
    }
    let per_seed: Vec<f64> = seeds
        .iter()
        .map(|s| {
            let v: f64 =
                benchmarks.iter().map(|b| runs[b.as_str()].iter().find(|r| r.seed == *s).map_or(0.0, |r| r.mean)).sum();
            v / benchmarks.len() as f64
        })
        .collect();
    Some(Cell { mean, ..cell_of(&per_seed) })
}

/// The paper's six in its order, then the mini world's test splits, then the rest by name.
fn column_order<'a>(present: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut present: Vec<&str> = present.collect();
    present.sort();
    present.dedup();
    let rank =
        |b: &str| PAPER_BENCHMARKS.iter().chain(MINI_BENCHMARKS.iter()).position(|k| *k == b).unwrap_or(usize::MAX);
    present.sort_by_key(|b| (rank(b), b.to_string()));
    present.into_iter().map(str::to_string).collect()
}

/// Row names; two rows that would read the same are told apart by their model.
fn row_names(ids: &[RunIdentity]) -> Vec<String> {
    let plain: Vec<String> = ids.iter().map(RunIdentity::display).collect();
    plain
        .iter()
        .zip(ids)
        .map(|(name, id)| {
            if plain.iter().filter(|n| *n == name).count() > 1 {
                let short: String = id.model.chars().take(12).collect();
                format!("{name} ({short})")
            } else {
                name.clone()
            }
        })
        .collect()
}

impl Table {
    /// The label of the last column.
    pub fn average_label(&self) -> String {
        format!("average (unweighted mean of the {} benchmarks shown)", self.benchmarks.len())
    }

    /// A Markdown table with a legend that says what the cells and the spread are.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let head: Vec<String> = self.benchmarks.iter().cloned().chain([self.average_label()]).collect();
        let _ = writeln!(out, "| run | {} |", head.join(" | "));
        let _ = writeln!(out, "| --- |{}", " ---: |".repeat(head.len()));
        for row in &self.rows {
            let cells: Vec<String> = self
                .benchmarks
                .iter()
                .map(|b| row.cells.get(b))
                .chain([row.average.as_ref()])
                .map(|c| c.map_or_else(|| "—".to_string(), md_cell))
                .collect();
            let _ = writeln!(out, "| {} | {} |", row.name.replace('|', "\\|"), cells.join(" | "));
        }
        let _ = writeln!(
            out,
            "\nMetric: {} (0–10), the mean over a run's samples. With several seeds of one model: mean over seeds ± \
             sample standard deviation over seeds (n − 1 denominator), n = seeds. — : no run. The average is over the \
             benchmark columns, only for rows that have all of them.",
            self.metric
        );
        for n in &self.notes {
            let _ = writeln!(out, "- {n}");
        }
        out
    }

    /// CSV: per benchmark its mean, spread (sample std over seeds) and number of seeds; empty fields where a row has
    /// no run (the Markdown's "—").
    pub fn csv(&self) -> String {
        let mut head = vec!["run".to_string(), "model".to_string(), "metric".to_string()];
        for b in self.benchmarks.iter().map(String::as_str).chain(["average"]) {
            head.extend([b.to_string(), format!("{b}_spread"), format!("{b}_seeds")]);
        }
        let mut out = head.join(",") + "\n";
        for row in &self.rows {
            let mut f = vec![csv_field(&row.name), csv_field(&row.identity.model), self.metric.to_string()];
            for c in self.benchmarks.iter().map(|b| row.cells.get(b)).chain([row.average.as_ref()]) {
                match c {
                    Some(c) => f.extend([
                        format!("{:.4}", c.mean),
                        c.spread.map(|s| format!("{s:.4}")).unwrap_or_default(),
                        c.seeds.to_string(),
                    ]),
                    None => f.extend([String::new(), String::new(), String::new()]),
                }
            }
            out += &(f.join(",") + "\n");
        }
        out
    }
}

fn md_cell(c: &Cell) -> String {
    match c.spread {
        Some(s) => format!("{:.2} ± {:.2} (n={})", c.mean, s, c.seeds),
        None => format!("{:.2}", c.mean),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;

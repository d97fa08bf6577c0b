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
    /// Benchmark → `vie_all` mean, for every finished evaluation.
    pub scores: BTreeMap<String, f64>,
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
    for s in m.stages.iter().filter(|s| s.kind == StageKind::Eval && s.status == Status::Done) {
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
    Ok(ChainRow { name: if name.is_empty() { m.chain } else { name }, scores })
}

/// The rows as a Markdown table: the paper's benchmarks that any row has, in the paper's order, then any other
/// benchmark alphabetically, then the unweighted average of the columns (empty for a row missing one of them).
/// Scores have two decimals, as the paper prints them.
pub fn format_table(rows: &[ChainRow]) -> String {
    let mut cols: Vec<(String, String)> = PAPER_BENCHMARKS
        .iter()
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
    out.push_str(" Avg (unweighted) |\n|---|");
    out.push_str(&"---:|".repeat(cols.len() + 1));
    out.push('\n');
    for r in rows {
        out.push_str(&format!("| {} |", r.name));
        let cells: Vec<Option<f64>> = cols.iter().map(|(b, _)| r.scores.get(b).copied()).collect();
        for c in &cells {
            out.push_str(&c.map_or(" |".to_string(), |v| format!(" {v:.2} |")));
        }
        let all: Option<Vec<f64>> = cells.into_iter().collect();
        match all {
            Some(v) if !v.is_empty() => out.push_str(&format!(" {:.2} |\n", v.iter().sum::<f64>() / v.len() as f64)),
            _ => out.push_str(" |\n"),
        }
    }
    out
}

//! The report's tables, from `summary.json`: the run's metrics (mean, population std and count, as the runner
//! aggregated them) and one table per grouping the benchmark has (`source`, `task`, `source_task`).
use std::fmt::Write as _;

use super::html::esc;
use crate::run::{MetricTable, Summary};
use crate::rundir::METRICS;

/// The run's counts and its metrics table.
pub(crate) fn overview(s: &Summary) -> String {
    let mut out = format!(
        "<p>{} samples; {} with judge failures (scored as the judge mode says and averaged in); {} without a decodable \
         image.</p>\n<table><tr><th>metric</th><th>mean</th><th>std</th><th>count</th></tr>",
        s.n, s.judge_failures, s.invalid_images
    );
    for m in METRICS {
        if let Some(v) = s.metrics.get(m) {
            let _ = write!(out, "<tr><td>{m}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>", v.mean, v.std, v.count);
        }
    }
    out + "</table>\n"
}

/// One table per grouping: a row per group, "mean ± std" per metric.
pub(crate) fn groups(s: &Summary) -> String {
    let mut out = String::new();
    for (grouping, groups) in &s.groups {
        let _ = write!(out, "<h3>by {}</h3>\n<table><tr><th>{}</th><th>count</th>", esc(grouping), esc(grouping));
        for m in METRICS {
            let _ = write!(out, "<th>{m}</th>");
        }
        out.push_str("</tr>");
        for (name, table) in groups {
            let _ = write!(out, "<tr><td>{}</td><td>{}</td>", esc(name), count(table));
            for m in METRICS {
                match table.get(m) {
                    Some(v) => write!(out, "<td>{:.2} ± {:.2}</td>", v.mean, v.std),
                    None => write!(out, "<td>—</td>"),
                }
                .ok();
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>\n");
    }
    out
}

fn count(t: &MetricTable) -> usize {
    t.values().map(|v| v.count).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::run::MeanStd;

    #[test]
    fn groups_become_one_table_each_with_missing_metrics_dashed() {
        let ms = |mean| MeanStd { mean, std: 0.5, count: 3 };
        let task = BTreeMap::from([("add".to_string(), MetricTable::from([("vie_all".to_string(), ms(4.0))]))]);
        let s = Summary { groups: BTreeMap::from([("task".to_string(), task)]), ..Summary::default() };
        let html = groups(&s);
        assert!(html.contains("<h3>by task</h3>"));
        assert!(html.contains("<tr><td>add</td><td>3</td><td>4.00 ± 0.50</td><td>—</td>"), "{html}");
    }
}

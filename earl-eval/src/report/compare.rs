//! `earl eval compare RUN_A RUN_B`: two runs side by side. Samples are matched by (benchmark, dataset row), the
//! sample's identity in a run directory; for every matched pair the page shows the source, both edits and the
//! ground truth, both runs' scores and the difference B − A, sortable by any metric's difference. Samples only one
//! run has are counted, not shown.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use earl_core::{Error, Result};

use super::gallery::{flags, head, scores_table};
use super::html::{esc, figure, page, sort_control};
use super::images::embed;
use super::input_area;
use crate::run::SampleRecord;
use crate::rundir::{metric_of, RunDir, METRICS};

/// A matched pair.
type Pair<'a> = (&'a SampleRecord, &'a SampleRecord);

/// The comparison page of `a` and `b`; no sample in common is an error.
pub(crate) fn render(a: &RunDir, b: &RunDir) -> Result<String> {
    let index: BTreeMap<(&str, usize), &SampleRecord> =
        b.samples.iter().map(|x| ((x.benchmark.as_str(), x.row), x)).collect();
    let pairs: Vec<Pair> =
        a.samples.iter().filter_map(|x| index.get(&(x.benchmark.as_str(), x.row)).map(|y| (x, *y))).collect();
    if pairs.is_empty() {
        return Err(Error::Input(format!(
            "{} and {} have no sample in common (matched by benchmark and row)",
            a.dir().display(),
            b.dir().display()
        )));
    }
    let (na, nb) = (a.run.identity.display(), b.run.identity.display());
    let title = format!("EARL eval compare: A = {na}, B = {nb}");
    let mut body = format!("<h1>{}</h1>\n", esc(&title));
    let _ = writeln!(
        body,
        "<p>A: <code>{}</code> ({} samples)<br>B: <code>{}</code> ({} samples)<br>{} matched by benchmark and row; \
         {} only in A, {} only in B.</p>",
        esc(&a.dir().display().to_string()),
        a.samples.len(),
        esc(&b.dir().display().to_string()),
        b.samples.len(),
        pairs.len(),
        a.samples.len() - pairs.len(),
        b.samples.len() - pairs.len()
    );
    body += &delta_summary(&pairs);
    let mut by_bench: BTreeMap<&str, Vec<Pair>> = BTreeMap::new();
    for p in &pairs {
        by_bench.entry(p.0.benchmark.as_str()).or_default().push(*p);
    }
    let area = input_area(&a.run.summary.manifest);
    for (i, (bench, pairs)) in by_bench.iter().enumerate() {
        let id = format!("compare-{i}");
        let _ = writeln!(body, "<h2>{} ({} pairs)</h2>", esc(bench), pairs.len());
        body += &sort_control(&id, &delta_sort_options());
        let _ = writeln!(body, "<div class=\"gallery\" id=\"{id}\">");
        for (x, y) in pairs {
            body += &card(a, b, x, y, area);
        }
        body += "</div>\n";
    }
    Ok(page(&title, &body))
}

/// Sort choices: dataset order (the page's own), then every metric's difference, largest first and smallest first.
fn delta_sort_options() -> Vec<(String, String)> {
    let mut o = vec![("row:asc".to_string(), "dataset row".to_string())];
    for m in METRICS {
        o.push((format!("d_{m}:desc"), format!("B − A {m}, largest first")));
        o.push((format!("d_{m}:asc"), format!("B − A {m}, smallest first")));
    }
    o
}

/// B − A of one metric, where both runs scored the sample.
fn delta(x: &SampleRecord, y: &SampleRecord, m: &str) -> Option<f64> {
    Some(metric_of(y, m)? - metric_of(x, m)?)
}

/// Per metric, over the pairs where both runs have the score: the two means, the mean difference, and how often
/// each run scored higher.
fn delta_summary(pairs: &[Pair]) -> String {
    let mut t = String::from(
        "<table><tr><th>metric</th><th>pairs</th><th>mean A</th><th>mean B</th><th>mean B − A</th><th>B higher</th>\
         <th>A higher</th></tr>",
    );
    for m in METRICS {
        let both: Vec<(f64, f64)> =
            pairs.iter().filter_map(|(x, y)| Some((metric_of(x, m)?, metric_of(y, m)?))).collect();
        if both.is_empty() {
            continue;
        }
        let n = both.len() as f64;
        let (ma, mb) = (both.iter().map(|p| p.0).sum::<f64>() / n, both.iter().map(|p| p.1).sum::<f64>() / n);
        let (bw, aw) = (both.iter().filter(|p| p.1 > p.0).count(), both.iter().filter(|p| p.0 > p.1).count());
        let _ = write!(
            t,
            "<tr><td>{m}</td><td>{}</td><td>{ma:.3}</td><td>{mb:.3}</td><td>{}</td><td>{bw}</td><td>{aw}</td></tr>",
            both.len(),
            signed(mb - ma)
        );
    }
    t + "</table>\n"
}

fn signed(d: f64) -> String {
    let class = if d > 0.0 {
        "pos"
    } else if d < 0.0 {
        "neg"
    } else {
        ""
    };
    format!("<span class=\"{class}\">{d:+.2}</span>")
}

/// B's flags, when it has any (the header's others are A's: the rows are the same).
fn b_flags(y: &SampleRecord) -> String {
    let f = flags(y);
    if f.is_empty() {
        f
    } else {
        format!(" · B:{f}")
    }
}

fn card(a: &RunDir, b: &RunDir, x: &SampleRecord, y: &SampleRecord, area: f64) -> String {
    let mut c = format!("<div class=\"card\" data-row=\"{}\"", x.row);
    for m in METRICS {
        if let Some(d) = delta(x, y, m) {
            let _ = write!(c, " data-d_{m}=\"{d}\"");
        }
    }
    let _ = write!(
        c,
        ">\n<div class=\"head\">{}</div><p class=\"instr\">{}</p><div class=\"imgs\">",
        head(x) + &b_flags(y),
        esc(&x.instruction)
    );
    c += &figure(&embed(a.dir(), x.original.as_deref()), "source", &[], area);
    c += &figure(&embed(a.dir(), x.edited.as_deref()), "edit A", &[], area);
    c += &figure(&embed(b.dir(), y.edited.as_deref()), "edit B", &[], area);
    if x.gt.is_some() {
        c += &figure(&embed(a.dir(), x.gt.as_deref()), "ground truth", &[], area);
    }
    c += "</div>";
    let mut t = scores_table(&[("A", x), ("B", y)]);
    t.truncate(t.len() - "</table>".len());
    t += "<tr><td>B − A</td>";
    for m in METRICS {
        let _ = write!(t, "<td>{}</td>", delta(x, y, m).map_or_else(|| "—".to_string(), signed));
    }
    c += &(t + "</tr></table>");
    for (name, r) in [("A", x), ("B", y)] {
        if !r.reasoning.trim().is_empty() {
            let _ = write!(c, "<details><summary>reasoning {name}</summary><pre>{}</pre></details>", esc(&r.reasoning));
        }
    }
    c + "</div>\n"
}

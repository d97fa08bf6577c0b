//! `report.html` of one run directory: the run's tables, a histogram per metric, the manifest, and a gallery per
//! benchmark — for each sample its source (with the reasoning's boxes over it), edit and ground truth, the
//! instruction, the reasoning, the scores and the judge's reasons — sortable by any score.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use earl_core::data::cot::find_boxes;
use earl_core::Result;

use super::html::{esc, figure, page, score, sort_control};
use super::images::embed;
use super::{input_area, tables};
use crate::run::SampleRecord;
use crate::rundir::{metric_of, RunDir, METRICS};

/// The whole page of `run`.
pub(crate) fn render(run: &RunDir) -> Result<String> {
    let s = &run.run.summary;
    let title = format!("EARL eval: {} — {}", s.benchmark, run.run.identity.display());
    let mut body = format!(
        "<h1>{}</h1>\n<p>run directory <code>{}</code></p>\n",
        esc(&title),
        esc(&run.dir().display().to_string())
    );
    body += "<h2>Scores</h2>\n";
    body += &tables::overview(s);
    body += &tables::groups(s);
    body += "<h2>Histograms</h2>\n<div class=\"hists\">";
    for m in METRICS {
        let values: Vec<f64> = run.samples.iter().filter_map(|x| metric_of(x, m)).collect();
        body += &super::histogram(m, &values, run.dir())?;
    }
    body += "</div>\n";
    let manifest = serde_json::to_string_pretty(&s.manifest).unwrap_or_default();
    let _ = writeln!(body, "<details><summary>manifest</summary><pre>{}</pre></details>", esc(&manifest));
    let mut by_bench: BTreeMap<&str, Vec<&SampleRecord>> = BTreeMap::new();
    for x in &run.samples {
        by_bench.entry(x.benchmark.as_str()).or_default().push(x);
    }
    let area = input_area(&s.manifest);
    for (i, (bench, samples)) in by_bench.iter().enumerate() {
        let id = format!("gallery-{i}");
        let _ = writeln!(body, "<h2>Gallery: {} ({} samples)</h2>", esc(bench), samples.len());
        body += &sort_control(&id, &sort_options(""));
        let _ = writeln!(body, "<div class=\"gallery\" id=\"{id}\">");
        for x in samples {
            body += &card(run, x, area);
        }
        body += "</div>\n";
    }
    Ok(page(&title, &body))
}

/// Sort choices: dataset order, then every metric high-to-low and low-to-high (`prefix` names delta attributes).
pub(crate) fn sort_options(prefix: &str) -> Vec<(String, String)> {
    let mut o = vec![("row:asc".to_string(), "dataset row".to_string())];
    for m in METRICS {
        o.push((format!("{prefix}{m}:desc"), format!("{prefix}{m}, high first")));
        o.push((format!("{prefix}{m}:asc"), format!("{prefix}{m}, low first")));
    }
    o
}

/// What a sample's header says: its row, native id, task, source and [`flags`].
pub(crate) fn head(x: &SampleRecord) -> String {
    let mut h = format!("row {}", x.row);
    if !x.native_id.is_null() {
        let _ = write!(h, " · id {}", esc(&x.native_id.to_string()));
    }
    for v in [&x.task, &x.source].into_iter().flatten() {
        let _ = write!(h, " · {}", esc(v));
    }
    h + &flags(x)
}

/// Badges for what went wrong with a sample: no valid image, a judge failure, a finish other than `eos`.
pub(crate) fn flags(x: &SampleRecord) -> String {
    let mut h = String::new();
    let mut flag = |text: &str| {
        let _ = write!(h, "<span class=\"flag\">{}</span>", esc(text));
    };
    if !x.valid_image {
        flag("no valid image");
    }
    if x.judge_failed {
        flag("judge failed");
    }
    if x.finish_reason != "eos" && !x.finish_reason.is_empty() {
        flag(&format!("finish: {}", x.finish_reason));
    }
    h
}

fn card(run: &RunDir, x: &SampleRecord, area: f64) -> String {
    let mut c = format!("<div class=\"card\" data-row=\"{}\"", x.row);
    for m in METRICS {
        if let Some(v) = metric_of(x, m) {
            let _ = write!(c, " data-{m}=\"{v}\"");
        }
    }
    let _ = write!(c, ">\n<div class=\"head\">{}</div><p class=\"instr\">{}</p>", head(x), esc(&x.instruction));
    let boxes = find_boxes(&x.reasoning);
    c += "<div class=\"imgs\">";
    c += &figure(&embed(run.dir(), x.original.as_deref()), "source", &boxes, area);
    c += &figure(&embed(run.dir(), x.edited.as_deref()), "edit", &[], area);
    if x.gt.is_some() {
        c += &figure(&embed(run.dir(), x.gt.as_deref()), "ground truth", &[], area);
    }
    c += "</div>";
    c += &scores_table(&[("", x)]);
    if let Some(e) = &x.error {
        let _ = write!(c, "<p class=\"neg\">error: {}</p>", esc(e));
    }
    if !x.reasoning.trim().is_empty() {
        let _ = write!(c, "<div>reasoning ({} boxes):</div><pre>{}</pre>", boxes.len(), esc(&x.reasoning));
    }
    if !x.judge_reasons.is_empty() || !x.judge_replies.is_empty() {
        let text = x.judge_reasons.iter().chain(&x.judge_replies).map(|r| esc(r)).collect::<Vec<_>>().join("\n\n");
        let _ = write!(c, "<details><summary>judge reasons and replies</summary><pre>{text}</pre></details>");
    }
    c + "</div>\n"
}

/// A table with a column per metric and a row per (name, sample).
pub(crate) fn scores_table(rows: &[(&str, &SampleRecord)]) -> String {
    let mut t = String::from("<table class=\"scores\"><tr><th></th>");
    for m in METRICS {
        let _ = write!(t, "<th>{m}</th>");
    }
    t += "</tr>";
    for (name, x) in rows {
        let _ = write!(t, "<tr><td>{}</td>", esc(name));
        for m in METRICS {
            let _ = write!(t, "<td>{}</td>", score(metric_of(x, m)));
        }
        t += "</tr>";
    }
    t + "</table>"
}

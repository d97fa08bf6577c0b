//! `report.html` and the comparison page: one self-contained HTML file each (images as `data:` URLs, inline CSS and
//! script, histograms as inline SVG; the page's Content-Security-Policy forbids any other fetch), readable offline.
//! [`write_report`] renders a run directory's gallery, tables and histograms into `RUN_DIR/report.html`;
//! [`write_compare`] renders two runs side by side with per-sample score differences.
mod compare;
mod gallery;
mod html;
mod images;
mod svg;
mod tables;

use std::path::{Path, PathBuf};

use earl_core::{Error, Result};

use crate::rundir::RunDir;

/// The report's file name inside a run directory.
pub const REPORT_FILE: &str = "report.html";

/// The reference's model-input area (65636, its typo kept): the pixel space of the boxes in the reasoning, unless
/// the manifest records another (`input_area` or `settings.input_area`).
pub const DEFAULT_INPUT_AREA: f64 = 65636.0;

/// Renders `RUN_DIR/report.html` and returns its path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    let run = RunDir::open(run_dir)?;
    let html = gallery::render(&run)?;
    let out = run_dir.join(REPORT_FILE);
    earl_core::fsio::write_atomic(&out, html.as_bytes())?;
    Ok(out)
}

/// Renders the comparison of `run_a` and `run_b` (matched by benchmark and row) into `out` and returns it.
pub fn write_compare(run_a: &Path, run_b: &Path, out: &Path) -> Result<PathBuf> {
    let (a, b) = (RunDir::open(run_a)?, RunDir::open(run_b)?);
    let html = compare::render(&a, &b)?;
    earl_core::fsio::write_atomic(out, html.as_bytes())?;
    Ok(out.to_path_buf())
}

/// The model-input area the run used (see [`DEFAULT_INPUT_AREA`]).
fn input_area(manifest: &serde_json::Value) -> f64 {
    let get = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_f64).filter(|a| *a > 0.0);
    get(manifest.get("input_area"))
        .or_else(|| get(manifest.get("settings").and_then(|s| s.get("input_area"))))
        .unwrap_or(DEFAULT_INPUT_AREA)
}

/// The histogram of one metric in a `<figure>`; a plotting failure names the run.
fn histogram(metric: &str, values: &[f64], dir: &Path) -> Result<String> {
    let svg = svg::histogram(metric, values)
        .map_err(|msg| Error::Data { path: dir.to_path_buf(), msg: format!("histogram of {metric}: {msg}") })?;
    Ok(format!("<figure class=\"hist\">{svg}</figure>"))
}

/// Writes `text` next to `path` and renames it over, so that a reader never sees half a report.
#[cfg(test)]
mod chromium;
#[cfg(test)]
pub(crate) mod testdata;
#[cfg(test)]
mod tests;

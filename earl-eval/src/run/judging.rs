//! A judge's verdict on a sample record, and `earl eval judge RUN_DIR`: scoring a run's saved edits again without
//! regenerating them. Re-scoring reads each sample's `original`, `edited` and `gt` PNGs, asks the judge, replaces
//! the scores, replies and judge error of every sample that has images (the others keep their error), and rewrites
//! `samples.jsonl` atomically, so an interrupted re-score leaves the old file whole. The manifest's judge entry and
//! fingerprint follow, so a later `earl eval run` into the directory resumes with the same judge only.
use std::path::Path;

use earl_core::imageproc::{load_rgb, LoadLimits};
use earl_core::{Error, Result};
use image::RgbImage;
use serde_json::Value;

use super::dir::{write_report_hook, RunDir};
use super::record::{SampleRecord, Summary};
use super::summary::summarize;
use super::Progress;
use crate::judge::{Judge, JudgeInput, Verdict};

/// Writes `v` onto `rec`: scores (none when the verdict is excluded from the means), sub-scores, replies, reasons,
/// and the judge's error.
pub fn apply_verdict(rec: &mut SampleRecord, v: Verdict) {
    let keep = |x: f64| (!v.excluded).then_some(x);
    let keep_opt = |x: Option<f64>| if v.excluded { None } else { x };
    rec.vie_sc = keep(v.vie_sc);
    rec.vie_pq = keep(v.vie_pq);
    rec.vie_all = keep(v.vie_all);
    rec.edit_success = keep_opt(v.edit_success);
    rec.overediting = keep_opt(v.overediting);
    rec.naturalness = keep_opt(v.naturalness);
    rec.artifacts = keep_opt(v.artifacts);
    rec.judge_replies = v.replies;
    rec.judge_reasons = v.reasons;
    rec.judge_failed = v.error.is_some();
    rec.judge_error = v.error;
    rec.judged = true;
}

/// The judge manifest without what may change between two runs of one judge (endpoint, timeouts, attempts, key):
/// the judge's part of the fingerprint.
pub fn judge_fingerprint(manifest: &Value) -> Value {
    let mut m = manifest.clone();
    if let Some(o) = m.as_object_mut() {
        for k in ["url", "timeout_s", "authorization", "max_attempts"] {
            o.remove(k);
        }
    }
    m
}

fn load(dir: &RunDir, rel: &Option<String>) -> Result<Option<RgbImage>> {
    rel.as_ref().map(|r| load_rgb(&dir.path().join(r), &LoadLimits::default())).transpose()
}

/// Re-scores every sample of the run directory `out` with `judge`, in batches of `batch` samples.
pub fn judge_run_with(out: &Path, judge: &dyn Judge, batch: usize, progress: &mut dyn Progress) -> Result<Summary> {
    let (dir, mut manifest) = RunDir::open_existing(out)?;
    let mut samples = dir.load_samples()?;
    progress.start(samples.len(), 0);
    let mut i = 0;
    while i < samples.len() {
        let end = (i + batch.max(1)).min(samples.len());
        let mut images = Vec::new();
        for r in &samples[i..end] {
            images.push((load(&dir, &r.original)?, load(&dir, &r.edited)?, load(&dir, &r.gt)?));
        }
        let idx: Vec<usize> = (i..end).filter(|&k| images[k - i].0.is_some() && images[k - i].1.is_some()).collect();
        let inputs: Vec<JudgeInput<'_>> = idx
            .iter()
            .map(|&k| {
                let (o, e, g) = &images[k - i];
                JudgeInput {
                    instruction: &samples[k].instruction,
                    original: o.as_ref().expect("filtered"),
                    edited: e.as_ref().expect("filtered"),
                    ground_truth: g.as_ref(),
                    extra: &samples[k].extra,
                }
            })
            .collect();
        let verdicts = judge.judge_batch(&inputs)?;
        if verdicts.len() != idx.len() {
            return Err(Error::Input(format!("the judge returned {} verdicts for {}", verdicts.len(), idx.len())));
        }
        drop(inputs);
        for (k, v) in idx.into_iter().zip(verdicts) {
            apply_verdict(&mut samples[k], v);
        }
        for r in &samples[i..end] {
            progress.sample(r);
        }
        i = end;
    }
    dir.rewrite_samples(&samples)?;
    let jm = judge.manifest();
    dir.set_judge(&mut manifest, &jm, &judge_fingerprint(&jm))?;
    let benchmark = manifest["benchmark"].as_str().unwrap_or_default().to_string();
    let summary = summarize(&benchmark, &samples, manifest);
    dir.write_summary(&summary)?;
    write_report_hook(&dir, &summary, &samples)?;
    Ok(summary)
}

//! The aggregates of `summary.json`, as the reference's `baselines/gen_viescore.py` computes them: per metric the
//! mean and the population standard deviation (numpy's default `std`, ddof 0) over every sample that has a value,
//! overall and grouped by `source`, by task and by both (`SOURCE/TASK`; a sample without one is `unknown` there, as
//! in the reference). A grouping appears only when the benchmark has that column. What "has a value" means follows
//! the judge's mode: a failure in `reference` mode is 0 everywhere and counted; in `retry` mode it has no value and
//! is left out; a one-element score list leaves its second sub-score out. The paper's number is `vie_all`'s mean.
use std::collections::BTreeMap;

use super::record::{MeanStd, MetricTable, SampleRecord, Summary};

/// The metrics, in the order of the paper's columns.
pub const METRICS: [&str; 7] =
    ["vie_all", "vie_sc", "vie_pq", "edit_success", "overediting", "naturalness", "artifacts"];

/// A sample's value of `metric` (one of [`METRICS`]).
pub fn metric(r: &SampleRecord, metric: &str) -> Option<f64> {
    match metric {
        "vie_all" => r.vie_all,
        "vie_sc" => r.vie_sc,
        "vie_pq" => r.vie_pq,
        "edit_success" => r.edit_success,
        "overediting" => r.overediting,
        "naturalness" => r.naturalness,
        "artifacts" => r.artifacts,
        _ => None,
    }
}

/// Mean and population std of `values`; all zeros (count 0) when empty.
pub fn mean_std(values: &[f64]) -> MeanStd {
    if values.is_empty() {
        return MeanStd::default();
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    MeanStd { mean, std: var.sqrt(), count: values.len() }
}

/// Every metric over `samples`. A metric no sample has is left out.
pub fn metric_table<'a>(samples: impl Iterator<Item = &'a SampleRecord> + Clone) -> MetricTable {
    METRICS
        .iter()
        .filter_map(|&m| {
            let v: Vec<f64> = samples.clone().filter_map(|r| metric(r, m)).collect();
            (!v.is_empty()).then(|| (m.to_string(), mean_std(&v)))
        })
        .collect()
}

fn grouped(samples: &[SampleRecord], key: impl Fn(&SampleRecord) -> String) -> BTreeMap<String, MetricTable> {
    let mut names: Vec<String> = samples.iter().map(&key).collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|g| (g.clone(), metric_table(samples.iter().filter(|r| key(r) == g)))).collect()
}

/// `summary.json` of `samples` (in evaluation order) with `manifest`.
pub fn summarize(benchmark: &str, samples: &[SampleRecord], manifest: serde_json::Value) -> Summary {
    let unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
    let has_source = samples.iter().any(|r| r.source.is_some());
    let has_task = samples.iter().any(|r| r.task.is_some());
    let mut groups = BTreeMap::new();
    if has_source {
        groups.insert("source".to_string(), grouped(samples, |r| unknown(&r.source)));
    }
    if has_task {
        groups.insert("task".to_string(), grouped(samples, |r| unknown(&r.task)));
    }
    if has_source && has_task {
        groups.insert(
            "source_task".to_string(),
            grouped(samples, |r| format!("{}/{}", unknown(&r.source), unknown(&r.task))),
        );
    }
    Summary {
        benchmark: benchmark.to_string(),
        n: samples.len(),
        metrics: metric_table(samples.iter()),
        groups,
        judge_failures: samples.iter().filter(|r| r.judge_failed).count(),
        invalid_images: samples.iter().filter(|r| !r.valid_image && r.edited.is_some()).count(),
        errors: samples.iter().filter(|r| r.edited.is_none()).count(),
        unjudged: samples.iter().filter(|r| r.edited.is_some() && !r.judged).count(),
        manifest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(source: &str, task: Option<&str>, sc: f64, pq: f64, sub2: Option<f64>) -> SampleRecord {
        SampleRecord {
            source: Some(source.into()),
            task: task.map(String::from),
            vie_sc: Some(sc),
            vie_pq: Some(pq),
            vie_all: Some((sc * pq).sqrt()),
            edit_success: Some(sc),
            overediting: sub2,
            naturalness: Some(pq),
            artifacts: sub2,
            valid_image: true,
            edited: Some("e.png".into()),
            judged: true,
            ..Default::default()
        }
    }

    #[test]
    fn means_and_population_stds_by_hand() {
        // SC 2, 8, 5 → mean 5, population variance (9 + 9 + 0) / 3 = 6. PQ 8, 2, 5 → the same.
        // Overall √16 = 4, √16 = 4, √25 = 5 → mean 13/3, variance ((1/3)² + (1/3)² + (2/3)²) / 3 = 2/9.
        let mut fail = rec("b", None, 0.0, 0.0, Some(0.0));
        fail.judge_failed = true;
        fail.valid_image = false;
        let samples = vec![rec("a", Some("t"), 2.0, 8.0, Some(6.0)), rec("a", Some("u"), 8.0, 2.0, None), {
            let mut r = rec("b", Some("t"), 5.0, 5.0, Some(4.0));
            r.vie_all = Some(5.0);
            r
        }];
        let s = summarize("x", &samples, serde_json::Value::Null);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let m = &s.metrics;
        assert!(close(m["vie_sc"].mean, 5.0) && close(m["vie_sc"].std, 6f64.sqrt()) && m["vie_sc"].count == 3);
        assert!(close(m["vie_all"].mean, 13.0 / 3.0) && close(m["vie_all"].std, (2.0f64 / 9.0).sqrt()));
        // A one-element list's second sub-score is left out: overediting over 6 and 4 only.
        assert!(close(m["overediting"].mean, 5.0) && close(m["overediting"].std, 1.0) && m["overediting"].count == 2);
        assert!(
            close(s.groups["source"]["a"]["vie_sc"].mean, 5.0) && close(s.groups["source"]["a"]["vie_sc"].std, 3.0)
        );
        assert_eq!(s.groups["task"]["t"]["vie_pq"].count, 2);
        assert!(close(s.groups["source_task"]["b/t"]["vie_all"].mean, 5.0));

        // A reference-mode failure is 0 and counted; a sample without a task groups as `unknown`.
        let mut with_fail = samples.clone();
        with_fail.push(fail);
        let s = summarize("x", &with_fail, serde_json::Value::Null);
        assert!(close(s.metrics["vie_sc"].mean, 15.0 / 4.0) && s.metrics["vie_sc"].count == 4);
        assert_eq!((s.judge_failures, s.invalid_images, s.n), (1, 1, 4));
        assert_eq!(s.groups["source_task"]["b/unknown"]["vie_sc"].count, 1);

        // No source, no task: no groups.
        let plain: Vec<SampleRecord> =
            samples.iter().map(|r| SampleRecord { source: None, task: None, ..r.clone() }).collect();
        assert!(summarize("x", &plain, serde_json::Value::Null).groups.is_empty());
        assert_eq!(mean_std(&[]), MeanStd::default());
    }
}

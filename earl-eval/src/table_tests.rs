//! The table's arithmetic on small numbers checked by hand, its column order, and its refusals.
use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::run::{MeanStd, Summary};
use crate::rundir::{read_summary, RunIdentity, RunSummary};

fn run(dir: &str, label: &str, bench: &str, seed: u64, overall: f64) -> RunSummary {
    let stat = MeanStd { mean: overall, std: 0.0, count: 4 };
    let summary = Summary {
        benchmark: bench.into(),
        n: 4,
        metrics: [("vie_all".to_string(), stat), ("vie_sc".to_string(), MeanStd { mean: overall / 2.0, ..stat })]
            .into(),
        ..Summary::default()
    };
    let identity = RunIdentity { label: Some(label.into()), model: format!("hash-{label}") };
    RunSummary { dir: PathBuf::from(dir), summary, identity, seed: Some(seed) }
}

fn earl_and_base() -> Vec<RunSummary> {
    vec![
        run("a1", "EARL", "omniedit", 1, 6.0),
        run("a2", "EARL", "omniedit", 2, 7.0),
        run("a3", "EARL", "omniedit", 3, 8.0),
        run("b1", "EARL", "emuedit", 1, 4.0),
        run("b2", "EARL", "emuedit", 2, 4.0),
        run("b3", "EARL", "emuedit", 3, 7.0),
        run("c1", "base", "omniedit", 1, 3.25),
    ]
}

#[test]
fn seeds_aggregate_to_mean_and_sample_std_and_the_average_is_unweighted() {
    let t = build(&earl_and_base(), "vie_all").unwrap();
    assert_eq!(t.benchmarks, ["omniedit", "emuedit"]);
    let earl = &t.rows[0];
    // omniedit: (6 + 7 + 8) / 3 = 7; sample std √((1 + 0 + 1) / 2) = 1.
    assert_eq!(earl.cells["omniedit"], Cell { mean: 7.0, spread: Some(1.0), seeds: 3 });
    // emuedit: (4 + 4 + 7) / 3 = 5; √((1 + 1 + 4) / 2) = √3.
    assert_eq!(earl.cells["emuedit"].mean, 5.0);
    assert!((earl.cells["emuedit"].spread.unwrap() - 3f64.sqrt()).abs() < 1e-12);
    // Average (7 + 5) / 2 = 6; per seed (6+4)/2 = 5, (7+4)/2 = 5.5, (8+7)/2 = 7.5 → √((1 + 0.25 + 2.25) / 2) = √1.75.
    let avg = earl.average.as_ref().unwrap();
    assert_eq!(avg.mean, 6.0);
    assert!((avg.spread.unwrap() - 1.75f64.sqrt()).abs() < 1e-12);
    // One seed: no spread; a row without every column has no average.
    assert_eq!(t.rows[1].cells["omniedit"], Cell { mean: 3.25, spread: None, seeds: 1 });
    assert!(t.rows[1].average.is_none());

    let md = t.markdown();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "| run | omniedit | emuedit | average (unweighted mean of the 2 benchmarks shown) |");
    assert_eq!(lines[2], "| EARL | 7.00 ± 1.00 (n=3) | 5.00 ± 1.73 (n=3) | 6.00 ± 1.32 (n=3) |");
    assert_eq!(lines[3], "| base | 3.25 | — | — |");
    assert!(md.contains("sample standard deviation over seeds"), "{md}");

    let csv = t.csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "run,model,metric,omniedit,omniedit_spread,omniedit_seeds,emuedit,emuedit_spread,emuedit_seeds,average,\
         average_spread,average_seeds"
    );
    assert_eq!(lines[1], "EARL,hash-EARL,vie_all,7.0000,1.0000,3,5.0000,1.7321,3,6.0000,1.3229,3");
    assert_eq!(lines[2], "base,hash-base,vie_all,3.2500,,1,,,,,,");
}

#[test]
fn another_metric_reads_its_own_means() {
    let t = build(&earl_and_base(), parse_metric("sc").unwrap()).unwrap();
    assert_eq!(t.metric, "vie_sc");
    assert_eq!(t.rows[0].cells["omniedit"].mean, 3.5);
    assert_eq!(t.rows[1].cells["omniedit"].mean, 1.625);
    // No run has naturalness: every cell is missing and the summaries are named.
    let t = build(&earl_and_base(), "naturalness").unwrap();
    assert!(t.rows.iter().all(|r| r.cells.is_empty()));
    assert_eq!(t.notes.len(), 7);
    assert!(parse_metric("bleu").unwrap_err().to_string().contains("overall, sc, pq"));
    assert_eq!(parse_metric("overall").unwrap(), "vie_all");
    assert_eq!(parse_metric("artifacts").unwrap(), "artifacts");
}

#[test]
fn columns_follow_the_paper_then_the_mini_world_then_names() {
    let runs: Vec<RunSummary> = ["zeta", "mini-ood-test", "i2ebench", "aurora", "mini-s-test", "omniedit"]
        .iter()
        .enumerate()
        .map(|(i, b)| run(&format!("r{i}"), "m", b, 0, 1.0))
        .collect();
    let t = build(&runs, "vie_all").unwrap();
    assert_eq!(t.benchmarks, ["omniedit", "aurora", "i2ebench", "mini-s-test", "mini-ood-test", "zeta"]);
    assert_eq!(t.average_label(), "average (unweighted mean of the 6 benchmarks shown)");
    assert_eq!(t.rows[0].average.as_ref().unwrap().mean, 1.0);
}

#[test]
fn two_runs_of_one_model_benchmark_and_seed_are_refused() {
    let runs = vec![run("x", "m", "aurora", 5, 1.0), run("y", "m", "aurora", 5, 2.0)];
    let e = build(&runs, "vie_all").unwrap_err().to_string();
    assert!(e.contains("x and y are both m on aurora with seed 5"), "{e}");
}

#[test]
fn failures_are_noted_and_same_labels_of_different_models_are_told_apart() {
    let mut a = run("a", "sft", "aurora", 0, 1.0);
    a.summary.judge_failures = 2;
    let mut b = run("b", "sft", "aurora", 0, 2.0);
    b.identity.model = "other-model-hash".into();
    let t = build(&[a, b], "vie_all").unwrap();
    assert_eq!(t.rows.len(), 2);
    assert_eq!(t.rows[0].name, "sft (hash-sft)");
    assert_eq!(t.rows[1].name, "sft (other-model-)");
    assert_eq!(t.notes, ["a (aurora): 2 of 4 samples with judge failures, 0 invalid images"]);
}

#[test]
fn the_identity_comes_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let write = |manifest: serde_json::Value| {
        let s = Summary { benchmark: "aurora".into(), manifest, ..Summary::default() };
        std::fs::write(dir.path().join("summary.json"), serde_json::to_string(&s).unwrap()).unwrap();
        read_summary(dir.path()).unwrap()
    };
    let r = write(json!({"label": "EARL-RL", "model": {"path": "/m/earl", "sha256": "abc"}, "seed": 7}));
    assert_eq!(r.identity, RunIdentity { label: Some("EARL-RL".into()), model: "abc".into() });
    assert_eq!(r.seed, Some(7));
    let r = write(json!({"model_path": "/models/earl-sft"}));
    assert_eq!(r.identity.display(), "earl-sft");
    assert_eq!(r.seed, None);
    std::fs::write(dir.path().join("summary.json"), "{").unwrap();
    let e = read_summary(dir.path()).unwrap_err().to_string();
    assert!(e.contains("summary.json:1:1"), "{e}");
}

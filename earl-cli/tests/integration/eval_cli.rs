//! `earl eval` as a user runs it, over every benchmark adapter's fixture (fixtures/bench-tiny, written by
//! fixtures/gen_bench.py) with the tiny random bundle and a loopback VIEScore judge: each run writes the
//! run-directory contract (samples.jsonl, summary.json, report.html, the PNGs), the judge is asked exactly twice per
//! sample, a rerun does no work, and `earl eval table` / `compare` read the runs back. Tolerance-free: the judge's
//! scripted scores are small integers and the aggregates are checked against the arithmetic by hand.
use std::path::Path;

use crate::common::earl;

#[allow(dead_code)] // the shared server's helpers that these tests do not call
#[path = "../../../earl-eval/tests/integration/loopback.rs"]
mod loopback;

use loopback::{images_in, ok, serve};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The benchmarks with their fixture directories and, for `generic`, its columns.
const BENCHMARKS: &[(&str, &str, Option<&str>)] = &[
    ("omniedit", "omniedit", None),
    ("emuedit", "emuedit", None),
    ("aurora", "aurora", None),
    ("magicbrush", "magicbrush", None),
    ("vismin", "vismin", None),
    ("i2ebench", "i2ebench", None),
    ("generic", "generic/pairs.jsonl", Some("source=src,instruction=prompt,gt=target,task=kind,id=uid")),
];

/// `earl eval run` with settings that make the random 2-layer model write 4×4 grids quickly: area 1024 (32×32
/// pixels), a prefill that already opens the image, a small token cap.
fn eval_run(bench: &str, data: &str, columns: Option<&str>, url: &str, out: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = run_args(bench, data, columns, url, out, 3);
    args.extend(extra.iter().map(|a| a.to_string()));
    let (code, stdout, stderr) = earl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (code, format!("{stdout}{stderr}"))
}

/// The arguments of one `earl eval run` of these tests.
fn run_args(bench: &str, data: &str, columns: Option<&str>, url: &str, out: &Path, seed: u64) -> Vec<String> {
    let data = format!("fixtures/bench-tiny/{data}");
    let seed = seed.to_string();
    let mut args = vec![
        "eval",
        "run",
        "--benchmark",
        bench,
        "--data",
        &data,
        "--model",
        "fixtures/bundle-tiny",
        "--vq",
        "fixtures/vq-tiny",
        "--out",
        s(out),
        "--limit",
        "2",
        "--seed",
        &seed,
        "--area",
        "1024",
        "--judge-area",
        "1024",
        "--max-new-tokens",
        "40",
        "--device",
        "cpu",
        "--judge-url",
        url,
        "--judge-model",
        "loopback",
        "--mode",
        "text:<|image start|>{h}*{w}<|image token|>",
    ];
    if let Some(c) = columns {
        args.extend(["--columns", c]);
    }
    args.into_iter().map(String::from).collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn eval_run_over_every_adapter_writes_the_contract_and_the_table_reads_it() {
    // SC replies [8, 6] → SC 6; PQ replies [4] → PQ 4; overall √24.
    let server = serve(|_, req| {
        ok(if images_in(req) == 2 {
            r#"{"score": [8, 6], "reasoning": "r"}"#
        } else {
            r#"{"score": [4], "reasoning": "q"}"#
        })
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (bench, data, columns) in BENCHMARKS {
        let out = tmp.path().join(bench);
        let before = server.seen().len();
        let (code, log) = eval_run(bench, data, *columns, &server.url(), &out, &[]);
        assert_eq!(code, 0, "{bench}: {log}");
        let summary = json(&out.join("summary.json"));
        assert_eq!(summary["benchmark"], *bench);
        assert_eq!(summary["n"], 2, "{bench}: {summary}");
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("samples.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{bench}");
        let judged = lines.iter().filter(|r| r["judged"] == true).count();
        assert_eq!(server.seen().len() - before, 2 * judged, "{bench}: two requests per judged sample");
        for r in &lines {
            for key in ["row", "native_id", "instruction", "reasoning", "finish_reason", "valid_image", "seed"] {
                assert!(r.get(key).is_some(), "{bench}: {key} missing in {r}");
            }
            assert!(out.join(r["edited"].as_str().unwrap()).is_file(), "{bench}: edited PNG");
            assert!(out.join(r["original"].as_str().unwrap()).is_file(), "{bench}: original PNG");
            if r["judged"] == true && r["judge_failed"] == false {
                assert_eq!(r["vie_sc"], 6.0);
                assert_eq!(r["vie_pq"], 4.0);
                assert!((r["vie_all"].as_f64().unwrap() - 24f64.sqrt()).abs() < 1e-12);
                assert_eq!(r["edit_success"], 8.0);
                assert_eq!(r["overediting"], 6.0);
            }
        }
        if judged == 2 {
            let all = &summary["metrics"]["vie_all"];
            assert!((all["mean"].as_f64().unwrap() - 24f64.sqrt()).abs() < 1e-12, "{bench}: {all}");
            assert!(all["std"].as_f64().unwrap().abs() < 1e-12);
        }
        assert!(out.join("report.html").is_file(), "{bench}: report.html");
        runs.push(out);
    }
    // AURORA groups by its source column, the task benchmarks by task.
    assert!(json(&tmp.path().join("aurora/summary.json"))["groups"]["source"].is_object());
    assert!(json(&tmp.path().join("emuedit/summary.json"))["groups"]["task"].is_object());

    // A rerun finds every sample done: no request reaches the judge.
    let before = server.seen().len();
    let (code, log) = eval_run("aurora", "aurora", None, &server.url(), &runs[2], &[]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(server.seen().len(), before, "a finished run asks nothing again");

    // The table has one row and a column per benchmark; the average is labelled as unweighted.
    let md = tmp.path().join("table.md");
    let mut args = vec!["eval", "table", "--markdown", s(&md)];
    args.extend(runs.iter().map(|p| s(p)));
    let (code, stdout, stderr) = earl(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(table.contains("unweighted"), "{table}");
    let (code, stdout, stderr) =
        earl(&["eval", "compare", s(&runs[0]), s(&runs[0]), "--out", s(&tmp.path().join("c.html"))]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_run_directory_of_another_config_is_refused_unless_forced() {
    let server = serve(|_, _| ok(r#"{"score": [5], "reasoning": "r"}"#));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (code, log) = eval_run("magicbrush", "magicbrush", None, &server.url(), &out, &[]);
    assert_eq!(code, 0, "{log}");
    let (code, log) = eval_run("magicbrush", "magicbrush", None, &server.url(), &out, &["--top-k", "5"]);
    assert_ne!(code, 0, "a changed setting must not reuse the directory: {log}");
    assert_eq!(log.trim().lines().filter(|l| l.starts_with("Error") || l.contains("error")).count(), 1, "{log}");
    assert!(log.contains("--force"), "{log}");
    let (code, log) = eval_run("magicbrush", "magicbrush", None, &server.url(), &out, &["--top-k", "5", "--force"]);
    assert_eq!(code, 0, "{log}");
    // Re-judging a VIEScore run needs the endpoint again (only mini runs have a built-in judge).
    let (code, _, err) = earl(&["eval", "judge", s(&out)]);
    assert_eq!(code, 2);
    assert!(err.contains("magicbrush run is judged by VIEScore, which needs --judge-url"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn bad_benchmark_input_is_one_line_and_an_unreadable_image_is_a_sample_record() {
    let server = serve(|_, _| ok(r#"{"score": [5], "reasoning": "r"}"#));
    let tmp = tempfile::tempdir().unwrap();
    for (bench, data, columns, needle) in [
        ("nosuch", "aurora", None, "unknown benchmark \"nosuch\""),
        ("generic", "generic/pairs.jsonl", Some("source=nope,instruction=prompt"), "nope"),
        ("emuedit", "bad/emuedit-renamed", None, "no column \"instruction\""),
        ("emuedit", "bad/emuedit-empty", None, "empty benchmark"),
    ] {
        let (code, log) = eval_run(bench, data, columns, &server.url(), &tmp.path().join(bench), &[]);
        assert_ne!(code, 0, "{bench}: {log}");
        let err: Vec<&str> = log.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(err.len(), 1, "{bench}: {log}");
        assert!(err[0].contains(needle), "{bench}: {log}");
    }
    // The graph engine on a CPU is one line naming what it needs, before any sample runs.
    let out = tmp.path().join("graph");
    let (code, log) = eval_run("aurora", "aurora", None, &server.url(), &out, &["--engine", "graph"]);
    let err: Vec<&str> = log.lines().filter(|l| l.starts_with("error")).collect();
    assert!(code != 0 && err.len() == 1 && err[0].contains("the graph engine needs CUDA"), "{log}");
    assert!(!out.join("samples.jsonl").exists(), "{log}");
    // An image that does not decode fails its sample only: the run completes and the record says why.
    let out = tmp.path().join("badimage");
    let (code, log) = eval_run("aurora", "bad/aurora-badimage", None, &server.url(), &out, &[]);
    assert_eq!(code, 0, "{log}");
    let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let bad: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|r| r["row"] == 1).collect();
    assert_eq!(bad.len(), 1, "{text}");
    assert!(bad[0]["error"].as_str().unwrap().contains("column \"input\""), "{}", bad[0]);
}

/// The records of a run without their timings (a regenerated sample is the same sample, not the same duration).
fn untimed_samples(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("samples.jsonl")).unwrap();
    let mut recs: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for r in &mut recs {
        r["generate_s"] = serde_json::json!(0.0);
    }
    recs.sort_by_key(|r| r["row"].as_u64());
    recs
}

#[test]
fn kill_9_after_a_sample_loses_nothing_finished_and_the_rerun_matches_an_uninterrupted_run() {
    use std::os::unix::process::ExitStatusExt;
    let server = serve(|_, req| ok(if images_in(req) == 2 { r#"{"score": [7, 5]}"# } else { r#"{"score": [6]}"# }));
    let tmp = tempfile::tempdir().unwrap();
    let (killed, whole) = (tmp.path().join("killed"), tmp.path().join("whole"));
    let url = server.url();
    let args = |out: &Path| run_args("magicbrush", "magicbrush", None, &url, out, 9);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_earl"))
        .args(args(&killed))
        .current_dir(&root)
        .env("EARL_FAULT", "sample-0")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert_eq!(o.status.signal(), Some(9), "EARL_FAULT=sample-0 must SIGKILL: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(untimed_samples(&killed).len(), 1, "the sample written before the kill survives");
    let asked = server.seen().len();
    let a = args(&killed);
    let (code, out, err) = earl(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.seen().len() - asked, 2, "the rerun judges only the unfinished sample");
    let b = args(&whole);
    let (code, out, err) = earl(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(untimed_samples(&killed), untimed_samples(&whole), "interrupted + resumed = uninterrupted");
}

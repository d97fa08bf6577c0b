//! `earl eval run` end to end on the CPU with the tiny fixture bundle (random weights), a test-local benchmark of a
//! few in-memory rows and the scripted loopback judge: the run directory's files, samples keyed by (seed, row)
//! whatever the order, `--limit` or resume, resume after a torn last line, refusal of a foreign directory (and
//! `--force`), a run whose every image is invalid, unreadable rows, and `earl eval judge` re-scoring.
use std::path::{Path, PathBuf};

use earl_core::{Error, Result};
use earl_eval::bench::{BenchRow, BenchmarkSource};
use earl_eval::judge::{Judge, JudgeMode, VieScoreJudge, VieScoreJudgeOptions};
use earl_eval::run::{self, EvalConfig, NoProgress, RawEvalConfig, SampleRecord, Summary};
use image::{Rgb, RgbImage};
use serde_json::{json, Value};

use crate::loopback::{images_in, ok, serve, Server};

/// Rows 0..n of 32×32 images in distinct colours; `unreadable` rows fail to read.
struct MemBench {
    n: usize,
    selection: Vec<usize>,
    unreadable: Vec<usize>,
}

impl MemBench {
    fn new(selection: Vec<usize>) -> Self {
        MemBench { n: 6, selection, unreadable: vec![] }
    }
}

impl BenchmarkSource for MemBench {
    fn name(&self) -> &str {
        "mem"
    }
    fn dataset_len(&self) -> usize {
        self.n
    }
    fn selection(&self) -> &[usize] {
        &self.selection
    }
    fn read(&self, row: usize) -> Result<BenchRow> {
        if self.unreadable.contains(&row) {
            return Err(Error::Input(format!("mem: row {row}, column image: not an image")));
        }
        let c = (row * 40) as u8;
        Ok(BenchRow {
            row,
            native_id: json!(format!("id-{row}")),
            instruction: format!("make it blue {row}"),
            source_image: RgbImage::from_fn(32, 32, |x, y| Rgb([c, (x * 8) as u8, (y * 8) as u8])),
            ground_truth: Some(RgbImage::from_pixel(32, 32, Rgb([0, 0, 255]))),
            task: Some(if row.is_multiple_of(2) { "color" } else { "style" }.into()),
            source: None,
            extra: Value::Null,
        })
    }
    fn manifest(&self) -> Value {
        json!({ "rows": self.n })
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Area 1024 (32×32 pixels → a 4×4 grid at spatial factor 8): about 25 new tokens per edit. The random model
/// would rarely open an image after mode E's `<|image start|>h*w`, so the prefill also holds the image token: the
/// grid constraint then makes every edit a full grid unless the token cap cuts it.
fn config(seed: u64, max_new_tokens: usize) -> EvalConfig {
    let raw = RawEvalConfig {
        benchmark: Some("mem".into()),
        data: Some("fixtures".into()),
        model: Some("fixtures/bundle-tiny".into()),
        vq: Some("fixtures/vq-tiny".into()),
        device: Some("cpu".into()),
        seed: Some(seed),
        mode: Some("text:<|image start|>{h}*{w}<|image token|>".into()),
        area: Some(1024),
        judge_area: Some(1024),
        max_new_tokens: Some(max_new_tokens),
        ..Default::default()
    };
    EvalConfig::from_raw(raw, &root()).unwrap()
}

fn judge_server() -> Server {
    serve(|_, req| {
        ok(if images_in(req) == 2 {
            r#"{"score": [8, 6], "reasoning": "blue"}"#
        } else {
            r#"{"score": [4], "reasoning": "ok"}"#
        })
    })
}

fn judge(server: &Server) -> VieScoreJudge {
    let mut o = VieScoreJudgeOptions::new(server.url(), "judge-model");
    o.mode = JudgeMode::Reference;
    VieScoreJudge::new(o)
}

fn run_on(cfg: &EvalConfig, bench: &MemBench, judge: Option<&dyn Judge>, out: &Path, force: bool) -> Result<Summary> {
    run::run_eval_on(cfg, bench, judge, out, force, &mut NoProgress)
}

/// A record without its timing (a regenerated sample is the same sample, not the same duration).
fn untimed(recs: &[SampleRecord]) -> Vec<SampleRecord> {
    recs.iter().map(|r| SampleRecord { generate_s: 0.0, ..r.clone() }).collect()
}

fn samples(out: &Path) -> Vec<SampleRecord> {
    let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_run_writes_the_contract_and_samples_are_keyed_by_seed_and_row() {
    let (server, tmp) = (judge_server(), tempfile::tempdir().unwrap());
    let (cfg, j) = (config(3, 60), judge(&server));
    let out = tmp.path().join("run");
    let s = run_on(&cfg, &MemBench::new(vec![4, 1, 2]), Some(&j), &out, false).unwrap();
    let recs = samples(&out);
    assert_eq!(recs.iter().map(|r| r.row).collect::<Vec<_>>(), [4, 1, 2], "selection order");
    assert_eq!(server.seen().len(), 6, "two judge requests per sample");
    for r in &recs {
        assert_eq!((r.benchmark.as_str(), r.seed, r.native_id.clone()), ("mem", 3, json!(format!("id-{}", r.row))));
        assert!(r.valid_image && r.grid == Some([4, 4]) && r.finish_reason == "eos", "{r:?}");
        for p in [&r.original, &r.edited, &r.gt] {
            let img = image::open(out.join(p.as_ref().unwrap())).unwrap();
            assert_eq!((img.width(), img.height()), (32, 32));
        }
        assert_eq!((r.vie_sc, r.vie_pq, r.vie_all), (Some(6.0), Some(4.0), Some(24f64.sqrt())));
        assert_eq!((r.overediting, r.artifacts), (Some(6.0), None));
        assert_eq!(r.judge_reasons, ["blue", "ok"]);
        assert!(r.judged && !r.judge_failed && !r.prompt_ids.is_empty() && r.max_new_tokens == 60);
    }
    assert_eq!((s.n, s.judge_failures, s.invalid_images, s.errors), (3, 0, 0, 0));
    assert_eq!((s.metrics["vie_all"].mean, s.metrics["vie_all"].std), (24f64.sqrt(), 0.0));
    assert!(!s.metrics.contains_key("artifacts"), "no sample has a second PQ score");
    assert_eq!(s.groups["task"]["color"]["vie_sc"].count, 2);
    assert!(!s.groups.contains_key("source"));
    let on_disk: Summary = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(on_disk, s);
    let m = &s.manifest;
    assert_eq!(
        (m["seed"].clone(), m["settings"]["area"].clone(), m["judge"]["model"].clone()),
        (json!(3), json!(1024), json!("judge-model"))
    );
    assert!(m["model"]["files"]["model.safetensors"]["sha256"].as_str().unwrap().len() == 64);

    // Row 1 alone, in another directory: the same tokens (its stream is (seed 3, row 1), not its position).
    let out2 = tmp.path().join("alone");
    run_on(&cfg, &MemBench::new(vec![1]), None, &out2, false).unwrap();
    assert_eq!(samples(&out2)[0].generated_ids, recs[1].generated_ids);
    assert_ne!(recs[0].generated_ids, recs[1].generated_ids);
}

#[test]
fn a_rerun_resumes_after_a_torn_line_and_never_mixes_runs() {
    let (server, tmp) = (judge_server(), tempfile::tempdir().unwrap());
    let (cfg, j) = (config(0, 60), judge(&server));
    let out = tmp.path().join("run");
    let bench = MemBench::new(vec![0, 1, 2]);
    run_on(&EvalConfig { limit: Some(2), ..cfg.clone() }, &bench, Some(&j), &out, false).unwrap();
    let first = samples(&out);
    assert_eq!(first.len(), 2);
    // A kill during the second append: its line is torn.
    let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let cut = text.find('\n').unwrap() + 1 + 40;
    std::fs::write(out.join("samples.jsonl"), &text[..cut]).unwrap();
    let before = server.seen().len();
    let s = run_on(&cfg, &bench, Some(&j), &out, false).unwrap();
    let recs = samples(&out);
    assert_eq!(recs.iter().map(|r| r.row).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(untimed(&recs[..2]), untimed(&first), "the regenerated row 1 is the same sample");
    assert_eq!((server.seen().len() - before, s.n), (4, 3), "only rows 1 and 2 were judged again");
    // A complete run: nothing to do.
    run_on(&cfg, &bench, Some(&j), &out, false).unwrap();
    assert_eq!(samples(&out).len(), 3);

    // Another seed into the same directory: refused, naming what differs; --force starts over.
    let other = EvalConfig { seed: 9, ..cfg.clone() };
    let err = run_on(&other, &bench, Some(&j), &out, false).unwrap_err().to_string();
    assert!(err.contains("another model or config") && err.contains("settings") && err.contains("--force"), "{err}");
    assert_eq!(samples(&out), recs, "a refused run touches nothing");
    run_on(&EvalConfig { limit: Some(1), ..other }, &bench, Some(&j), &out, true).unwrap();
    let forced = samples(&out);
    assert_eq!((forced.len(), forced[0].seed), (1, 9));
    assert!(!out.join(recs[2].edited.as_ref().unwrap()).exists(), "the old run's images are gone");
}

#[test]
fn an_all_invalid_run_completes_and_unreadable_rows_are_recorded() {
    let (server, tmp) = (judge_server(), tempfile::tempdir().unwrap());
    let out = tmp.path().join("run");
    // Two new tokens cannot hold a 4×4 image: every completion is cut by the cap.
    let bench = MemBench { unreadable: vec![1], ..MemBench::new(vec![0, 1, 2]) };
    let s = run_on(&config(0, 2), &bench, Some(&judge(&server)), &out, false).unwrap();
    assert_eq!((s.n, s.invalid_images, s.errors, s.judge_failures), (3, 2, 1, 0));
    let recs = samples(&out);
    let bad = &recs[1];
    assert!(bad.error.as_deref().unwrap().contains("not an image") && bad.edited.is_none() && bad.vie_all.is_none());
    for r in [&recs[0], &recs[2]] {
        assert!(!r.valid_image && r.finish_reason == "length" && r.grid.is_none(), "{r:?}");
        let edited = image::open(out.join(r.edited.as_ref().unwrap())).unwrap().to_rgb8();
        assert!(edited.dimensions() == (256, 256) && edited.pixels().all(|p| p.0 == [255, 255, 255]));
        assert!(r.judged && r.vie_all.is_some(), "the white image is judged, as the reference does");
    }
    assert_eq!(server.seen().len(), 4);
}

#[test]
fn eval_judge_rescores_a_generate_only_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let bench = MemBench::new(vec![0, 1]);
    let s = run_on(&config(0, 60), &bench, None, &out, false).unwrap();
    assert_eq!((s.unjudged, s.metrics.len()), (2, 0));
    assert!(samples(&out).iter().all(|r| !r.judged && r.vie_all.is_none()));
    let server = judge_server();
    let s = run::judge_run_with(&out, &judge(&server), 4, &mut NoProgress).unwrap();
    assert_eq!((s.unjudged, s.n, server.seen().len()), (0, 2, 4));
    let recs = samples(&out);
    assert!(recs.iter().all(|r| r.judged && r.vie_sc == Some(6.0)));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["judge"]["model"], "judge-model");
    // The rescored directory resumes with that judge; without one it is another config.
    assert!(run_on(&config(0, 60), &bench, Some(&judge(&server)), &out, false).is_ok());
    assert!(run_on(&config(0, 60), &bench, None, &out, false).is_err());
}

//! The EARL-mini world in `earl eval`: the exact verifier through the [`Judge`] seam scores a sample's target ≈ 10
//! and its unchanged source low, and `run_eval` on `mini-s-test` with the tiny fixture bundle (random weights, CPU)
//! picks that verifier by itself when no judge URL is given, writing `samples.jsonl` and `summary.json`; RL's
//! `reward_compute_mini` builds it into the reward set.
use std::path::{Path, PathBuf};

use earl_eval::bench;
use earl_eval::judge::{Judge, JudgeInput};
use earl_eval::mini::{MiniJudge, MINI_JUDGE};
use earl_eval::run::{self, EvalConfig, RawEvalConfig, SampleRecord};
use image::RgbImage;
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_verifier_judges_targets_ten_and_sources_low() {
    for name in ["mini-s-test", "mini-c-test", "mini-ood-test"] {
        let b = bench::open(name, Path::new("unused"), None).unwrap();
        for row in 0..3 {
            let r = b.read(row).unwrap();
            let gt = r.ground_truth.clone().unwrap();
            // What the runner gives a judge: the source at another size as "original".
            let original = image::imageops::resize(&r.source_image, 256, 256, image::imageops::FilterType::Triangle);
            let input = |edited: &'static str, img: &RgbImage| -> earl_eval::Verdict {
                let i = JudgeInput {
                    instruction: &r.instruction,
                    original: &original,
                    edited: img,
                    ground_truth: Some(&gt),
                    extra: &r.extra,
                };
                let v = MiniJudge.judge_batch(&[i]).unwrap().pop().unwrap();
                assert!(v.error.is_none(), "{name} row {row} {edited}: {v:?}");
                v
            };
            let t = input("target", &gt);
            assert!(t.vie_all >= 9.5 && t.vie_sc >= 9.5 && t.artifacts == Some(10.0), "{name} {row}: {t:?}");
            // The target at 256×256 (nearest) reads back the same.
            let big = image::imageops::resize(&gt, 256, 256, image::imageops::FilterType::Nearest);
            assert_eq!(input("target 256", &big).vie_all, t.vie_all);
            let s = input("source", &r.source_image);
            assert!(s.vie_all <= 3.0 && s.vie_sc <= 3.0, "{name} {row}: {s:?}");
        }
    }
    let white = RgbImage::from_pixel(128, 128, image::Rgb([255, 255, 255]));
    let none =
        JudgeInput { instruction: "x", original: &white, edited: &white, ground_truth: None, extra: &Value::Null };
    let v = MiniJudge.judge_batch(&[none]).unwrap().pop().unwrap();
    assert!(v.error.as_deref().unwrap().contains("no scene data") && v.vie_all == 0.0, "{v:?}");
    assert_eq!(MiniJudge.name(), MINI_JUDGE);
}

/// 128×128 sources at area 16384: a 16×16 grid at vq-tiny's spatial factor 8. As in `eval_run`, the prefill holds
/// the image token so that the random model's completions are grids (cut by the token cap or not).
#[test]
fn run_eval_on_a_mini_split_uses_the_verifier_without_a_judge_url() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = RawEvalConfig {
        benchmark: Some("mini-s-test".into()),
        data: Some("seed=3".into()),
        model: Some("fixtures/bundle-tiny".into()),
        vq: Some("fixtures/vq-tiny".into()),
        device: Some("cpu".into()),
        limit: Some(2),
        mode: Some("text:<|image start|>{h}*{w}<|image token|>".into()),
        area: Some(128 * 128),
        judge_area: Some(128 * 128),
        max_new_tokens: Some(300),
        ..Default::default()
    };
    let cfg = EvalConfig::from_raw(raw, &root()).unwrap();
    assert!(cfg.judge.is_none());
    let out = tmp.path().join("run");
    let s = run::run_eval(&cfg, &out, false).unwrap();
    let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let recs: Vec<SampleRecord> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.iter().map(|r| r.row).collect::<Vec<_>>(), [0, 1]);
    for r in &recs {
        assert!(r.judged && r.vie_all.is_some() && r.edit_success.is_some(), "{r:?}");
        assert!(r.extra["source"]["objects"].is_array(), "the scene is kept for `earl eval judge`");
        assert_eq!(r.native_id, json!(format!("s-test/3/{}", r.row)));
    }
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(on_disk["manifest"]["judge"]["judge"], json!(MINI_JUDGE));
    assert_eq!((on_disk["manifest"]["data"]["seed"].clone(), on_disk["n"].clone()), (json!(3), json!(2)));
    assert_eq!((s.n, s.benchmark.as_str()), (2, "mini-s-test"));
}

/// `reward_compute_mini` builds the exact verifier into the RL reward set; without registered tasks it reads each
/// prompt's task off the source and ground-truth images.
#[test]
fn the_mini_reward_is_built_for_rl_and_scores_the_target_ten() {
    use earl_core::rl::config::RewardConfig;
    use earl_core::rl::{FinalReward, RewardInput};
    let cfg = RewardConfig {
        viescore: false,
        ground_score: false,
        token_agreement: false,
        pixel_similarity: false,
        mini: true,
        final_reward: FinalReward::parse("mini").unwrap(),
        verifier: Default::default(),
    };
    assert_eq!((cfg.enabled(), cfg.image_rewards(), cfg.needs_verifier()), (vec!["mini"], vec!["mini"], false));
    let verifier = earl_eval::VerifierConfig {
        api_base: String::new(),
        model: String::new(),
        api_key: String::new(),
        max_concurrency: 1,
        timeout_s: 1.0,
        max_attempts: 1,
        max_rounds: 1,
        on_unparsable: earl_eval::Unparsable::Error,
        viescore_sc_template: earl_eval::PromptSource::BuiltIn,
        viescore_pq_template: earl_eval::PromptSource::BuiltIn,
        ground_score_system_template: earl_eval::PromptSource::BuiltIn,
        ground_score_user_template: earl_eval::PromptSource::BuiltIn,
    };
    let set = earl_eval::reward_set(&cfg, &verifier).unwrap();
    assert_eq!(set.names(), ["mini"]);
    let r = bench::open("mini-s-test", Path::new("."), None).unwrap().read(0).unwrap();
    let gt = r.ground_truth.unwrap();
    let input = |predicted| RewardInput {
        instruction: &r.instruction,
        source: &r.source_image,
        predicted: Some(predicted),
        ground_truth: Some(&gt),
        predicted_codes: None,
        ground_truth_codes: None,
    };
    let out = set.score(&[input(&gt), input(&r.source_image)], &[true, true]).unwrap();
    assert_eq!(out[0].score, 10.0, "{out:?}");
    assert!(out[1].score <= 3.0, "{out:?}");
}

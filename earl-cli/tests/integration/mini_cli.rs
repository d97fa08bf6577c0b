//! `earl mini sample` and `earl mini score` as a user runs them: a split written to disk, its target scoring 10
//! and its source low, an image of another size resized first, and one-line errors for a bad split or sample.
use crate::common::earl;
use std::path::Path;

use earl_core::imageproc::{load_rgb, save, LoadLimits};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn score(sample: &Path, image: &Path) -> serde_json::Value {
    let (code, stdout, err) = earl(&["mini", "score", "--sample", s(sample), "--image", s(image)]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn sample_writes_the_files_and_score_judges_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let (code, stdout, err) =
        earl(&["mini", "sample", "--split", "c-test", "--seed", "4", "--count", "3", "--out", s(&out)]);
    assert_eq!(code, 0, "{stdout}{err}");
    for i in 0..3 {
        let d = out.join(i.to_string());
        for f in ["source.png", "target.png", "instruction.txt", "cot.txt", "scene.json"] {
            assert!(d.join(f).is_file(), "{}", d.join(f).display());
        }
        let scene: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("scene.json")).unwrap()).unwrap();
        assert_eq!(scene["split"], "c-test");
        assert!(
            scene["source"]["objects"].is_array()
                && scene["target"]["objects"].is_array()
                && scene["edit"]["kind"].is_string()
        );
        assert!(std::fs::read_to_string(d.join("cot.txt"))
            .unwrap()
            .starts_with("source_image_grounding_information: "));

        let t = score(&d, &d.join("target.png"));
        for k in ["sc", "pq", "overall", "edit_success", "overediting", "naturalness", "artifacts"] {
            assert!(t[k].is_number(), "{k}: {t}");
        }
        assert_eq!(t["overall"], 10.0, "{t}");
        let c = score(&d, &d.join("source.png"));
        assert!(c["sc"].as_f64().unwrap() <= 3.0, "{c}");
    }
    // The same (split, seed, index) gives the same files.
    let again = tmp.path().join("again");
    let (code, _, err) = earl(&[
        "mini",
        "sample",
        "--split",
        "c-test",
        "--seed",
        "4",
        "--count",
        "1",
        "--start",
        "2",
        "--out",
        s(&again),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(again.join("2/scene.json")).unwrap(), std::fs::read(out.join("2/scene.json")).unwrap());
    assert_eq!(std::fs::read(again.join("2/target.png")).unwrap(), std::fs::read(out.join("2/target.png")).unwrap());
}

#[test]
fn score_resizes_an_image_of_another_size() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let (code, _, err) = earl(&["mini", "sample", "--split", "s-test", "--count", "1", "--out", s(&out)]);
    assert_eq!(code, 0, "{err}");
    let d = out.join("0");
    let img = load_rgb(&d.join("target.png"), &LoadLimits::default()).unwrap();
    let big = tmp.path().join("big.png");
    save(&image::imageops::resize(&img, 384, 384, image::imageops::FilterType::Nearest), &big).unwrap();
    let (code, stdout, err) = earl(&["mini", "score", "--sample", s(&d), "--image", s(&big)]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("384×384 resized to 128×128"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["overall"], 10.0, "{v}");
}

#[test]
fn bad_splits_and_samples_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = earl(&["mini", "sample", "--split", "x-test", "--out", s(tmp.path())]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown split \"x-test\"") && err.lines().count() == 1, "{err}");
    let (code, _, err) = earl(&["mini", "score", "--sample", s(tmp.path()), "--image", "fixtures/images/photo.png"]);
    assert_eq!(code, 2);
    assert!(err.contains("scene.json") && err.lines().count() == 1, "{err}");
}

/// `earl mini data`: three samples through the tiny VQ into an `edits` dataset, 16×16 codes per image, with the
/// CoT only under `--cot`; a second run resumes (nothing new).
#[test]
fn data_writes_a_tokenized_split_with_the_cot_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &Path, cot: bool| {
        let mut args = vec!["mini", "data", "--split", "s-train", "--seed", "2", "--count", "3", "--vq"];
        args.extend(["fixtures/vq-tiny", "--device", "cpu", "--out", s(out)]);
        if cot {
            args.push("--cot");
        }
        let (code, stdout, err) = earl(&args);
        assert_eq!(code, 0, "{stdout}{err}");
        assert!(stdout.contains("3 records"), "{stdout}");
        let reader = earl_core::data::ShardReader::open(out).unwrap();
        (0..reader.len()).map(|i| reader.get(i).unwrap()).collect::<Vec<earl_core::data::EditRecord>>()
    };
    let think = tmp.path().join("think");
    let recs = run(&think, true);
    assert_eq!(run(&think, true), recs, "a rerun resumes");
    let plain = run(&tmp.path().join("plain"), false);
    for (i, (t, p)) in recs.iter().zip(&plain).enumerate() {
        let sample = earl_mini::Sample::generate(earl_mini::Split::STrain, 2, i as u64);
        assert_eq!((t.id.clone(), t.instruction.clone()), (format!("s-train-2-{i}"), sample.instruction.clone()));
        assert_eq!((t.source.h(), t.source.w(), t.edited.h(), t.edited.w()), (16, 16, 16, 16));
        assert_eq!(t.cot, sample.cot);
        assert!(p.cot.is_empty() && p.source == t.source && p.edited == t.edited);
        assert_eq!(t.meta["edit"], sample.edit.kind());
    }
}

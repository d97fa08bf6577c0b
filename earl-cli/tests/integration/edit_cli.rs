//! `earl edit` end to end on the tiny fixture bundle: an image comes out, the same seed reproduces it byte for
//! byte, another seed changes it, and the JSON sidecar records what a rerun needs.
use crate::common::root;
use std::path::Path;
use std::process::Command;

const HEADER_PREFILL: &str = "text:<|image start|>{h}*{w}<|image token|>";

fn edit(out: &Path, seed: u64, extra: &[&str]) -> (i32, String, String) {
    let seed = seed.to_string();
    let mut args = crate::common::FIXTURE_EDIT.to_vec();
    args.extend([
        "--image",
        "fixtures/bundle-tiny/example.png",
        "--instruction",
        "Make the roof blue",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        &seed,
        "--area",
        "16384",
    ]);
    if !extra.contains(&"--mode") {
        args.extend_from_slice(&["--mode", HEADER_PREFILL]);
    }
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_earl"))
        .args(&args)
        .current_dir(root())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn same_seed_same_bytes_other_seed_other_image() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a.png"), tmp.path().join("b.png"), tmp.path().join("c.png"));
    for (p, seed) in [(&a, 3), (&b, 3), (&c, 4)] {
        let (code, out, err) = edit(p, seed, &[]);
        assert_eq!(code, 0, "{out}{err}");
        // What the command chose is on stderr, not with the result; a model given by --model is not the default.
        assert!(err.contains("earl edit: device ") && !err.contains("the default bundle"), "{err}");
        assert!(!out.contains("earl edit: device"), "{out}");
    }
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(read(&a), read(&b));
    // The default engine (eager on a CPU, graph on CUDA) and the eager one give the same image.
    let d = tmp.path().join("d.png");
    let (code, out, err) = edit(&d, 3, &["--engine", "eager"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(read(&a), read(&d));
    assert_ne!(read(&a), read(&c));
    // 96×64 source at area 16384 → 157×105 px (aspect kept, no snap, as EARL) → the encoder floors: 19×13 codes,
    // decoded to 152×104.
    let img = image::open(&a).unwrap();
    assert_eq!((img.width(), img.height()), (152, 104));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.with_extension("json")).unwrap()).unwrap();
    assert_eq!(side["seed"], 3);
    assert!(side["engine"] == "eager" || side["engine"] == "graph", "{side}");
    assert_eq!(side["finish_reason"], "stop");
    assert_eq!(side["source_grid"], serde_json::json!([13, 19]));
    assert_eq!(side["token_ids"].as_array().unwrap().len(), 13 * 20 + 3);
    // No --max-new-tokens: the reference evaluation's 3000 (the bundle's 4096 positions leave room for it).
    assert_eq!(side["max_new_tokens"], 3000);
    assert!(side["timings_s"]["generate"].as_f64().unwrap() > 0.0);
}

#[test]
fn several_samples_and_invalid_results_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("e.png");
    let (code, stdout, err) = edit(&out, 0, &["--samples", "2"]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(out.exists() && tmp.path().join("e-1.png").exists() && tmp.path().join("e-1.json").exists());
    // E mode: the random model never writes the image token itself within a few tokens → no image, exit 2.
    let (code, stdout, err) = edit(&tmp.path().join("x.png"), 0, &["--mode", "E", "--max-new-tokens", "8"]);
    assert_eq!(code, 2, "{stdout}{err}");
    assert!(stdout.contains("no image: no <|image token|>"), "{stdout}");
    assert!(err.contains("no sample produced a valid image"), "{err}");
    let side = std::fs::read_to_string(tmp.path().join("x.json")).unwrap();
    assert!(side.contains("\"finish_reason\": \"length\""), "{side}");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = edit(&tmp.path().join("y.png"), 0, &["--mode", "XYZ"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown prefill") && err.trim_end().lines().count() == 1, "{err}");
    let (code, _, err) = edit(&tmp.path().join("g.png"), 0, &["--device", "cpu", "--engine", "graph"]);
    assert_eq!(code, 2);
    assert!(err.contains("the graph engine needs CUDA") && err.trim_end().lines().count() == 1, "{err}");
    assert!(!tmp.path().join("g.png").exists());
    let o = Command::new(env!("CARGO_BIN_EXE_earl"))
        .args(crate::common::FIXTURE_EDIT)
        .args(["--image", "nope.png"])
        .args(["--instruction", "x", "--out", "/tmp/z.png"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.png"));
}

#[test]
fn an_unwritable_output_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, stdout, err) = edit(&tmp.path().join("missing-dir/e.png"), 0, &[]);
    assert_eq!(code, 2, "{stdout}{err}");
    assert!(err.contains("does not exist") && err.trim_end().lines().count() == 1, "{err}");
    // Nothing was loaded or generated: the fixture note comes after the check.
    assert!(!stdout.contains("fixture") && !err.contains("fixture"), "{stdout}{err}");
}

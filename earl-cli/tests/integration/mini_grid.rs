//! EARL-mini's training grid on the CPU, as a user runs it (docs/mini.md, "Training the grid"): the world's
//! tokenizers trained here (`--world`), a fresh model (`earl mini init`), world datasets through the VQ, then the
//! smoke chain `experiments/mini/smoke.toml` (SFT(S) → RL(S) with the verifier reward → the three test splits) and
//! its table; and a bundle (`earl mini bundle`) that `earl edit` finds by `EARL_MODEL` from any directory and runs
//! with its own defaults. Small counts and steps: this checks that the pieces fit, not that the model learns.
use crate::common::{output, root};
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn earl_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_earl"));
    cmd.args(args).current_dir(dir).env_remove("RUST_BACKTRACE").env("EARL_LOG", "error").env_remove("EARL_MODEL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    output(&mut cmd)
}

fn ok(r: (i32, String, String)) -> String {
    assert_eq!(r.0, 0, "stdout:\n{}\nstderr:\n{}", r.1, r.2);
    r.1
}

#[test]
fn the_smoke_chain_runs_the_grid_end_to_end_on_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let (world, runs) = (tmp.path().join("world"), tmp.path().join("runs"));
    let w = |p: &str| world.join(p).to_str().unwrap().to_string();
    let root = root();
    let run = |args: &[&str]| ok(earl_in(&root, &[], args));
    run(&["tokenizer", "train", "--world", "0", "--world-count", "50", "--codebook", "1024", "--out", &w("tok")]);
    run(&["vq", "train", "--world", "0", "--steps", "1", "--batch", "2", "--device", "cpu", "--out", &w("vq")]);
    let shape = ["--hidden", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--intermediate", "64"];
    run(&[&["mini", "init", "--tokenizer", &w("tok"), "--out", &w("init-0")][..], &shape].concat());
    for split in ["s-train", "c-train"] {
        let dir = w(&format!("data/{split}"));
        run(&["mini", "data", "--split", split, "--count", "8", "--vq", &w("vq"), "--out", &dir, "--device", "cpu"]);
    }
    let env = [("EARL_MINI", s(&world)), ("EARL_RUNS", s(&runs)), ("EARL_MINI_SEED", "0")];
    let out = ok(earl_in(&root, &env, &["experiment", "run", "experiments/mini/smoke.toml"]));
    assert!(out.contains("chain smoke: 5 stages done"), "{out}");
    // The RL stage trained with the verifier reward over the records' registered tasks.
    let chain = runs.join("mini/seed-0/smoke");
    let manifest = std::fs::read_to_string(chain.join("rl/run_manifest.json")).unwrap_or_default();
    assert!(manifest.contains("earl-mini exact") && manifest.contains("\"registered_tasks\": 8"), "{manifest}");
    let table = ok(earl_in(&root, &env, &["experiment", "compare", "experiments/mini/smoke.toml", "--seeds", "0"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "| chain | s-test | c-test | ood | Avg (unweighted) |", "{table}");
    assert!(lines[2].starts_with("| smoke (1 seeds) | "), "{table}");
    // `earl eval judge` with no endpoint re-scores a mini run with the exact verifier: the same means again.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(chain.join("chain.json")).unwrap()).unwrap();
    let eval = m["stages"].as_array().unwrap().iter().find(|s| s["name"] == "eval/mini-s-test").unwrap();
    let eval_dir = root.join(eval["dir"].as_str().unwrap());
    // `engine = "${EARL_MINI_ENGINE:-auto}"` is the eager engine on a CPU, recorded with the run's settings.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["settings"]["engine"], "eager", "{manifest}");
    let before = std::fs::read_to_string(eval_dir.join("summary.json")).unwrap();
    let out = ok(earl_in(&root, &[], &["eval", "judge", s(&eval_dir)]));
    assert!(out.contains("vie_all"), "{out}");
    let after = std::fs::read_to_string(eval_dir.join("summary.json")).unwrap();
    let vie = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap()["metrics"]["vie_all"].clone();
    assert_eq!(vie(&after), vie(&before));
    assert!(vie(&after)["count"].as_u64().unwrap() > 0, "{after}");
    // A seed that never ran is an error naming the chain, not an empty row.
    let (code, _, err) =
        earl_in(&root, &env, &["experiment", "compare", "experiments/mini/smoke.toml", "--seeds", "0,7"]);
    assert_eq!(code, 2);
    assert!(err.contains("the chain has not run") && err.contains("seed-7"), "{err}");
}

#[test]
fn a_bundle_is_found_from_any_directory_and_runs_with_its_own_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    let root = root();
    // The random fixture model stands in for a trained one: its prefill writes the image header, as it never
    // starts an image by itself.
    let prefill = "text:<|image start|>{h}*{w}<|image token|>";
    ok(earl_in(
        &root,
        &[],
        &["mini", "bundle", "--model", "fixtures/bundle-tiny", "--vq", "fixtures/vq-tiny", "--out", s(&bundle)],
    ));
    let text = std::fs::read_to_string(bundle.join("earl-bundle.toml")).unwrap();
    let text = text.replace("mode = \"E\"", &format!("mode = {:?}", prefill));
    std::fs::write(bundle.join("earl-bundle.toml"), text).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "vq/model.safetensors", "example/scene.json"] {
        assert!(bundle.join(f).is_file(), "{f}");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["dtype"], "bfloat16");
    // From another working directory, with no --model and no --vq, --area or --mode.
    let out = tmp.path().join("e.png");
    let image = bundle.join("example/source.png");
    let env = [("EARL_MODEL", s(&bundle))];
    let args = ["edit", "--image", s(&image), "--instruction", "Paint it.", "--out", s(&out), "--device", "cpu"];
    let r = earl_in(tmp.path(), &env, &args);
    assert_eq!(r.0, 0, "{}{}", r.1, r.2);
    assert!(r.2.contains("the default bundle bundle"), "{}", r.2);
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap()).unwrap();
    // A world image is encoded at its own 128×128 (16×16 codes at factor 8), the bundle's area, with its sampling.
    assert_eq!((side["area"].as_u64(), side["source_grid"].clone()), (Some(16384), serde_json::json!([16, 16])));
    assert_eq!(side["sampling"]["top_k"], 64);
    assert_eq!(side["mode"], prefill);
    // A flag still wins over the bundle.
    let r = earl_in(tmp.path(), &env, &[&args[..], &["--area", "4096"]].concat());
    assert_eq!(r.0, 0, "{}", r.2);
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap()).unwrap();
    assert_eq!(side["source_grid"], serde_json::json!([8, 8]));
    // EARL_MODEL pointing at no bundle is an error, never a silent fallback.
    let r = earl_in(tmp.path(), &[("EARL_MODEL", "/nonexistent")], &args);
    assert_eq!(r.0, 2);
    assert!(r.2.contains("EARL_MODEL=/nonexistent holds no earl-bundle.toml") && r.2.trim_end().lines().count() == 1);
}

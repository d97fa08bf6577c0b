//! `earl sft`, `earl data` and `earl bench train` as a user runs them: the tiny fixture experiment overfits through
//! the CLI (metrics log, run manifest, checkpoints), EARL-format data imports (via the Python converter) and
//! verifies, the training benchmark runs on the CPU, and bad experiment files are one-line errors.
use crate::common::root;
use std::process::Command;

fn earl(args: &[&str], runs: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_earl"))
        .args(args)
        .current_dir(root())
        .env("EARL_FIXTURES", root().join("fixtures"))
        .env("EARL_RUNS", runs)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn tiny_experiment_overfits_through_the_cli() {
    let runs = tempfile::tempdir().unwrap();
    let (code, out, err) = earl(&["sft", "--config", "experiments/sft/tiny.toml"], runs.path());
    assert_eq!(code, 0, "{out}{err}");
    let dir = runs.path().join("sft-tiny");
    let losses: Vec<f64> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 60);
    assert!(losses[59] < 0.1 * losses[0], "loss {} → {}", losses[0], losses[59]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run_manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["seed"], 42);
    assert_eq!(manifest["validation_samples"], 8);
    assert!(out.contains("last eval_loss"), "{out}");
    assert_eq!(manifest["config_hash"].as_str().unwrap().len(), 64);
    assert!(dir.join("checkpoint-60/config.json").exists());
    // Rerunning a finished experiment resumes at its last step and trains nothing more.
    let (code, out, _) = earl(&["sft", "--config", "experiments/sft/tiny.toml"], runs.path());
    assert_eq!(code, 0);
    assert!(out.contains("steps 60..60 of 60"), "{out}");
}

#[test]
fn bad_experiments_are_one_line_errors() {
    let runs = tempfile::tempdir().unwrap();
    let bad = runs.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nmodel_name_or_path = \"m\"\ndata_paths = [\"${EARL_NOT_SET_ANYWHERE}/d\"]\noutput_dir = \"o\"\n",
    )
    .unwrap();
    let (code, _, err) = earl(&["sft", "--config", bad.to_str().unwrap()], runs.path());
    assert_eq!(code, 2);
    assert!(err.contains("EARL_NOT_SET_ANYWHERE is not set") && err.trim().lines().count() == 1, "{err}");
    // Located: the file, the line and the key.
    assert!(err.contains("bad.toml: invalid config: line 3: data_paths: environment variable"), "{err}");
    std::fs::write(&bad, "extends = \"base.toml\"\n").unwrap();
    std::fs::write(runs.path().join("base.toml"), "name = \"x\"\nlearning_rat = 1.0\n").unwrap();
    let (code, _, err) = earl(&["sft", "--config", bad.to_str().unwrap()], runs.path());
    assert_eq!(code, 2);
    assert!(err.contains("base.toml: invalid config: line 2, column 16: unknown field `learning_rat`"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn out_names_the_run_directory_and_the_old_flag_still_works() {
    let runs = tempfile::tempdir().unwrap();
    for (flag, dir) in [("--out", runs.path().join("a")), ("--output-dir", runs.path().join("b"))] {
        let args = ["sft", "--config", "experiments/sft/tiny.toml", "--max-steps", "1", flag, dir.to_str().unwrap()];
        let (code, out, err) = earl(&args, runs.path());
        assert_eq!(code, 0, "{flag}: {out}{err}");
        assert!(dir.join("metrics.jsonl").exists(), "{flag}");
        // tiny.toml pins device = "cpu" and bf16 = false.
        assert!(err.contains(&format!("earl sft: device cpu, dtype f32, out {}", dir.display())), "{err}");
        assert!(out.starts_with("sft tiny: steps 0..1 of 1") && !out.contains("earl sft:"), "{out}");
    }
    let (_, help, _) = earl(&["sft", "--help"], runs.path());
    assert!(help.contains("--out <OUT>") && !help.contains("--output-dir"), "{help}");
}

#[test]
fn bench_train_runs_tiny_on_cpu() {
    let runs = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "train",
        "--tiny",
        "--device",
        "cpu",
        "--dtype",
        "bf16",
        "--seq-len",
        "24",
        "--steps",
        "2",
        "--warmup",
        "1",
    ];
    let (code, out, err) = earl(&args, runs.path());
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0 && v["mfu"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn import_earl_then_verify() {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "the test suite runs after scripts/setup.sh, which creates .venv");
    let tmp = tempfile::tempdir().unwrap();
    // Two samples in the reference's layout: <name>/train/list/tokenized_datalist.json + feature/*.pth.
    let base = tmp.path().join("magicbrush/train");
    let script = format!(
        r#"
import json, os, numpy as np, torch
base = {base:?}
os.makedirs(base + "/feature", exist_ok=True); os.makedirs(base + "/list", exist_ok=True)
for i in range(2):
    torch.save({{"edit_id": f"{{i}}.pth", "original_image": np.arange(6).reshape(2, 3) + i,
                "edited_image": np.full((2, 3), 7 + i), "CoT": {{"thinking": f"t{{i}}"}} if i else {{}},
                "instruction": f"edit {{i}}"}}, f"{{base}}/feature/{{i}}.pth")
json.dump({{"prefix": base + "/feature", "path_list": ["0.pth", "1.pth"]}}, open(base + "/list/tokenized_datalist.json", "w"))
"#,
        base = base.to_str().unwrap()
    );
    assert!(Command::new(&python).args(["-c", &script]).status().unwrap().success());
    let list = base.join("list/tokenized_datalist.json");
    let out_dir = tmp.path().join("ds");
    let args = ["data", "import-earl", list.to_str().unwrap(), "--out", out_dir.to_str().unwrap()];
    let (code, out, err) = earl(&args, tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("imported 2 samples"), "{out}");
    let (code, out, _) = earl(&args, tmp.path());
    assert_eq!(code, 0);
    assert!(out.contains("imported 0 samples (2 already present"), "resumes by id: {out}");
    let (code, out, err) = earl(&["data", "verify", out_dir.to_str().unwrap()], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 edits records"), "{out}");
    let reader = earl_core_reader(&out_dir);
    assert!(reader.contains("\"instruction\":\"edit 1\"") && reader.contains("\"thinking\":\"t1\""), "{reader}");

    // A list naming a file that is not there: one line with Python's exception, not a traceback.
    std::fs::write(&list, format!(r#"{{"prefix": {:?}, "path_list": ["nope.pth"]}}"#, base.join("feature"))).unwrap();
    let (code, out, err) = earl(&args, tmp.path());
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("nope.pth") && err.contains("Python's output:") && !err.contains("Traceback"), "{err}");
}

fn earl_core_reader(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("shard-00000.jsonl")).unwrap()
}

#[test]
fn a_corrupted_shard_of_the_same_length_is_refused_before_training() {
    // One digit changed in the shard: same length, still JSON, so only the manifest's SHA-256 can tell.
    let fx = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("fixtures/lm-tiny-gqa"), fx.path().join("lm-tiny-gqa")).unwrap();
    let data = fx.path().join("sft-tiny/data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["manifest.json", "shard-00000.jsonl"] {
        std::fs::copy(root().join("fixtures/sft-tiny/data").join(f), data.join(f)).unwrap();
    }
    let shard = data.join("shard-00000.jsonl");
    let mut bytes = std::fs::read(&shard).unwrap();
    let i = bytes.iter().position(|b| b.is_ascii_digit() && *b != b'9').unwrap();
    bytes[i] += 1;
    std::fs::write(&shard, &bytes).unwrap();
    let runs = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_earl"))
        .args(["sft", "--config", "experiments/sft/tiny.toml", "--max-steps", "1"])
        .current_dir(root())
        .env("EARL_FIXTURES", fx.path())
        .env("EARL_RUNS", runs.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("SHA-256") && err.contains("shard-00000.jsonl") && err.contains("--no-verify"), "{err}");
    assert!(!runs.path().join("sft-tiny/metrics.jsonl").exists(), "nothing trained");
}

/// `earl experiment run` on a chain of the tiny SFT and RL experiments: SFT (bundle-tiny's model on the SFT
/// fixture) hands its final checkpoint to RL, the rerun skips both finished stages, and a changed RL config is
/// refused in one line.
#[test]
fn a_chain_runs_sft_then_rl_and_a_rerun_skips_the_finished_stages() {
    let runs = tempfile::tempdir().unwrap();
    let chain = runs.path().join("chain.toml");
    let write = |rl_extra: &str| {
        let text = format!(
            "[chain]\nname = \"smoke\"\nout = \"{out}\"\n\n[sft]\nconfig = \"{root}/experiments/sft/tiny.toml\"\n\
             model_name_or_path = \"{root}/fixtures/bundle-tiny\"\nmax_steps = 2\nvalidation_paths = []\n\n\
             [rl]\nconfig = \"{root}/experiments/rl/tiny.toml\"\ndevice = \"cpu\"\nnum_iterations = 2\n\
             episodes_per_iteration = 16\nsave_checkpoints_every_n_iterations = 1\n{rl_extra}",
            out = runs.path().join("out").display(),
            root = root().display(),
        );
        std::fs::write(&chain, text).unwrap();
    };
    write("");
    let run = || earl(&["experiment", "run", chain.to_str().unwrap()], runs.path());
    let (code, out, err) = run();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("stage sft: running") && out.contains("stage rl: done in"), "{out}");
    let dir = runs.path().join("out");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("chain.json")).unwrap()).unwrap();
    let sft_final = dir.join("sft/checkpoint-2");
    assert_eq!(m["stages"][0]["output"]["model"], sft_final.to_str().unwrap());
    assert_eq!(m["stages"][1]["status"], "done");
    assert!(dir.join("rl/checkpoints/checkpoint-2/model.safetensors").exists());
    // The RL stage trained from the SFT stage's checkpoint: its metrics log has both iterations.
    assert_eq!(std::fs::read_to_string(dir.join("rl/metrics.jsonl")).unwrap().lines().count(), 2);
    let (code, out, err) = run();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("stage sft: done earlier, skipped") && out.contains("stage rl: done earlier, skipped"),
        "{out}"
    );
    write("learning_rate = 0.5\n");
    let (code, _, err) = run();
    assert_eq!(code, 2);
    assert!(err.contains("stage rl changed since it ran") && err.contains("--force"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

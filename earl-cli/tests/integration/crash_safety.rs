//! Crash safety of `earl` as a user meets it: runs and commands killed at the worst moments (through the test-only
//! `EARL_FAULT` hook, which SIGKILLs the process there) leave earlier outputs whole, a resumed SFT run reproduces the
//! uninterrupted run's metrics and weights exactly, a corrupt newest checkpoint falls back to the previous one, and
//! a second run on a directory in use is a one-line error naming the holder. Every input is generated here.
use crate::common::root;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use earl_core::imageproc::{save, RgbImage};
use earl_core::train::checkpoint::list_checkpoints;

/// Runs `earl` with `EARL_FAULT` set to `fault` (when given); returns the status, stdout and stderr.
fn earl(args: &[&str], fault: Option<&str>) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_earl"));
    cmd.args(args)
        .current_dir(root())
        .env("EARL_FIXTURES", root().join("fixtures"))
        .env_remove("EARL_FAULT")
        .env_remove("RUST_BACKTRACE");
    if let Some(f) = fault {
        cmd.env("EARL_FAULT", f);
    }
    let o = cmd.output().unwrap();
    (o.status, String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

fn assert_killed(r: &(ExitStatus, String, String), at: &str) {
    assert_eq!(r.0.signal(), Some(9), "expected EARL_FAULT={at} to kill the process: {:?}\n{}{}", r.0, r.1, r.2);
}

fn assert_ok(r: &(ExitStatus, String, String)) {
    assert!(r.0.success(), "{:?}\n{}{}", r.0, r.1, r.2);
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// experiments/sft/tiny.toml cut to 6 steps: checkpoints every 2 (keeping `keep`), evaluations at 3 and 6.
fn short_experiment(dir: &Path, keep: usize) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("experiments/sft/tiny.toml")).unwrap();
    for (from, to) in [
        ("max_steps = 60", "max_steps = 6".to_string()),
        ("save_steps = 20", "save_steps = 2".to_string()),
        ("save_total_limit = 2", format!("save_total_limit = {keep}")),
        ("eval_steps = 20", "eval_steps = 3".to_string()),
        ("${EARL_RUNS}/sft-tiny", dir.join("unused").display().to_string()), // every run passes --output-dir
    ] {
        assert!(text.contains(from), "tiny.toml no longer has `{from}`");
        text = text.replace(from, &to);
    }
    let path = dir.join(format!("short-{keep}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn sft(config: &Path, out: &Path, fault: Option<&str>) -> (ExitStatus, String, String) {
    earl(&["sft", "--config", s(config), "--output-dir", s(out)], fault)
}

/// The metrics log without its wall-clock and memory fields, which legitimately differ between runs.
fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in ["tokens_per_s", "step_time_s", "rss_bytes", "eval_runtime_s"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        })
        .collect()
}

fn steps(dir: &Path) -> Vec<u64> {
    metrics(dir).iter().map(|v| v["step"].as_u64().unwrap()).collect()
}

/// The final checkpoint's weights and optimizer state must be the uninterrupted run's, byte for byte.
fn assert_same_final_state(want: &Path, got: &Path) {
    assert_eq!(metrics(got), metrics(want), "resumed metrics differ from the uninterrupted run");
    for f in ["checkpoint-6/model.safetensors", "checkpoint-6/optimizer.safetensors"] {
        assert!(std::fs::read(want.join(f)).unwrap() == std::fs::read(got.join(f)).unwrap(), "{f} differs");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn sft_killed_mid_prune_after_a_step_and_mid_metrics_rewrite_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let config = short_experiment(tmp.path(), 1);
    let (want, got) = (tmp.path().join("uninterrupted"), tmp.path().join("killed"));
    assert_ok(&sft(&config, &want, None));
    assert_eq!(steps(&want), [1, 2, 3, 4, 5, 6]);

    // Step 4 saves checkpoint-4 and prunes checkpoint-2 (save_total_limit = 1): killed mid-prune, the old
    // checkpoint sits under its trash name, never half-deleted under its real one.
    assert_killed(&sft(&config, &got, Some("prune")), "prune");
    let complete: Vec<u64> = list_checkpoints(&got).into_iter().map(|c| c.0).collect();
    assert_eq!(complete, [4]);
    assert!(got.join(".trash-checkpoint-2").exists() && !got.join("checkpoint-2").exists(), "{:?}", names(&got));

    // Resumed from 4 and killed after step 5 was logged: the log runs past the checkpoint, and the trash is gone.
    assert_killed(&sft(&config, &got, Some("step-5")), "step-5");
    assert_eq!(steps(&got), [1, 2, 3, 4, 5]);
    assert!(!got.join(".trash-checkpoint-2").exists(), "leftovers are swept at the next start");

    // Resumed again and killed while the log is rewritten without step 5: the log stays whole.
    let before = std::fs::read(got.join("metrics.jsonl")).unwrap();
    assert_killed(&sft(&config, &got, Some("write:metrics.jsonl")), "write:metrics.jsonl");
    assert_eq!(std::fs::read(got.join("metrics.jsonl")).unwrap(), before, "a killed rewrite must not touch the log");

    let last = sft(&config, &got, None);
    assert_ok(&last);
    assert!(last.1.contains("steps 4..6 of 6"), "{}", last.1);
    assert_same_final_state(&want, &got);
    assert!(names(&got).iter().all(|n| !n.contains(".tmp-") && !n.starts_with(".trash-")), "{:?}", names(&got));
}

#[test]
fn a_corrupt_newest_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let config = short_experiment(tmp.path(), 2);
    let (want, got) = (tmp.path().join("uninterrupted"), tmp.path().join("corrupt"));
    assert_ok(&sft(&config, &got, None));
    copy_dir(&got, &want);
    // Truncate the newest checkpoint's weights, as a disk that filled up under an older version would have.
    let model = got.join("checkpoint-6/model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();

    let r = sft(&config, &got, None);
    assert_ok(&r);
    assert!(r.2.contains("falling back") && r.2.contains("checkpoint-6") && r.2.contains("truncated"), "{}", r.2);
    assert!(r.1.contains("steps 4..6 of 6"), "resumed from checkpoint-4: {}", r.1);
    assert_same_final_state(&want, &got);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn a_second_sft_run_on_a_directory_in_use_names_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let config = short_experiment(tmp.path(), 1);
    let dir = tmp.path().join("run");
    let held = earl_core::runlock::RunLock::acquire(&dir).unwrap();
    let (status, out, err) = sft(&config, &dir, None);
    assert_eq!(status.code(), Some(2), "{out}{err}");
    let want = format!("run directory {} is in use by pid {} on", dir.display(), std::process::id());
    assert!(err.contains(&want) && err.trim().lines().count() == 1, "{err}");
    assert!(!dir.join("metrics.jsonl").exists() && !dir.join("run_manifest.json").exists(), "{:?}", names(&dir));
    // The kernel drops the lock with its holder: the directory is usable again at once.
    drop(held);
    assert_ok(&earl(&["sft", "--config", s(&config), "--output-dir", s(&dir), "--max-steps", "1"], None));
}

#[test]
fn killed_encode_and_decode_leave_the_earlier_output_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    let other = p("other.png");
    save(&RgbImage::from_fn(48, 40, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, 90])), &other).unwrap();
    let enc = |image: &Path, out: &Path, fault| {
        earl(&["encode", "--vq", "fixtures/vq-tiny", "--image", s(image), "--area", "16384", "--out", s(out)], fault)
    };
    let dec = |codes: &Path, out: &Path, fault| {
        earl(&["decode", "--vq", "fixtures/vq-tiny", "--codes", s(codes), "--out", s(out)], fault)
    };
    let photo = root().join("fixtures/images/photo.png");
    assert_ok(&enc(&photo, &p("c.json"), None));
    assert_ok(&enc(&other, &p("c2.json"), None));
    let first = std::fs::read(p("c.json")).unwrap();
    assert_ne!(first, std::fs::read(p("c2.json")).unwrap(), "the two images must give different codes");

    assert_killed(&enc(&other, &p("c.json"), Some("write:c.json")), "write:c.json");
    assert_eq!(std::fs::read(p("c.json")).unwrap(), first, "the killed encode replaced codes.json");

    assert_ok(&dec(&p("c.json"), &p("out.png"), None));
    let image = std::fs::read(p("out.png")).unwrap();
    assert_killed(&dec(&p("c2.json"), &p("out.png"), Some("write:out.png")), "write:out.png");
    assert_eq!(std::fs::read(p("out.png")).unwrap(), image, "the killed decode replaced the image");
}

#[test]
fn a_killed_edit_never_leaves_a_sidecar_beside_another_image() {
    let tmp = tempfile::tempdir().unwrap();
    let (png, json) = (tmp.path().join("e.png"), tmp.path().join("e.json"));
    let edit = |seed: &str, fault| {
        let args = [
            &crate::common::FIXTURE_EDIT[..],
            &[
                "--image",
                "fixtures/bundle-tiny/example.png",
                "--instruction",
                "Make the roof blue",
                "--out",
                s(&png),
                "--seed",
                seed,
                "--area",
                "16384",
                "--mode",
                "text:<|image start|>{h}*{w}<|image token|>",
            ],
        ]
        .concat();
        earl(&args, fault)
    };
    assert_ok(&edit("3", None));
    let first_png = std::fs::read(&png).unwrap();
    assert!(json.exists());
    // Another seed, killed between writing the new image and its sidecar: the old sidecar must not survive.
    assert_killed(&edit("4", Some("write:e.json")), "write:e.json");
    assert_ne!(std::fs::read(&png).unwrap(), first_png, "seed 4 wrote its image");
    assert!(!json.exists(), "a sidecar of seed 3 lies beside the image of seed 4");
    assert_ok(&edit("3", None));
    assert_eq!(std::fs::read(&png).unwrap(), first_png);
    let sidecar: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((sidecar["seed"].as_u64(), sidecar["image"].as_str()), (Some(3), Some(s(&png))));
}

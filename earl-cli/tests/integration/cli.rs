//! The `earl` binary as a user runs it: exit codes, the last line of `earl parity`, one-line errors.
use crate::common::{earl, root, FIXTURE_EDIT};

#[test]
fn parity_passes_on_every_fixture() {
    for name in ["lm-tiny-gqa", "lm-tiny-mha", "lm-tiny-orig"] {
        let dir = format!("fixtures/{name}");
        let (code, out, err) =
            earl(&["parity", "--model", &dir, "--reference", &format!("{dir}/reference.safetensors")]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.trim_end().lines().last().unwrap().starts_with("parity ok:"), "{out}");
    }
}

#[test]
fn parity_of_a_different_model_fails_with_exit_1() {
    // The same weights with another RMSNorm epsilon: loads fine, computes something else.
    let tmp = tempfile::tempdir().unwrap();
    let src = root().join("fixtures/lm-tiny-gqa");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let cfg = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 0.5");
    assert!(text.contains("0.5"));
    std::fs::write(&cfg, text).unwrap();
    let model = tmp.path().to_str().unwrap();
    let (code, out, _) =
        earl(&["parity", "--model", model, "--reference", "fixtures/lm-tiny-gqa/reference.safetensors"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.trim_end().lines().last().unwrap().starts_with("parity FAILED:"), "{out}");
}

#[test]
fn bad_paths_are_one_line_errors() {
    let (code, out, err) =
        earl(&["parity", "--model", "fixtures/nope", "--reference", "fixtures/lm-tiny-gqa/reference.safetensors"]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("fixtures/nope"), "{err}");
    let (code, _, err) = earl(&["forward", "--ids", "1,x"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"x\" is not an integer"), "{err}");
}

#[test]
fn doctor_reports_libtorch() {
    let (code, out, _) = earl(&["doctor"]);
    assert_eq!(code, 0);
    assert!(out.contains("libtorch:       2.11.0"), "{out}");
    assert!(out.contains("libtorch_cuda:  linked"), "{out}");
}

#[test]
fn failures_are_one_quiet_line() {
    // An OS error is quoted once, not once per layer of context.
    let (code, _, err) =
        earl(&["encode", "--vq", "fixtures/vq-tiny", "--image", "/nonexistent/x.png", "--out", "/tmp/x.json"]);
    assert_eq!(code, 2);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    // Negative numbers are values, so the validation that explains them is reached.
    let args = ["--image", "fixtures/bundle-tiny/example.png", "--instruction", "x", "--out", "/tmp/never.png"];
    let (code, _, err) = earl(&[&FIXTURE_EDIT[..], &args, &["--temperature", "-1"]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("temperature must be ≥ 0, got -1") && err.trim_end().lines().count() == 1, "{err}");
}

#[test]
fn an_overlong_budget_is_refused_before_anything_is_allocated() {
    // 100M new tokens against the bundle's 4096 positions: an error at once (it used to warn, preallocate the
    // cache and get the process killed), naming the flag that allows it.
    let out = std::env::temp_dir().join(format!("earl-overlong-{}.png", std::process::id()));
    let args = ["--image", "fixtures/bundle-tiny/example.png", "--instruction", "x", "--out", out.to_str().unwrap()];
    let (code, _, err) = earl(&[&FIXTURE_EDIT[..], &args, &["--max-new-tokens", "100000000"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("max_position_embeddings") && err.contains("--allow-overlong"), "{err}");
    assert!(err.trim_end().lines().count() == 1 && !out.exists(), "{err}");
}

/// `earl edit` of the fixture image on the CPU into a temporary `NAME.png` with `extra` flags, warnings off (the
/// engine rightly warns about positions that --allow-overlong allows); (exit code, stderr) and whether the output
/// exists afterwards.
fn edit_on_cpu(name: &str, extra: &[&str]) -> (i32, String, bool) {
    let out = std::env::temp_dir().join(format!("earl-{name}-{}.png", std::process::id()));
    let mut args = FIXTURE_EDIT.to_vec();
    args.extend(["--image", "fixtures/bundle-tiny/example.png", "--instruction", "x"]);
    args.extend(["--out", out.to_str().unwrap(), "--device", "cpu"]);
    args.extend(extra);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_earl"));
    let (code, _, err) = crate::common::output(
        cmd.args(&args).current_dir(root()).env("EARL_LOG", "error").env_remove("RUST_BACKTRACE"),
    );
    (code, err, out.exists())
}

#[test]
fn an_oversized_cache_is_one_line_naming_the_flag_before_libtorch_is_asked() {
    // A KV cache for 10^13 positions (allowed past the model's 4096 on purpose). This used to reach libtorch's
    // allocator and its multi-line C++ message; the cache size is now checked against the host's memory first, and
    // the one line says how much it needed and which flag lowers it.
    let (code, err, wrote) = edit_on_cpu("oom", &["--allow-overlong", "--max-new-tokens", "10000000000000"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("the KV cache for 1 sequences × ") && err.contains("--max-new-tokens"), "{err}");
    for noise in ["panicked at", "Exception raised from", "frame #", "DefaultCPUAllocator"] {
        assert!(!err.contains(noise), "{noise}: {err}");
    }
    assert!(!wrote);
}

#[test]
fn a_hundred_thousand_samples_are_refused_before_the_cache_is_allocated() {
    // The kernel used to kill this at 24 GB; then it reached libtorch's allocator through the cache fork. 100 000
    // samples × the fixture's positions is ~200 GB of cache, refused with the flag to lower before the prefill.
    let (code, err, wrote) = edit_on_cpu("samples", &["--samples", "100000"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the KV cache for 100000 sequences") && err.contains("--samples"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!wrote);
}

#[test]
fn every_command_defaults_to_auto_and_says_what_it_chose_on_stderr() {
    let auto = if tch::Cuda::is_available() { "device cuda:0, dtype bf16" } else { "device cpu, dtype f32" };
    let (code, out, err) = earl(&["forward"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("earl forward: {auto}")) && !out.contains("earl forward:"), "{out}{err}");
    let tmp = tempfile::tempdir().unwrap();
    let codes = tmp.path().join("c.json");
    let args = ["encode", "--vq", "fixtures/vq-tiny", "--image", "fixtures/bundle-tiny/example.png", "--device", "cpu"];
    let (code, out, err) = earl(&[&args[..], &["--out", codes.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    let chose = format!("earl encode: device cpu, dtype f32, out {}", codes.display());
    assert_eq!(err.trim_end(), chose, "{err}");
    assert!(out.contains("codes in") && !out.contains("earl encode:"), "{out}");
}

#[test]
fn deterministic_mode_runs_and_changes_no_result_of_a_deterministic_forward() {
    let (code, plain, err) = earl(&["forward", "--device", "cpu"]);
    assert_eq!(code, 0, "{err}");
    let (code, det, err) = earl(&["--deterministic", "forward", "--device", "cpu"]);
    assert_eq!(code, 0, "{err}");
    // The first line holds the forward's wall time; the predictions follow.
    let predictions = |out: &str| out.lines().skip(1).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(predictions(&det), predictions(&plain));
    assert!(predictions(&det).len() == 6, "{det}");
}

#[test]
fn rl_writes_its_run_directory_at_out_and_accepts_the_old_flag() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, dir) in [("--out", tmp.path().join("a")), ("--out-dir", tmp.path().join("b"))] {
        let config = "experiments/rl/tiny.toml";
        let args = ["rl", "--config", config, "--device", "cpu", "--max-iterations", "1", flag, dir.to_str().unwrap()];
        let (code, out, err) = earl(&args);
        assert_eq!(code, 0, "{flag}: {out}{err}");
        assert!(dir.join("metrics.jsonl").exists(), "{flag}");
        assert!(err.contains(&format!("earl rl: device cpu, dtype f32, out {}", dir.display())), "{err}");
        assert!(out.starts_with("iter    0"), "stdout holds the iterations only: {out}");
    }
    let (_, help, _) = earl(&["rl", "--help"]);
    assert!(help.contains("--out <OUT>") && !help.contains("--out-dir"), "{help}");
}

#[test]
fn bench_decode_graph_engine_needs_cuda_and_eager_runs_on_cpu() {
    let small = [
        "bench", "decode", "--device", "cpu", "--dtype", "f32", "--batch", "2", "--layers", "1", "--hidden", "64",
        "--vocab", "300", "--prompt", "5", "--new", "4", "--top-k", "8",
    ];
    let (code, out, err) = earl(&[&small[..], &["--engine", "graph"]].concat());
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("the graph engine needs CUDA") && err.contains("--engine eager"), "{err}");
    let (code, out, err) = earl(&[&small[..], &["--engine", "eager"]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"engine\":\"eager\"") && out.contains("\"batch\":2"), "{out}");
    // The default on a CPU is the eager engine.
    let (code, out, err) = earl(&small);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"engine\":\"eager\""), "{out}");
}

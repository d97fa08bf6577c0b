//! Loading, merging, expansion and validation of RL configs on small files written by the tests.
use std::path::Path;

use super::*;
use crate::experiment::expand_vars;
use crate::generate::TopK;

const MINIMAL: &str = r#"
train_paths_file = ["./data/a.json", "data/b.json"]
coefficients = [2.0, 0.5]
base_exp_dir = "${EXP:-runs}"
model_path = "../models/m"
assistant_prefill = "<|image start|>"
learning_rate = 3e-6
num_iterations = 10
kl_coeff = 0.0003
temperature = 1.0
per_device_batch_size = 4
episodes_per_iteration = 16
generations_per_sample = 8
max_response_tokens = 64
reward_function_api_base = "${VERIFIER}"
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn env(k: &str) -> Option<String> {
    match k {
        "VERIFIER" => Some("http://127.0.0.1:4877/v1".into()),
        _ => None,
    }
}

fn load(dir: &Path, text: &str) -> Result<RlConfig> {
    RlConfig::load_with_env(&write(dir, "run.toml", text), &env)
}

fn err(dir: &Path, text: &str) -> String {
    load(dir, text).unwrap_err().to_string()
}

#[test]
fn minimal_config_gets_reference_defaults_and_resolved_paths() {
    let d = tempfile::tempdir().unwrap();
    let c = load(d.path(), MINIMAL).unwrap();
    assert_eq!(c.run_name, "run");
    assert_eq!(c.data.train_paths, vec![d.path().join("./data/a.json"), PathBuf::from("data/b.json")]);
    assert_eq!(c.data.train_mixture, Mixture::Coefficients(vec![2.0, 0.5]));
    assert_eq!(c.base_exp_dir, PathBuf::from("runs"));
    assert_eq!(c.model_path, d.path().join("../models/m").to_string_lossy());
    assert_eq!(c.tokenizer_path, c.model_path);
    assert_eq!(
        (c.generation.prompts_per_iteration, c.generation.sampling.top_k, c.generation.grid_constraint),
        (2, TopK::Off, true)
    );
    let o = &c.optim;
    assert_eq!(
        (o.adam_beta1, o.adam_beta2, o.adam_epsilon, o.weight_decay, o.max_grad_norm),
        (0.9, 0.999, 1e-8, 0.0, 1.0)
    );
    assert!(c.grpo.separate_language_and_vision_vocabs);
    // EARL's defaults compute both verifier rewards and train on VIEScore.
    assert_eq!(c.reward.enabled(), vec!["viescore", "ground_score"]);
    assert_eq!(c.reward.final_reward, FinalReward::Overall("viescore".into()));
    // The verifier section is kept as written for earl-eval, with where each key was set.
    assert_eq!(c.reward.verifier.keys().collect::<Vec<_>>(), vec!["reward_function_api_base"]);
    assert_eq!(c.reward.verifier.origin("reward_function_api_base").unwrap().line, 15);
    assert_eq!(c.random_seed, 42);
    // EARL's unset keep_checkpoints_every_n_iterations keeps every checkpoint; unset save means never.
    assert_eq!((c.logging.save_checkpoints_every_n_iterations, c.logging.keep_checkpoints_every_n_iterations), (0, 0));
}

#[test]
fn tokenizer_path_resolves_against_the_file_that_sets_it() {
    let d = tempfile::tempdir().unwrap();
    let c = load(d.path(), &format!("{MINIMAL}tokenizer_path = \"./tok\"\n")).unwrap();
    assert_eq!(PathBuf::from(&c.tokenizer_path), d.path().join("./tok"));
    // Not `./`: taken as written (a hub id or a working-directory path), as model_path.
    let c = load(d.path(), &format!("{MINIMAL}tokenizer_path = \"BAAI/Emu3-Stage1\"\n")).unwrap();
    assert_eq!(c.tokenizer_path, "BAAI/Emu3-Stage1");
    let c = load(d.path(), &format!("{MINIMAL}tokenizer_path = \"${{TOK:-../t}}\"\n")).unwrap();
    assert_eq!(PathBuf::from(&c.tokenizer_path), d.path().join("../t"));
}

#[test]
fn unknown_and_missing_fields_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let e = err(d.path(), &format!("{MINIMAL}\nkl_coef = 0.1\n"));
    assert!(e.contains("run.toml") && e.contains("kl_coef") && e.contains("line 17"), "{e}");
    let e = err(d.path(), &MINIMAL.replace("kl_coeff = 0.0003\n", ""));
    assert!(e.contains("missing required field `kl_coeff`"), "{e}");
    let e = err(d.path(), &MINIMAL.replace("num_iterations = 10", "num_iterations = \"ten\""));
    assert!(e.contains("line 8, column 18"), "{e}");
}

#[test]
fn variables_expand_and_unset_ones_are_named() {
    let d = tempfile::tempdir().unwrap();
    let e = err(d.path(), &MINIMAL.replace("${EXP:-runs}", "${NOT_SET_ANYWHERE}"));
    assert!(e.contains("run.toml: invalid config: line 4: base_exp_dir") && e.contains("NOT_SET_ANYWHERE"), "{e}");
    assert_eq!(expand_vars("a/${X}/${Y:-d}/$z", &|k| (k == "X").then(|| "x".into())).unwrap(), "a/x/d/$z");
    assert!(expand_vars("${X", &|_| None).is_err());
    assert!(expand_vars("${a b}", &|_| None).is_err());
}

#[test]
fn extends_merges_in_order_with_the_file_last() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("base")).unwrap();
    write(&d.path().join("base"), "a.toml", &MINIMAL.replace("\"./data/a.json\"", "\"./from_base.json\""));
    write(&d.path().join("base"), "b.toml", "kl_coeff = 0.5\ntemperature = 0.9\n");
    let c = load(d.path(), "extends = [\"base/a.toml\", \"base/b.toml\"]\ntemperature = 0.7\n").unwrap();
    assert_eq!((c.grpo.kl_coeff, c.generation.sampling.temperature), (0.5, 0.7));
    // `./` paths resolve against the file that set them.
    assert_eq!(c.data.train_paths[0], d.path().join("base").join("./from_base.json"));
    write(d.path(), "loop.toml", "extends = \"loop.toml\"\n");
    let e = RlConfig::load_with_env(&d.path().join("loop.toml"), &env).unwrap_err().to_string();
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn inconsistent_settings_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("coefficients = [2.0, 0.5]", "coefficients = [1.0]", "coefficients has 1 values"),
        ("generations_per_sample = 8", "generations_per_sample = 5", "multiple of generations_per_sample"),
        ("generations_per_sample = 8", "generations_per_sample = 1", "must be >= 2"),
        ("temperature = 1.0", "temperature = 0.0", "temperature must be > 0"),
        ("max_response_tokens = 64", "max_response_tokens = 64\ntop_k = 0", "top_k must be -1"),
        ("max_response_tokens = 64", "max_response_tokens = 5000", "model_context_size"),
        ("kl_coeff = 0.0003", "kl_coeff = 0.0003\ntrain_text_tokens_only = true\ntrain_vision_tokens_only = true", "exclude each other"),
        ("kl_coeff = 0.0003", "kl_coeff = 0.0003\ntext_only_steps = 11", "text_only_cycle_steps"),
        ("kl_coeff = 0.0003", "kl_coeff = 0.0003\nreward_final_reward = \"sqrt(viescore_pqxground_score)\"\nreward_compute_ground_score = false", "needs the \"ground_score\""),
        ("kl_coeff = 0.0003", "kl_coeff = 0.0003\nreward_final_reward = \"mean(everything)\"", "unknown final reward"),
    ];
    for (from, to, want) in cases {
        let e = err(d.path(), &MINIMAL.replace(from, to));
        assert!(e.contains(want), "{to}: {e}");
    }
}

#[test]
fn dead_reference_fields_are_rejected_by_name() {
    let d = tempfile::tempdir().unwrap();
    for extra in [
        "vllm_gpu_memory_utilization = 0.3",
        "push_to_hub_every_n_iterations = 100",
        "push_to_hub_repo_id = \"x\"",
        "model_revision = \"ckpt_001999\"",
        "max_prompt_len = 2048",
        "max_completion_len = 2048",
        "val_paths_file = [\"v.json\"]",
        "val_coefficients = [1.0]",
    ] {
        let e = err(d.path(), &format!("{MINIMAL}{extra}\n"));
        let key = extra.split(' ').next().unwrap();
        let named = e.contains(&format!("`{key}` is not supported")) && e.contains("remove it");
        assert!(named && !e.contains('\n'), "{e}");
    }
    // Empty validation lists (EARL's released configs) say what earl does: no validation set.
    assert!(load(d.path(), &format!("{MINIMAL}val_paths_file = []\nval_coefficients = []\n")).is_ok());
}

//! Every RL experiment in experiments/rl/ loads and validates (with the variables a user would set), every
//! fragment in experiments/rl/base/ parses on its own, and the rewards each experiment asks for can be built.
//! Also pins the facts of the paper's runs that the translation from EARL's jsonnet must preserve, among them that
//! they name the paper's judge prompts (written by scripts/fetch_judge_prompts.py, git-ignored: the tests put
//! made-up files of the same format in their place).
use std::path::{Component, Path, PathBuf};

use earl_core::rl::config::{Mixture, RlConfig};
use earl_eval::{reward_set, PromptSource, RlExperiment, Unparsable, VerifierConfig};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../experiments/rl")
}

fn env(k: &str) -> Option<String> {
    match k {
        "APP__DATA_DIR" => Some("/data".into()),
        "APP__BASE_EXP_DIR" => Some("/runs".into()),
        "APP__REWARD_FUNCTION_API_BASE" => Some("http://verifier:4877/v1".into()),
        _ => None,
    }
}

fn tomls(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

fn load(name: &str) -> RlConfig {
    experiment(name).rl
}

fn experiment(name: &str) -> RlExperiment {
    RlExperiment::load_with_env(&dir().join(format!("{name}.toml")), &env).unwrap()
}

/// `a/b/../c` → `a/c`, without touching the file system (the prompt files need not exist).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

const TEMPLATE_FILES: [&str; 4] =
    ["viescore_sc.txt", "viescore_pq.txt", "ground_score_system.txt", "ground_score_user.txt"];

fn templates_mut(v: &mut VerifierConfig) -> [&mut PromptSource; 4] {
    [
        &mut v.viescore_sc_template,
        &mut v.viescore_pq_template,
        &mut v.ground_score_system_template,
        &mut v.ground_score_user_template,
    ]
}

#[test]
fn every_experiment_validates_and_builds_its_rewards() {
    let made_up = tempfile::tempdir().unwrap();
    for name in TEMPLATE_FILES {
        std::fs::write(made_up.path().join(name), format!("made-up {name} for <instruction>\n")).unwrap();
    }
    let paper_prompts = lexical(&dir().join("../../prompts/paper"));
    let runs = tomls(&dir());
    let names: Vec<String> = runs.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    for want in [
        "sft_s__rl_s",
        "sft_s__rl_c",
        "sft_s__rl_sc",
        "sft_sc__rl_c",
        "sft_sc__rl_sc",
        "sft_sc2stage__rl_c",
        "sft_sc2stage__rl_sc",
        "sft_think_s__rl_s",
        "sft_think_s__rl_c",
        "sft_think_s__rl_sc",
        "tiny",
    ] {
        assert!(names.iter().any(|n| n == want), "experiments/rl/{want}.toml is missing");
    }
    for p in &runs {
        let RlExperiment { rl: cfg, mut verifier } =
            RlExperiment::load_with_env(p, &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.run_name, p.file_stem().unwrap().to_string_lossy());
        let paper = cfg.run_name != "tiny";
        for (source, file) in templates_mut(&mut verifier).into_iter().zip(TEMPLATE_FILES) {
            match source {
                PromptSource::File(f) if paper => {
                    assert_eq!(lexical(f), paper_prompts.join(file), "{}", p.display());
                    *f = made_up.path().join(file);
                }
                PromptSource::BuiltIn if !paper => {}
                other => panic!("{}: unexpected template source {other:?}", p.display()),
            }
        }
        reward_set(&cfg.reward, &verifier).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    for p in tomls(&dir().join("base")) {
        RlConfig::parse_fragment(&p).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn paper_runs_keep_the_reference_settings() {
    let earl = load("sft_s__rl_sc");
    assert_eq!((earl.grpo.kl_coeff, earl.optim.learning_rate, earl.optim.num_iterations), (3e-4, 3e-6, 3000));
    assert_eq!((earl.generation.episodes_per_iteration, earl.generation.generations_per_sample), (128, 8));
    assert_eq!((earl.optim.per_device_batch_size, earl.generation.model_context_size), (4, 4096));
    assert_eq!(earl.data.train_mixture, Mixture::Coefficients(vec![0.13, 6.0, 6.0, 0.7, 1.55, 3.7, 11.0]));
    assert_eq!(
        earl.data.train_paths[0],
        PathBuf::from("/data/earl-datasets/omniedit/train/list/tokenized_datalist.json")
    );
    let log = &earl.logging;
    assert_eq!((log.save_checkpoints_every_n_iterations, log.keep_checkpoints_every_n_iterations), (100, 100));
    assert_eq!(earl.generation.max_response_tokens, 2048);
    assert_eq!((earl.model_path.as_str(), earl.tokenizer_path.as_str()), ("mair-lab/sft-simple", "BAAI/Emu3-Stage1"));
    assert_eq!(earl.reward.enabled(), vec!["viescore"]);
    let v = experiment("sft_s__rl_sc").verifier;
    assert_eq!((v.api_base.as_str(), v.model.as_str()), ("http://verifier:4877/v1", "Qwen/Qwen2.5-VL-72B-Instruct"));
    assert_eq!((v.max_concurrency, v.max_attempts, v.max_rounds, v.on_unparsable), (64, 5, 5, Unparsable::Error));
    assert_eq!((v.timeout_s, v.api_key.as_str()), (600.0, ""));
    assert_eq!(earl.generation.sampling.top_k, earl_core::generate::TopK::Off);

    let c = load("sft_s__rl_c");
    assert_eq!(c.data.train_mixture, Mixture::Coefficients(vec![6.0, 6.0, 0.7, 1.55, 3.7, 11.0]));
    let think = load("sft_think_s__rl_s");
    assert_eq!(think.generation.assistant_prefill, "Let's think step by step. <|start thinking|>\\n");
    assert_eq!(think.model_path, "mair-lab/thinking-sft-simple");

    let sc = load("sft_sc2stage__rl_sc");
    assert_eq!(
        (sc.optim.num_iterations, sc.optim.per_device_batch_size, sc.generation.model_context_size),
        (2000, 8, 3000)
    );
    assert_eq!(sc.data.train_paths.len(), 7);
    assert!(sc.model_path.ends_with("May07_mixed_gc_post_lr1e-4-checkpoint-1200"));
    assert_eq!(load("sft_sc__rl_c").data.train_paths.len(), 6);
}

#[test]
fn the_tiny_experiment_is_offline() {
    let tiny = load("tiny");
    assert_eq!(tiny.reward.enabled(), vec!["token_agreement"]);
    assert_eq!(experiment("tiny").verifier.api_base, "");
    assert!(tiny.model_path.ends_with("fixtures/bundle-tiny"));
    assert!(Path::new(&tiny.model_path).join("config.json").exists());
}

#[test]
fn a_closed_verifier_port_is_an_error_at_start() {
    use earl_eval::rewards::check_verifier_reachable;
    use std::time::Duration;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/rl/tiny.toml");
    let RlExperiment { rl, mut verifier } = RlExperiment::load_with_env(&path, &|_| None).unwrap();
    let mut cfg = rl.reward;
    let second = Duration::from_secs(1);
    assert!(check_verifier_reachable(&cfg, &verifier, second).is_ok(), "no verifier reward: nothing to check");
    cfg.viescore = true;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    verifier.api_base = format!("http://127.0.0.1:{port}/v1");
    check_verifier_reachable(&cfg, &verifier, second).unwrap();
    drop(listener); // the port is closed now
    let e = check_verifier_reachable(&cfg, &verifier, second).unwrap_err().to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")) && e.contains("does not accept connections"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

/// The verifier section is validated here, with the same located one-line errors as every experiment key; an
/// offline experiment may leave the verifier's variables unset.
#[test]
fn the_verifier_section_is_validated_by_earl_eval() {
    let d = tempfile::tempdir().unwrap();
    let tiny = dir().join("tiny.toml");
    let write = |extra: &str| {
        let p = d.path().join("v.toml");
        let text = format!("extends = {:?}\nrun_name = \"v\"\n{extra}", tiny.display().to_string());
        std::fs::write(&p, text).unwrap();
        p
    };
    let err = |extra: &str| RlExperiment::load_with_env(&write(extra), &env).unwrap_err().to_string();
    let online = "reward_compute_viescore = true\nreward_final_reward = \"viescore\"\n";
    let e = err(&format!("{online}reward_function_api_base = \"localhost:4877\"\n"));
    assert!(e.contains("v.toml: invalid config: line 5: reward_function_api_base: must be an http(s) URL"), "{e}");
    let e = err(&format!("{online}reward_function_api_base = \"${{NOT_SET_ANYWHERE}}\"\n"));
    assert!(e.contains("line 5: reward_function_api_base") && e.contains("NOT_SET_ANYWHERE is not set"), "{e}");
    let e = err(online);
    assert!(e.contains("reward_function_api_base: required when viescore"), "{e}");
    let e = err("reward_function_on_unparsable = \"skip\"\n");
    assert!(e.contains("line 3, column 33: reward_function_on_unparsable: unknown variant `skip`"), "{e}");
    let e = err("reward_function_max_concurency = 4\n");
    assert!(e.contains("line 3, column 34: unknown field `reward_function_max_concurency`"), "{e}");
    let e = err("reward_function_max_rounds = 0\n");
    assert!(e.contains("line 3: reward_function_max_rounds: must be >= 1") && !e.contains('\n'), "{e}");
    // Offline: the endpoint is neither needed nor expanded, templates resolve against the file that names them.
    let p = write("reward_function_api_base = \"${NOT_SET_ANYWHERE}\"\nreward_viescore_sc_template = \"./sc.txt\"\n");
    let v: VerifierConfig = RlExperiment::load_with_env(&p, &env).unwrap().verifier;
    assert_eq!(v.api_base, "");
    assert_eq!(v.viescore_sc_template, PromptSource::File(d.path().join("./sc.txt")));
    assert_eq!(v.viescore_pq_template, PromptSource::BuiltIn);
}

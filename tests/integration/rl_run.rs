//! The tiny GRPO experiment (experiments/rl/tiny.toml: tiny bundle, fixtures/rl-tiny, offline token-agreement
//! reward): it runs, mean reward rises, the same seed gives bitwise identical rewards and losses (with activation
//! checkpointing on or off), a run resumed from its checkpoint equals the uninterrupted one, checkpoints are saved
//! and kept on the reference's iterations, `model_context_size` caps the rollouts, and image rewards without a
//! vision tokenizer are refused.
use earl_core::rl::config::RlConfig;
use earl_core::rl::run::{IterationReport, RlOptions, RlRunner};
use earl_tests::fixtures_dir;
use tch::{Device, Kind};

fn config() -> RlConfig {
    let path = fixtures_dir().parent().unwrap().join("experiments/rl/tiny.toml");
    RlConfig::load_with_env(&path, &|_| None).expect("tiny RL config")
}

fn run(out: &std::path::Path, max_iterations: Option<u64>) -> Vec<IterationReport> {
    run_with(out, max_iterations, config())
}

fn runner(out: &std::path::Path, max_iterations: Option<u64>, cfg: RlConfig) -> earl_core::Result<RlRunner> {
    runner_on(out, max_iterations, cfg, earl_core::generate::Engine::Eager)
}

/// [`runner`] with rollouts on `engine`.
fn runner_on(
    out: &std::path::Path,
    max_iterations: Option<u64>,
    cfg: RlConfig,
    engine: earl_core::generate::Engine,
) -> earl_core::Result<RlRunner> {
    let verifier = earl_eval::VerifierConfig::from_rewards(&cfg.reward, &|_| None).unwrap();
    let rewards = earl_eval::reward_set(&cfg.reward, &verifier).unwrap();
    let opts = RlOptions {
        device: Device::Cpu,
        kind: Kind::Float,
        vq_dir: None,
        vq_kind: Kind::Float,
        out_dir: Some(out.to_path_buf()),
        max_iterations,
        engine,
    };
    RlRunner::new(cfg, rewards, &opts)
}

fn run_with(out: &std::path::Path, max_iterations: Option<u64>, cfg: RlConfig) -> Vec<IterationReport> {
    runner(out, max_iterations, cfg).unwrap().run(&mut |_| {}).unwrap()
}

/// Everything but wall-clock timings.
fn numbers(r: &IterationReport) -> (u64, f64, f64, f64, f64, f64, f64, f64) {
    (r.iteration, r.reward_mean, r.reward_std, r.loss, r.kl, r.policy_loss, r.grad_norm, r.response_len_mean)
}

#[test]
fn tiny_grpo_learns_is_deterministic_and_resumes_exactly() {
    let a = tempfile::tempdir().unwrap();
    let full = run(a.path(), None);
    assert_eq!(full.len(), 20);
    for r in &full {
        assert_eq!(r.non_stop_rate, 0.0, "the grid constraint always finishes a 3×3 image");
        assert_eq!(r.valid_image_rate, 1.0);
        assert!(r.loss.is_finite() && r.kl >= 0.0);
    }
    let first = full[..3].iter().map(|r| r.reward_mean).sum::<f64>() / 3.0;
    let last = full[17..].iter().map(|r| r.reward_mean).sum::<f64>() / 3.0;
    let curve: Vec<String> = full.iter().map(|r| format!("{:.3}", r.reward_mean)).collect();
    eprintln!("tiny GRPO reward curve: {}", curve.join(" "));
    assert!(last > first + 0.5, "mean reward should rise: {curve:?}");

    // Same seed, fresh directory, activation checkpointing switched: bitwise identical numbers (it is a memory
    // trade, not a numerical change, and f32 on CPU is exact).
    let b = tempfile::tempdir().unwrap();
    let mut flipped = config();
    flipped.optim.gradient_checkpointing = !flipped.optim.gradient_checkpointing;
    let again = run_with(b.path(), None, flipped);
    assert_eq!(full.iter().map(numbers).collect::<Vec<_>>(), again.iter().map(numbers).collect::<Vec<_>>());

    // tiny.toml saves every 5 and keeps every 5 of 20 iterations. As the reference: saves after iterations 5, 10,
    // 15 and the last, 19 (checkpoint-{i+1}); each save keeps the newest whole and only the model of older ones at
    // multiples of 5 — here all of them.
    let ckpts = a.path().join("checkpoints");
    let steps: Vec<u64> = earl_core::train::checkpoint::list_checkpoints(&ckpts).iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, vec![20], "only the newest checkpoint stays resumable");
    for step in [6, 11, 16] {
        let dir = ckpts.join(format!("checkpoint-{step}"));
        assert!(!dir.join("optimizer.safetensors").exists(), "{}", dir.display());
        earl_core::Emu3ForCausalLM::from_dir(&dir, Kind::Float, Device::Cpu).unwrap();
    }
    assert_eq!(std::fs::read_dir(&ckpts).unwrap().count(), 4);

    // Stop after 6 iterations (the first save, after iteration 5), then resume to the end.
    let c = tempfile::tempdir().unwrap();
    let head = run(c.path(), Some(6));
    let tail = run(c.path(), None);
    assert_eq!((head.len(), tail.len()), (6, 14));
    let resumed: Vec<_> = head.iter().chain(&tail).map(numbers).collect();
    assert_eq!(resumed, full.iter().map(numbers).collect::<Vec<_>>());
    assert!(a.path().join("metrics.jsonl").exists() && a.path().join("episodes/iter_00000/episodes.jsonl").exists());
    // The manifest records the rewards' own records (none for the offline reward; the verifier's prompt sources
    // are tested in earl-eval).
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.path().join("run_manifest.json")).unwrap()).unwrap();
    assert_eq!(
        (&manifest["run_name"], &manifest["rewards"]),
        (&serde_json::json!("tiny"), &serde_json::json!({ "token_agreement": null }))
    );
}

/// The chunked policy objective (head, log-probs and loss a few positions at a time) trains like the whole one: the
/// first iteration (same rollouts, one update) agrees to float summation order.
#[test]
fn chunked_policy_loss_matches_the_whole_one() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut whole = config();
    whole.optim.gradient_checkpointing = true;
    whole.optim.loss_chunk_tokens = 0;
    let mut chunked = whole.clone();
    chunked.optim.loss_chunk_tokens = 3;
    let (x, y) = (&run_with(a.path(), Some(1), whole)[0], &run_with(b.path(), Some(1), chunked)[0]);
    assert_eq!((x.reward_mean, x.response_len_mean), (y.reward_mean, y.response_len_mean), "same rollouts");
    // The two paths differ only in summation order (the head's matmul on 3 positions instead of all, the loss summed
    // chunk by chunk), so they agree to the worst-case f32 bound of the longest rounding chain: the tiny bundle's
    // forward (2 layers, hidden 64, MLP 128, ≤ 128 positions, vocabulary 731), then the mean over the iteration's
    // 32 × 16 completion tokens. The losses are means of O(1) terms (standardised advantages times ratios that are
    // exactly 1 in the first iteration) whose sum cancels to ~1e-2, so their scale is 1, not the loss itself; the
    // entropy and grad norm are sums of positive terms, so their own magnitude is the scale. The gradients' chain
    // is the forward's twice (back through the same reductions) plus the weight gradients' sum over all 32 × 128
    // positions. Observed: ~2e-8 absolute on the loss.
    let chain = earl_tests::tol::lm_chain(2, 64, 128, 128, 731) + 32 * 16;
    let grad_chain = 2 * chain + 32 * 128;
    for (what, p, q, n, mass) in [
        ("loss", x.loss, y.loss, chain, 1.0),
        ("kl", x.kl, y.kl, chain, 1.0),
        ("policy loss", x.policy_loss, y.policy_loss, chain, 1.0),
        ("grad norm", x.grad_norm, y.grad_norm, grad_chain, x.grad_norm),
        ("entropy", x.entropy, y.entropy, chain, x.entropy),
    ] {
        let bound = earl_tests::tol::f32_worst(n, mass);
        assert!((p - q).abs() <= bound, "{what}: whole {p} vs chunked {q} (bound {bound:.2e})");
    }
    assert!(x.grad_norm > 0.0 && x.entropy > 0.0);
}

/// Prompt lengths of the tiny experiment's records (what the rollouts feed the model).
fn prompt_lengths(cfg: &RlConfig) -> Vec<usize> {
    use earl_core::data::{EditRecord, ShardReader};
    let tok = earl_core::tokenizer::Emu3Tokenizer::from_dir(std::path::Path::new(&cfg.tokenizer_path)).unwrap();
    let reader = ShardReader::open(&cfg.data.train_paths[0]).unwrap();
    let prefill = earl_core::prompt::Prefill::Literal(cfg.generation.assistant_prefill.clone());
    (0..reader.len())
        .map(|i| {
            let r: EditRecord = reader.get(i).unwrap();
            earl_core::edit::edit_request(&tok, &r.source, &r.instruction, &prefill).unwrap().prompt.len()
        })
        .collect()
}

/// model_context_size bounds prompt + response as vLLM's max_model_len does in the reference (at most
/// context + 1 − prompt new tokens), and a prompt that does not fit is skipped (no tokens, finish "length").
#[test]
fn model_context_size_caps_prompt_plus_response() {
    let base = config();
    let lens = prompt_lengths(&base);
    let (shortest, longest) = (*lens.iter().min().unwrap(), *lens.iter().max().unwrap());
    // A 3×3 image after the header prefill needs 3·4 + 3 = 15 tokens; with context = longest + 1 a prompt of length
    // p gets longest + 2 − p < 15 tokens, so no completion stops.
    assert!(longest + 2 - shortest < 15, "fixture prompts {shortest}..{longest} differ too much for this test");
    let mut tight = base.clone();
    tight.optim.num_iterations = 2;
    tight.logging.save_checkpoints_every_n_iterations = 0;
    tight.generation.model_context_size = longest + 1;
    assert!(tight.generation.model_context_size > tight.generation.max_response_tokens, "a valid config");
    let d = tempfile::tempdir().unwrap();
    for r in run_with(d.path(), None, tight.clone()) {
        assert!(r.response_len_mean <= 2.0 + (longest - shortest) as f64, "{r:?}");
        assert!(r.response_len_mean >= 2.0, "every prompt fits and gets ≥ 2 tokens: {r:?}");
        assert_eq!((r.non_stop_rate, r.reward_mean), (1.0, 0.0), "no completion can stop");
    }
    // Shorter than every prompt: all skipped, the iteration still runs (and trains on nothing).
    let mut none_fit = tight;
    none_fit.generation.model_context_size = shortest - 1;
    let d = tempfile::tempdir().unwrap();
    for r in run_with(d.path(), None, none_fit) {
        assert_eq!((r.response_len_mean, r.non_stop_rate, r.valid_image_rate), (0.0, 1.0, 0.0), "{r:?}");
        assert_eq!(r.loss, 0.0);
    }
}

/// A reward that scores pixels needs the decoded images: without a vision tokenizer the run is refused at start
/// (before, it scored 1×1 blank stand-ins).
#[test]
fn image_rewards_without_a_vision_tokenizer_are_refused() {
    let mut cfg = config();
    cfg.reward.pixel_similarity = true;
    let d = tempfile::tempdir().unwrap();
    let e = runner(d.path(), Some(1), cfg).err().expect("refused").to_string();
    assert!(e.contains("pixel_similarity") && e.contains("vision tokenizer") && e.contains("vq_dir"), "{e}");
    assert!(!e.contains('\n') && !d.path().join("metrics.jsonl").exists(), "{e}");
}

/// A run stopped between checkpoints (saved after iterations 5, 10, 15 and the last, as the reference) and resumed
/// logs every iteration once: the lines of the iterations it redoes are dropped first. While a run holds the directory, a second one is refused.
#[test]
fn a_resumed_run_logs_each_iteration_once_and_a_busy_directory_is_refused() {
    let c = tempfile::tempdir().unwrap();
    run(c.path(), Some(7));
    let tail = run(c.path(), Some(10));
    assert_eq!(tail.first().map(|r| r.iteration), Some(6), "resumed from checkpoint-6, saved after iteration 5");
    let logged: Vec<u64> = std::fs::read_to_string(c.path().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(logged, (0..10).collect::<Vec<_>>());

    // GRPO checkpoints record the config: a resume with another learning rate is refused, naming the field, while
    // another logging cadence resumes.
    let mut other = config();
    other.optim.learning_rate *= 2.0;
    let err = runner(c.path(), Some(12), other).unwrap().run(&mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("optim.learning_rate: ") && err.contains("use a new output directory"), "{err}");
    let mut bookkeeping = config();
    bookkeeping.logging.log_episodes_every_n_iterations += 3;
    let more = runner(c.path(), Some(7), bookkeeping).unwrap().run(&mut |_| {}).unwrap();
    assert_eq!(more.first().map(|r| r.iteration), Some(6), "resumed from checkpoint-6 again");

    let _held = earl_core::runlock::RunLock::acquire(c.path()).unwrap();
    let err = runner(c.path(), None, config()).unwrap().run(&mut |_| {}).unwrap_err().to_string();
    assert!(err.contains(&format!("is in use by pid {}", std::process::id())), "{err}");
}

#[test]
fn graph_rollouts_on_a_cpu_are_refused_in_one_line() {
    let out = tempfile::tempdir().unwrap();
    let graph = earl_core::generate::Engine::Graph;
    let e = runner_on(out.path(), Some(1), config(), graph).err().expect("graph rollouts on a CPU").to_string();
    assert!(e.contains("the graph engine needs CUDA") && !e.contains('\n'), "{e}");
}

//! Validation of a merged RL experiment, one conversion per section (data, rollouts, optimisation, GRPO, rewards,
//! names and logging). Defaults are EARL's (`TrainingArgs` and rl/configs/grpo.jsonnet) unless a comment says why.
use super::*;
use crate::experiment::Resolver;
use crate::generate::TopK;

fn mixture(r: &Resolver<'_>, coefs: Option<Vec<f64>>, n: usize, key: &str, paths_key: &str) -> Result<Mixture> {
    let coefs = coefs.unwrap_or_default();
    if coefs.is_empty() {
        return Ok(Mixture::UpsampleToLargest);
    }
    r.check(coefs.len() == n, key, || format!("{key} has {} values but {paths_key} lists {n} datasets", coefs.len()))?;
    r.check(coefs.iter().all(|c| c.is_finite() && *c >= 0.0), key, || format!("{key} must be finite and >= 0"))?;
    Ok(Mixture::Coefficients(coefs))
}

/// Fields of EARL's `TrainingArgs` that would be dead here, each rejected with why. The validation set is built by
/// the reference but never evaluated (`train_dataset, _ = create_datasets(…)`), so only empty lists pass.
fn reject_reference_only(r: &Resolver<'_>, raw: &RawRlConfig) -> Result<()> {
    const NO_UPLOAD: &str = "earl never uploads; checkpoints stay in the run directory";
    const PADDING: &str = "it only pads the reference's training batch (no effect on the result)";
    let val_set = raw.val_paths_file.as_ref().is_some_and(|v| !v.is_empty());
    let val_coefs = raw.val_coefficients.as_ref().is_some_and(|v| !v.is_empty());
    let why = [
        (val_set, "val_paths_file", "the reference builds a validation set from it but never evaluates it"),
        (val_coefs, "val_coefficients", "it weights the validation set, which is never evaluated"),
        (raw.vllm_gpu_memory_utilization.is_some(), "vllm_gpu_memory_utilization", "it sizes the reference's vLLM"),
        (raw.push_to_hub_every_n_iterations.is_some(), "push_to_hub_every_n_iterations", NO_UPLOAD),
        (raw.push_to_hub_repo_id.is_some(), "push_to_hub_repo_id", NO_UPLOAD),
        (raw.model_revision.is_some(), "model_revision", "earl reads model_path from disk: point it at that revision"),
        (raw.max_prompt_len.is_some(), "max_prompt_len", PADDING),
        (raw.max_completion_len.is_some(), "max_completion_len", PADDING),
    ];
    match why.into_iter().find(|(set, _, _)| *set) {
        Some((_, key, reason)) => Err(r.err(key, format!("`{key}` is not supported: {reason}; remove it"))),
        None => Ok(()),
    }
}

fn data(r: &Resolver<'_>, raw: &RawRlConfig) -> Result<DataConfig> {
    let train = r.need(raw.train_paths_file.as_ref(), "train_paths_file")?;
    r.check(!train.is_empty(), "train_paths_file", || "train_paths_file is empty".into())?;
    let train_paths = r.paths("train_paths_file", train)?;
    let n = train_paths.len();
    Ok(DataConfig {
        train_mixture: mixture(r, raw.coefficients.clone(), n, "coefficients", "train_paths_file")?,
        train_paths,
    })
}

fn rollout(r: &Resolver<'_>, raw: &RawRlConfig) -> Result<RolloutConfig> {
    let episodes = r.need(raw.episodes_per_iteration, "episodes_per_iteration")?;
    let group = r.need(raw.generations_per_sample, "generations_per_sample")?;
    r.check(group >= 2, "generations_per_sample", || {
        format!("generations_per_sample must be >= 2 for group advantages, got {group}")
    })?;
    r.check(episodes > 0 && episodes % group == 0, "episodes_per_iteration", || {
        format!("episodes_per_iteration ({episodes}) must be a positive multiple of generations_per_sample ({group})")
    })?;
    let temperature = r.need(raw.temperature, "temperature")?;
    r.check(temperature.is_finite() && temperature > 0.0, "temperature", || {
        format!("temperature must be > 0, got {temperature}")
    })?;
    let top_p = raw.top_p.unwrap_or(1.0);
    r.check(top_p > 0.0 && top_p <= 1.0, "top_p", || format!("top_p must be in (0, 1], got {top_p}"))?;
    let max_response_tokens = r.need(raw.max_response_tokens, "max_response_tokens")?;
    r.check(max_response_tokens >= 1, "max_response_tokens", || "max_response_tokens must be >= 1".into())?;
    let model_context_size = raw.model_context_size.unwrap_or(4096);
    r.check(model_context_size > max_response_tokens, "model_context_size", || {
        format!("model_context_size ({model_context_size}) leaves no room for a prompt of max_response_tokens ({max_response_tokens})")
    })?;
    Ok(RolloutConfig {
        episodes_per_iteration: episodes,
        generations_per_sample: group,
        prompts_per_iteration: episodes / group,
        sampling: SamplingParams { temperature, top_p, top_k: raw.top_k.unwrap_or(TopK::Off) },
        max_response_tokens,
        model_context_size,
        grid_constraint: raw.emu3_use_logit_processor.unwrap_or(true),
        assistant_prefill: r.need(raw.assistant_prefill.clone(), "assistant_prefill")?,
    })
}

/// EARL's DeepSpeed AdamW: β (0.9, 0.999), ε 1e-8, no weight decay, clip 1.0.
fn optim(r: &Resolver<'_>, raw: &RawRlConfig) -> Result<OptimConfig> {
    let o = OptimConfig {
        learning_rate: r.need(raw.learning_rate, "learning_rate")?,
        num_iterations: r.need(raw.num_iterations, "num_iterations")?,
        per_device_batch_size: r.need(raw.per_device_batch_size, "per_device_batch_size")?,
        adam_beta1: raw.adam_beta1.unwrap_or(0.9),
        adam_beta2: raw.adam_beta2.unwrap_or(0.999),
        adam_epsilon: raw.adam_epsilon.unwrap_or(1e-8),
        weight_decay: raw.weight_decay.unwrap_or(0.0),
        max_grad_norm: raw.max_grad_norm.unwrap_or(1.0),
        gradient_checkpointing: raw.gradient_checkpointing.unwrap_or(true),
        loss_chunk_tokens: raw.loss_chunk_tokens.unwrap_or(0),
        nan_policy: raw.nan_policy.unwrap_or_default(),
    };
    let lr = o.learning_rate;
    r.check(lr.is_finite() && lr > 0.0, "learning_rate", || "learning_rate must be > 0".into())?;
    r.check(o.num_iterations >= 1, "num_iterations", || "num_iterations must be >= 1".into())?;
    r.check(o.per_device_batch_size >= 1, "per_device_batch_size", || "per_device_batch_size must be >= 1".into())?;
    for (b, key) in [(o.adam_beta1, "adam_beta1"), (o.adam_beta2, "adam_beta2")] {
        r.check((0.0..1.0).contains(&b), key, || format!("{key} must be in [0, 1), got {b}"))?;
    }
    r.check(o.adam_epsilon > 0.0, "adam_epsilon", || "adam_epsilon must be > 0".into())?;
    r.check(o.weight_decay >= 0.0, "weight_decay", || "weight_decay must be >= 0".into())?;
    r.check(o.max_grad_norm > 0.0, "max_grad_norm", || "max_grad_norm must be > 0".into())?;
    let chunk = o.loss_chunk_tokens;
    r.check(chunk >= 0 && (chunk == 0 || o.gradient_checkpointing), "loss_chunk_tokens", || {
        "loss_chunk_tokens must be >= 0, and > 0 only with gradient_checkpointing = true".into()
    })?;
    Ok(o)
}

fn grpo(r: &Resolver<'_>, raw: &RawRlConfig) -> Result<GrpoConfig> {
    let t = TokenSchedule {
        train_text_tokens_only: raw.train_text_tokens_only.unwrap_or(false),
        text_only_cycle_steps: raw.text_only_cycle_steps.unwrap_or(10),
        text_only_steps: raw.text_only_steps.unwrap_or(10),
        train_vision_tokens_only: raw.train_vision_tokens_only.unwrap_or(false),
        vision_only_cycle_steps: raw.vision_only_cycle_steps.unwrap_or(10),
        vision_only_steps: raw.vision_only_steps.unwrap_or(10),
    };
    r.check(!(t.train_text_tokens_only && t.train_vision_tokens_only), "train_vision_tokens_only", || {
        "train_text_tokens_only and train_vision_tokens_only exclude each other (together they can mask every token)"
            .into()
    })?;
    for (cycle, steps, name) in [
        (t.text_only_cycle_steps, t.text_only_steps, "text_only"),
        (t.vision_only_cycle_steps, t.vision_only_steps, "vision_only"),
    ] {
        r.check(cycle >= 1 && steps <= cycle, &format!("{name}_steps"), || {
            format!("{name}_cycle_steps ({cycle}) must be >= 1 and >= {name}_steps ({steps})")
        })?;
    }
    let kl_coeff = r.need(raw.kl_coeff, "kl_coeff")?;
    r.check(kl_coeff.is_finite() && kl_coeff >= 0.0, "kl_coeff", || format!("kl_coeff must be >= 0, got {kl_coeff}"))?;
    Ok(GrpoConfig {
        kl_coeff,
        separate_language_and_vision_vocabs: raw.separate_language_and_vision_vocabs.unwrap_or(true),
        token_schedule: t,
    })
}

/// EARL's defaults: VIEScore and GroundScore both on, final = VIEScore.
fn rewards(r: &Resolver<'_>, raw: &RawRlConfig, verifier: Layers) -> Result<RewardConfig> {
    let final_reward = FinalReward::parse(raw.reward_final_reward.as_deref().unwrap_or("viescore"))
        .map_err(|e| r.err("reward_final_reward", e))?;
    let reward = RewardConfig {
        viescore: raw.reward_compute_viescore.unwrap_or(true),
        ground_score: raw.reward_compute_ground_score.unwrap_or(true),
        token_agreement: raw.reward_compute_token_agreement.unwrap_or(false),
        pixel_similarity: raw.reward_compute_pixel_similarity.unwrap_or(false),
        mini: raw.reward_compute_mini.unwrap_or(false),
        final_reward,
        verifier,
    };
    let enabled = reward.enabled();
    for n in reward.final_reward.needs() {
        r.check(enabled.contains(&n), "reward_final_reward", || {
            format!("reward_final_reward needs the {n:?} reward; enable reward_compute_{n} (enabled: {enabled:?})")
        })?;
    }
    Ok(reward)
}

fn logging(raw: &RawRlConfig) -> LoggingConfig {
    LoggingConfig {
        log_episodes_every_n_iterations: raw.log_episodes_every_n_iterations.unwrap_or(20),
        save_checkpoints_every_n_iterations: raw.save_checkpoints_every_n_iterations.unwrap_or(0),
        keep_checkpoints_every_n_iterations: raw.keep_checkpoints_every_n_iterations.unwrap_or(0),
    }
}

/// The run name (default: the loaded file's stem) and the model, tokenizer and run-directory paths.
fn names(r: &Resolver<'_>, raw: &RawRlConfig) -> Result<(String, String, String, PathBuf)> {
    let path = r.layers().source();
    let run_name = match &raw.run_name {
        Some(s) => r.expand("run_name", s)?,
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    r.check(!run_name.is_empty() && !run_name.contains(['/', '\\']), "run_name", || {
        format!("run_name must be a non-empty name without path separators, got {run_name:?}")
    })?;
    // Directories or hub ids: `./` and `../` resolve against the file that sets them, as every path does.
    let model_path = r.path("model_path", r.need(raw.model_path.as_ref(), "model_path")?)?;
    let model_path = model_path.to_string_lossy().into_owned();
    let tokenizer_path = match &raw.tokenizer_path {
        Some(t) => r.path("tokenizer_path", t)?.to_string_lossy().into_owned(),
        None => model_path.clone(),
    };
    let base_exp_dir = r.path("base_exp_dir", r.need(raw.base_exp_dir.as_ref(), "base_exp_dir")?)?;
    Ok((run_name, model_path, tokenizer_path, base_exp_dir))
}

pub(super) fn validate(layers: &Layers, verifier: Layers, env: &dyn Fn(&str) -> Option<String>) -> Result<RlConfig> {
    let raw: RawRlConfig = layers.deserialize()?;
    let r = Resolver::new(layers, env);
    reject_reference_only(&r, &raw)?;
    let (data, generation, optim, grpo) = (data(&r, &raw)?, rollout(&r, &raw)?, optim(&r, &raw)?, grpo(&r, &raw)?);
    let reward = rewards(&r, &raw, verifier)?;
    let (run_name, model_path, tokenizer_path, base_exp_dir) = names(&r, &raw)?;
    Ok(RlConfig {
        source: layers.source().to_path_buf(),
        run_name,
        base_exp_dir,
        model_path,
        tokenizer_path,
        random_seed: raw.random_seed.unwrap_or(42),
        data,
        generation,
        optim,
        grpo,
        reward,
        logging: logging(&raw),
    })
}

//! Reading, merging and validating RL TOML files (see the parent module for the rules).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

/// Merged key → (value, directory of the file that set it).
pub(super) type Merged = BTreeMap<String, (toml::Value, PathBuf)>;

fn config_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Config { path: path.to_path_buf(), msg: msg.into() }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Parses and type-checks one file on its own; returns it both typed and as a table.
pub(super) fn parse_file(path: &Path) -> Result<(RawRlConfig, toml::Table)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let located = |e: toml::de::Error| {
        let at = e.span().map(|s| line_col(&text, s.start));
        let msg = e.message().trim().replace('\n', " ");
        match at {
            Some((l, c)) => config_err(path, format!("line {l}, column {c}: {msg}")),
            None => config_err(path, msg),
        }
    };
    let table: toml::Table = toml::from_str(&text).map_err(located)?;
    let raw: RawRlConfig = toml::from_str(&text).map_err(located)?;
    Ok((raw, table))
}

/// Loads `path` and everything it extends, later files overriding earlier ones.
pub(super) fn merge_files(path: &Path) -> Result<Merged> {
    let mut merged = Merged::new();
    merge_into(path, &mut Vec::new(), &mut merged)?;
    Ok(merged)
}

fn merge_into(path: &Path, stack: &mut Vec<PathBuf>, merged: &mut Merged) -> Result<()> {
    let canonical = path.canonicalize().map_err(|e| Error::io(path, e))?;
    if stack.contains(&canonical) {
        return Err(config_err(path, "`extends` forms a cycle"));
    }
    let (raw, table) = parse_file(path)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    stack.push(canonical);
    let bases = match raw.extends {
        None => vec![],
        Some(Extends::One(s)) => vec![s],
        Some(Extends::Many(v)) => v,
    };
    for base in bases {
        merge_into(&dir.join(&base), stack, merged)?;
    }
    stack.pop();
    for (k, v) in table {
        if k != "extends" {
            merged.insert(k, (v, dir.clone()));
        }
    }
    Ok(())
}

/// Expands `${VAR}` and `${VAR:-default}` in `s`; `what` names the value in errors.
pub fn expand_vars(s: &str, env: &dyn Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{expr}}}` is not a variable reference"));
        }
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

struct Ctx<'a> {
    path: &'a Path,
    merged: &'a Merged,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    fn err(&self, msg: impl Into<String>) -> Error {
        config_err(self.path, msg)
    }

    fn dir_of(&self, key: &str) -> PathBuf {
        self.merged.get(key).map(|(_, d)| d.clone()).unwrap_or_default()
    }

    fn expand(&self, key: &str, s: &str) -> Result<String> {
        expand_vars(s, self.env).map_err(|m| self.err(format!("{key}: {m}")))
    }

    /// `./x` and `../x` are relative to the file that set `key`; anything else is taken as written.
    fn path(&self, key: &str, s: &str) -> Result<PathBuf> {
        let s = self.expand(key, s)?;
        if s.is_empty() {
            return Err(self.err(format!("{key}: empty path")));
        }
        Ok(if s.starts_with("./") || s.starts_with("../") { self.dir_of(key).join(s) } else { PathBuf::from(s) })
    }

    fn prompt(&self, key: &str, s: Option<&String>) -> Result<PromptSource> {
        match s {
            None => Ok(PromptSource::BuiltIn),
            Some(s) if s.is_empty() => Ok(PromptSource::BuiltIn),
            Some(s) => self.path(key, s).map(PromptSource::File),
        }
    }
}

fn need<T>(ctx: &Ctx<'_>, v: Option<T>, key: &str) -> Result<T> {
    v.ok_or_else(|| ctx.err(format!("missing required field `{key}`")))
}

fn check(ctx: &Ctx<'_>, ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(ctx.err(msg()))
    }
}

fn mixture(ctx: &Ctx<'_>, coefs: Option<Vec<f64>>, n: usize, key: &str, paths_key: &str) -> Result<Mixture> {
    let coefs = coefs.unwrap_or_default();
    if coefs.is_empty() {
        return Ok(Mixture::UpsampleToLargest);
    }
    check(ctx, coefs.len() == n, || format!("{key} has {} values but {paths_key} lists {n} datasets", coefs.len()))?;
    check(ctx, coefs.iter().all(|c| c.is_finite() && *c >= 0.0), || format!("{key} must be finite and >= 0"))?;
    Ok(Mixture::Coefficients(coefs))
}

/// Fields of EARL's `TrainingArgs` that would be dead here, each rejected with why. The validation set is built by
/// the reference but never evaluated (`train_dataset, _ = create_datasets(…)`), so only empty lists pass.
fn reject_reference_only(ctx: &Ctx<'_>, raw: &RawRlConfig) -> Result<()> {
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
        Some((_, key, reason)) => Err(ctx.err(format!("`{key}` is not supported: {reason}; remove it"))),
        None => Ok(()),
    }
}

pub(super) fn validate(path: &Path, merged: Merged, env: &dyn Fn(&str) -> Option<String>) -> Result<RlConfig> {
    let table: toml::Table = merged.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect();
    let raw: RawRlConfig =
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| config_err(path, e.message().trim()))?;
    let ctx = Ctx { path, merged: &merged, env };
    reject_reference_only(&ctx, &raw)?;

    // Data.
    let train = need(&ctx, raw.train_paths_file, "train_paths_file")?;
    check(&ctx, !train.is_empty(), || "train_paths_file is empty".into())?;
    let train_paths = train.iter().map(|p| ctx.path("train_paths_file", p)).collect::<Result<Vec<_>>>()?;
    let data = DataConfig {
        train_mixture: mixture(&ctx, raw.coefficients, train_paths.len(), "coefficients", "train_paths_file")?,
        train_paths,
    };

    // Generation.
    let episodes = need(&ctx, raw.episodes_per_iteration, "episodes_per_iteration")?;
    let group = need(&ctx, raw.generations_per_sample, "generations_per_sample")?;
    check(&ctx, group >= 2, || format!("generations_per_sample must be >= 2 for group advantages, got {group}"))?;
    check(&ctx, episodes > 0 && episodes % group == 0, || {
        format!("episodes_per_iteration ({episodes}) must be a positive multiple of generations_per_sample ({group})")
    })?;
    let temperature = need(&ctx, raw.temperature, "temperature")?;
    check(&ctx, temperature.is_finite() && temperature > 0.0, || {
        format!("temperature must be > 0, got {temperature}")
    })?;
    let top_p = raw.top_p.unwrap_or(1.0);
    check(&ctx, top_p > 0.0 && top_p <= 1.0, || format!("top_p must be in (0, 1], got {top_p}"))?;
    let top_k = match raw.top_k.unwrap_or(-1) {
        -1 => TopK::Off,
        k if k >= 1 => TopK::K(k as usize),
        k => return Err(ctx.err(format!("top_k must be -1 (off) or >= 1, got {k}"))),
    };
    let max_response_tokens = need(&ctx, raw.max_response_tokens, "max_response_tokens")?;
    check(&ctx, max_response_tokens >= 1, || "max_response_tokens must be >= 1".into())?;
    let model_context_size = raw.model_context_size.unwrap_or(4096);
    check(&ctx, model_context_size > max_response_tokens, || {
        format!("model_context_size ({model_context_size}) leaves no room for a prompt of max_response_tokens ({max_response_tokens})")
    })?;
    let generation = GenerationConfig {
        episodes_per_iteration: episodes,
        generations_per_sample: group,
        prompts_per_iteration: episodes / group,
        temperature,
        top_p,
        top_k,
        max_response_tokens,
        model_context_size,
        grid_constraint: raw.emu3_use_logit_processor.unwrap_or(true),
        assistant_prefill: need(&ctx, raw.assistant_prefill, "assistant_prefill")?,
    };

    // Optimisation (EARL's DeepSpeed AdamW: β (0.9, 0.999), ε 1e-8, no weight decay, clip 1.0).
    let optim = OptimConfig {
        learning_rate: need(&ctx, raw.learning_rate, "learning_rate")?,
        num_iterations: need(&ctx, raw.num_iterations, "num_iterations")?,
        per_device_batch_size: need(&ctx, raw.per_device_batch_size, "per_device_batch_size")?,
        adam_beta1: raw.adam_beta1.unwrap_or(0.9),
        adam_beta2: raw.adam_beta2.unwrap_or(0.999),
        adam_epsilon: raw.adam_epsilon.unwrap_or(1e-8),
        weight_decay: raw.weight_decay.unwrap_or(0.0),
        max_grad_norm: raw.max_grad_norm.unwrap_or(1.0),
        gradient_checkpointing: raw.gradient_checkpointing.unwrap_or(true),
        loss_chunk_tokens: raw.loss_chunk_tokens.unwrap_or(0),
    };
    let o = &optim;
    check(&ctx, o.learning_rate.is_finite() && o.learning_rate > 0.0, || "learning_rate must be > 0".into())?;
    check(&ctx, o.num_iterations >= 1, || "num_iterations must be >= 1".into())?;
    check(&ctx, o.per_device_batch_size >= 1, || "per_device_batch_size must be >= 1".into())?;
    for (b, key) in [(o.adam_beta1, "adam_beta1"), (o.adam_beta2, "adam_beta2")] {
        check(&ctx, (0.0..1.0).contains(&b), || format!("{key} must be in [0, 1), got {b}"))?;
    }
    check(&ctx, o.adam_epsilon > 0.0, || "adam_epsilon must be > 0".into())?;
    check(&ctx, o.weight_decay >= 0.0, || "weight_decay must be >= 0".into())?;
    check(&ctx, o.max_grad_norm > 0.0, || "max_grad_norm must be > 0".into())?;
    check(&ctx, o.loss_chunk_tokens >= 0 && (o.loss_chunk_tokens == 0 || o.gradient_checkpointing), || {
        "loss_chunk_tokens must be >= 0, and > 0 only with gradient_checkpointing = true".into()
    })?;

    // GRPO.
    let token_schedule = TokenSchedule {
        train_text_tokens_only: raw.train_text_tokens_only.unwrap_or(false),
        text_only_cycle_steps: raw.text_only_cycle_steps.unwrap_or(10),
        text_only_steps: raw.text_only_steps.unwrap_or(10),
        train_vision_tokens_only: raw.train_vision_tokens_only.unwrap_or(false),
        vision_only_cycle_steps: raw.vision_only_cycle_steps.unwrap_or(10),
        vision_only_steps: raw.vision_only_steps.unwrap_or(10),
    };
    let t = &token_schedule;
    check(&ctx, !(t.train_text_tokens_only && t.train_vision_tokens_only), || {
        "train_text_tokens_only and train_vision_tokens_only exclude each other (together they can mask every token)"
            .into()
    })?;
    for (cycle, steps, name) in [
        (t.text_only_cycle_steps, t.text_only_steps, "text_only"),
        (t.vision_only_cycle_steps, t.vision_only_steps, "vision_only"),
    ] {
        check(&ctx, cycle >= 1 && steps <= cycle, || {
            format!("{name}_cycle_steps ({cycle}) must be >= 1 and >= {name}_steps ({steps})")
        })?;
    }
    let kl_coeff = need(&ctx, raw.kl_coeff, "kl_coeff")?;
    check(&ctx, kl_coeff.is_finite() && kl_coeff >= 0.0, || format!("kl_coeff must be >= 0, got {kl_coeff}"))?;
    let grpo = GrpoConfig {
        kl_coeff,
        separate_language_and_vision_vocabs: raw.separate_language_and_vision_vocabs.unwrap_or(true),
        token_schedule,
    };

    // Rewards (EARL defaults: VIEScore and GroundScore both on, final = VIEScore).
    let final_reward = FinalReward::parse(raw.reward_final_reward.as_deref().unwrap_or("viescore"))
        .map_err(|e| ctx.err(format!("reward_final_reward: {e}")))?;
    let viescore = raw.reward_compute_viescore.unwrap_or(true);
    let ground_score = raw.reward_compute_ground_score.unwrap_or(true);
    let on_unparsable = match raw.reward_function_on_unparsable.as_deref().unwrap_or("error") {
        "error" => OnUnparsable::Error,
        "zero" => OnUnparsable::Zero,
        other => {
            return Err(ctx.err(format!("reward_function_on_unparsable must be \"error\" or \"zero\", got {other:?}")))
        }
    };
    let needs_verifier = viescore || ground_score;
    let api_base = match (&raw.reward_function_api_base, needs_verifier) {
        (_, false) => String::new(),
        (None, true) => {
            return Err(ctx.err("reward_function_api_base is required when viescore or ground_score is enabled"))
        }
        (Some(s), true) => {
            let url = ctx.expand("reward_function_api_base", s)?;
            check(&ctx, url.starts_with("http://") || url.starts_with("https://"), || {
                format!("reward_function_api_base must be an http(s) URL, got {url:?}")
            })?;
            url
        }
    };
    let api_key = match &raw.reward_function_api_key {
        Some(k) => ctx.expand("reward_function_api_key", k)?,
        None => String::new(),
    };
    let verifier = VerifierConfig {
        api_base,
        model: raw.reward_function_api_model_name.unwrap_or_else(|| "Qwen/Qwen2.5-VL-72B-Instruct".into()),
        api_key,
        max_concurrency: raw.reward_function_max_concurrency.unwrap_or(64),
        timeout_s: raw.reward_function_timeout_s.unwrap_or(600.0),
        max_attempts: raw.reward_function_max_attempts.unwrap_or(5),
        max_rounds: raw.reward_function_max_rounds.unwrap_or(5),
        on_unparsable,
        viescore_sc_template: ctx.prompt("reward_viescore_sc_template", raw.reward_viescore_sc_template.as_ref())?,
        viescore_pq_template: ctx.prompt("reward_viescore_pq_template", raw.reward_viescore_pq_template.as_ref())?,
        ground_score_system_template: ctx
            .prompt("reward_ground_score_system_template", raw.reward_ground_score_system_template.as_ref())?,
        ground_score_user_template: ctx
            .prompt("reward_ground_score_user_template", raw.reward_ground_score_user_template.as_ref())?,
    };
    let v = &verifier;
    check(&ctx, v.max_concurrency >= 1, || "reward_function_max_concurrency must be >= 1".into())?;
    check(&ctx, v.timeout_s.is_finite() && v.timeout_s > 0.0, || "reward_function_timeout_s must be > 0".into())?;
    check(&ctx, v.max_attempts >= 1 && v.max_rounds >= 1, || {
        "reward_function_max_attempts/max_rounds must be >= 1".into()
    })?;
    let reward = RewardConfig {
        viescore,
        ground_score,
        token_agreement: raw.reward_compute_token_agreement.unwrap_or(false),
        pixel_similarity: raw.reward_compute_pixel_similarity.unwrap_or(false),
        final_reward,
        verifier,
    };
    let enabled = reward.enabled();
    for n in reward.final_reward.needs() {
        check(&ctx, enabled.contains(&n), || {
            format!("reward_final_reward needs the {n:?} reward; enable reward_compute_{n} (enabled: {enabled:?})")
        })?;
    }

    // Names, paths, logging.
    let run_name = match &raw.run_name {
        Some(s) => ctx.expand("run_name", s)?,
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    check(&ctx, !run_name.is_empty() && !run_name.contains(['/', '\\']), || {
        format!("run_name must be a non-empty name without path separators, got {run_name:?}")
    })?;
    // Directories or hub ids: `./` and `../` resolve against the file that sets them, as every path does.
    let model_path = ctx.path("model_path", &need(&ctx, raw.model_path.clone(), "model_path")?)?;
    let model_path = model_path.to_string_lossy().into_owned();
    let tokenizer_path = match &raw.tokenizer_path {
        Some(t) => ctx.path("tokenizer_path", t)?.to_string_lossy().into_owned(),
        None => model_path.clone(),
    };
    Ok(RlConfig {
        source: path.to_path_buf(),
        run_name,
        base_exp_dir: ctx.path("base_exp_dir", &need(&ctx, raw.base_exp_dir.clone(), "base_exp_dir")?)?,
        model_path,
        tokenizer_path,
        random_seed: raw.random_seed.unwrap_or(42),
        data,
        generation,
        optim,
        grpo,
        reward,
        logging: LoggingConfig {
            log_episodes_every_n_iterations: raw.log_episodes_every_n_iterations.unwrap_or(20),
            save_checkpoints_every_n_iterations: raw.save_checkpoints_every_n_iterations.unwrap_or(0),
            keep_checkpoints_every_n_iterations: raw.keep_checkpoints_every_n_iterations.unwrap_or(0),
        },
    })
}

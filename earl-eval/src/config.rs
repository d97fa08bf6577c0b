//! The verifier section of an RL experiment, which this crate owns because it owns the verifier client: the keys
//! `reward_function_*` (EARL's judge-client fields: endpoint, model, key, concurrency, timeout, retries) and
//! `reward_*_template` (judge prompt files). earl-core's RL loader hands them over as written, with the file and
//! line of each ([`earl_core::rl::config::RewardConfig::verifier`]); [`VerifierConfig::from_rewards`] type-checks
//! and validates them with the same rules and error format as every experiment key. [`RlExperiment`] is an RL
//! experiment with both halves validated: what `earl rl` runs.
use std::path::{Path, PathBuf};

use earl_core::experiment::{Layers, Resolver};
use earl_core::rl::config::{is_verifier_key, RewardConfig, RlConfig};
use earl_core::Result;
use serde::Deserialize;

use crate::verifier::Unparsable;

/// Serde mirror of the verifier keys (EARL names). Unknown `reward_function_*` keys are rejected.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerifierConfig {
    /// OpenAI-compatible verifier endpoint (http(s) URL); required when a verifier reward is on.
    pub reward_function_api_base: Option<String>,
    /// Judge model name (default `Qwen/Qwen2.5-VL-72B-Instruct`, as EARL).
    pub reward_function_api_model_name: Option<String>,
    /// Bearer key for the endpoint (default none).
    pub reward_function_api_key: Option<String>,
    /// Requests in flight, shared by VIEScore and GroundScore (default 64).
    pub reward_function_max_concurrency: Option<usize>,
    /// Whole-request timeout in seconds (default 600).
    pub reward_function_timeout_s: Option<f64>,
    /// Attempts per request on connection errors, timeouts, 429 and 5xx (default 5).
    pub reward_function_max_attempts: Option<u32>,
    /// Rounds of re-asking unparsable replies (default 5).
    pub reward_function_max_rounds: Option<u32>,
    /// `error` (EARL asserts) or `zero`.
    pub reward_function_on_unparsable: Option<Unparsable>,
    /// VIEScore semantic-consistency prompt file (unset or `""` = built-in).
    pub reward_viescore_sc_template: Option<String>,
    /// VIEScore perceptual-quality prompt file (unset or `""` = built-in).
    pub reward_viescore_pq_template: Option<String>,
    /// GroundScore system prompt file (unset or `""` = built-in).
    pub reward_ground_score_system_template: Option<String>,
    /// GroundScore user prompt file (unset or `""` = built-in).
    pub reward_ground_score_user_template: Option<String>,
}

/// Where a verifier prompt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// The project's own wording (unset or `""`).
    BuiltIn,
    /// A prompt file, resolved as experiment paths are.
    File(PathBuf),
}

/// The validated verifier settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifierConfig {
    /// Empty when no verifier reward is enabled.
    pub api_base: String,
    /// Judge model name.
    pub model: String,
    /// Bearer key; empty = none.
    pub api_key: String,
    /// Requests in flight (>= 1).
    pub max_concurrency: usize,
    /// Whole-request timeout in seconds.
    pub timeout_s: f64,
    /// Attempts per request on retryable failures (>= 1).
    pub max_attempts: u32,
    /// Rounds of re-asking unparsable replies (>= 1).
    pub max_rounds: u32,
    /// What a reply still unparsable after `max_rounds` does.
    pub on_unparsable: Unparsable,
    /// VIEScore semantic-consistency prompt.
    pub viescore_sc_template: PromptSource,
    /// VIEScore perceptual-quality prompt.
    pub viescore_pq_template: PromptSource,
    /// GroundScore system prompt.
    pub ground_score_system_template: PromptSource,
    /// GroundScore user prompt.
    pub ground_score_user_template: PromptSource,
}

fn prompt(r: &Resolver<'_>, key: &str, s: Option<&String>) -> Result<PromptSource> {
    match s {
        None => Ok(PromptSource::BuiltIn),
        Some(s) if s.is_empty() => Ok(PromptSource::BuiltIn),
        Some(s) => r.path(key, s).map(PromptSource::File),
    }
}

/// The endpoint, required (and expanded) only when a verifier reward is on, so that an offline experiment may
/// leave its variable unset.
fn api_base(r: &Resolver<'_>, raw: &RawVerifierConfig, needed: bool) -> Result<String> {
    const KEY: &str = "reward_function_api_base";
    match (&raw.reward_function_api_base, needed) {
        (_, false) => Ok(String::new()),
        (None, true) => Err(r.err(KEY, "required when viescore or ground_score is enabled")),
        (Some(s), true) => {
            let url = r.expand(KEY, s)?;
            r.check(url.starts_with("http://") || url.starts_with("https://"), KEY, || {
                format!("must be an http(s) URL, got {url:?}")
            })?;
            Ok(url)
        }
    }
}

impl VerifierConfig {
    /// Validates the verifier section of `rewards`, reading `${VAR}` through `env`. EARL's defaults: the
    /// Qwen2.5-VL-72B judge, 64 requests in flight, 600 s timeout, 5 attempts and 5 rounds.
    pub fn from_rewards(rewards: &RewardConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let section: &Layers = &rewards.verifier;
        let raw: RawVerifierConfig = section.deserialize()?;
        let r = Resolver::new(section, env);
        let api_key = match &raw.reward_function_api_key {
            Some(k) => r.expand("reward_function_api_key", k)?,
            None => String::new(),
        };
        let v = VerifierConfig {
            api_base: api_base(&r, &raw, rewards.needs_verifier())?,
            model: raw.reward_function_api_model_name.clone().unwrap_or_else(|| "Qwen/Qwen2.5-VL-72B-Instruct".into()),
            api_key,
            max_concurrency: raw.reward_function_max_concurrency.unwrap_or(64),
            timeout_s: raw.reward_function_timeout_s.unwrap_or(600.0),
            max_attempts: raw.reward_function_max_attempts.unwrap_or(5),
            max_rounds: raw.reward_function_max_rounds.unwrap_or(5),
            on_unparsable: raw.reward_function_on_unparsable.unwrap_or(Unparsable::Error),
            viescore_sc_template: prompt(&r, "reward_viescore_sc_template", raw.reward_viescore_sc_template.as_ref())?,
            viescore_pq_template: prompt(&r, "reward_viescore_pq_template", raw.reward_viescore_pq_template.as_ref())?,
            ground_score_system_template: prompt(
                &r,
                "reward_ground_score_system_template",
                raw.reward_ground_score_system_template.as_ref(),
            )?,
            ground_score_user_template: prompt(
                &r,
                "reward_ground_score_user_template",
                raw.reward_ground_score_user_template.as_ref(),
            )?,
        };
        r.check(v.max_concurrency >= 1, "reward_function_max_concurrency", || "must be >= 1".into())?;
        r.check(v.timeout_s.is_finite() && v.timeout_s > 0.0, "reward_function_timeout_s", || "must be > 0".into())?;
        r.check(v.max_attempts >= 1, "reward_function_max_attempts", || "must be >= 1".into())?;
        r.check(v.max_rounds >= 1, "reward_function_max_rounds", || "must be >= 1".into())?;
        Ok(v)
    }
}

/// An RL experiment with its core settings and its verifier section validated.
#[derive(Debug, Clone)]
pub struct RlExperiment {
    /// The core RL settings.
    pub rl: RlConfig,
    /// The verifier settings.
    pub verifier: VerifierConfig,
}

impl RlExperiment {
    /// Loads and validates `path`, reading `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_env(path, &|k| std::env::var(k).ok())
    }

    /// As [`RlExperiment::load`], reading variables through `env`.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        Self::from_layers(Layers::load::<earl_core::rl::config::RawRlConfig>(path, &is_verifier_key)?, env)
    }

    /// Validates already merged layers, both halves (an experiment file with a chain's overrides laid over it).
    pub fn from_layers(layers: Layers, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let rl = RlConfig::from_layers(layers, env)?;
        let verifier = VerifierConfig::from_rewards(&rl.reward, env)?;
        Ok(RlExperiment { rl, verifier })
    }
}

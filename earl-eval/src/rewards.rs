//! Builds the [`RewardSet`] an RL config asks for: the verifier rewards (sharing one client, hence one bound on
//! requests in flight) and the offline ones, combined with the configured final-reward formula. A prompt template
//! the config names must exist (a missing one is an error that says how to fetch the paper's); one it leaves unset
//! uses the project's own wording, which is announced with a warning when the rewards are built, i.e. at the start
//! of a run, and recorded in the run manifest.
use std::time::Duration;

use earl_core::rl::config::RewardConfig;
use earl_core::rl::{PixelSimilarity, Reward, RewardSet, TokenAgreement};
use earl_core::{Error, Result};

use crate::chat::{ChatClient, ClientOptions};
use crate::config::{PromptSource, VerifierConfig};
use crate::prompts::{PromptSet, Template};
use crate::verifier::{GroundScore, VerifierOptions, VieScore};

fn prompt(key: &str, source: &PromptSource, built_in: &Template) -> Result<Template> {
    match source {
        PromptSource::BuiltIn => Ok(built_in.clone()),
        PromptSource::File(p) if !p.exists() => Err(Error::Config {
            path: p.clone(),
            msg: format!(
                "{key}: judge prompt file not found; write the paper's prompts with \
                 `.venv/bin/python scripts/fetch_judge_prompts.py` (docs/rewards.md), or set {key} = \"\" for the \
                 project's own wording"
            ),
        }),
        PromptSource::File(p) => Template::from_file(p),
    }
}

/// Warns that `reward` asks with the project's own wording for the named templates, if any.
fn warn_if_own_wording(reward: &str, templates: &[(&str, &Template)]) {
    let own: Vec<&str> = templates.iter().filter(|(_, t)| t.is_built_in()).map(|(n, _)| *n).collect();
    if !own.is_empty() {
        tracing::warn!(
            reward,
            templates = ?own,
            "judge prompts: project's own wording, so rewards differ from the paper's (fetch the paper's prompts \
             with scripts/fetch_judge_prompts.py and name them in the config; docs/rewards.md)"
        );
    }
}

/// Client and query settings from the config's verifier section (templates are read here).
pub fn verifier_settings(cfg: &VerifierConfig) -> Result<(ClientOptions, VerifierOptions)> {
    let mut client = ClientOptions::new(cfg.api_base.clone(), cfg.model.clone());
    client.api_key = cfg.api_key.clone();
    client.max_concurrency = cfg.max_concurrency;
    client.timeout = Duration::from_secs_f64(cfg.timeout_s);
    client.max_attempts = cfg.max_attempts;
    let d = PromptSet::default();
    let prompts = PromptSet {
        semantic_consistency: prompt(
            "reward_viescore_sc_template",
            &cfg.viescore_sc_template,
            &d.semantic_consistency,
        )?,
        perceptual_quality: prompt("reward_viescore_pq_template", &cfg.viescore_pq_template, &d.perceptual_quality)?,
        ground_score_system: prompt(
            "reward_ground_score_system_template",
            &cfg.ground_score_system_template,
            &d.ground_score_system,
        )?,
        ground_score_user: prompt(
            "reward_ground_score_user_template",
            &cfg.ground_score_user_template,
            &d.ground_score_user,
        )?,
    };
    let on_unparsable = cfg.on_unparsable;
    Ok((client, VerifierOptions { prompts, max_rounds: cfg.max_rounds, on_unparsable, ..VerifierOptions::default() }))
}

/// The configured rewards and final formula; `verifier` is the experiment's validated verifier section.
pub fn reward_set(cfg: &RewardConfig, verifier: &VerifierConfig) -> Result<RewardSet> {
    reward_set_for_data(cfg, verifier, &[])
}

/// [`reward_set`] for a run that trains on the datasets at `train_paths`: the EARL-mini reward registers the task
/// of every world record they hold (regenerated from the record's split, seed and index), so an instruction's open
/// choices ("add a star anywhere on the left") are judged as the task allows, not against the one ground truth.
pub fn reward_set_for_data(
    cfg: &RewardConfig,
    verifier: &VerifierConfig,
    train_paths: &[std::path::PathBuf],
) -> Result<RewardSet> {
    let mut rewards: Vec<Box<dyn Reward>> = Vec::new();
    if cfg.needs_verifier() {
        let (client_opts, opts) = verifier_settings(verifier)?;
        let client = ChatClient::new(client_opts);
        let p = &opts.prompts;
        if cfg.viescore {
            let t = [("semantic_consistency", &p.semantic_consistency), ("perceptual_quality", &p.perceptual_quality)];
            warn_if_own_wording(VieScore::NAME, &t);
            rewards.push(Box::new(VieScore::new(client.clone(), opts.clone())));
        }
        if cfg.ground_score {
            warn_if_own_wording(
                GroundScore::NAME,
                &[("system", &p.ground_score_system), ("user", &p.ground_score_user)],
            );
            rewards.push(Box::new(GroundScore::new(client, opts)));
        }
    }
    if cfg.token_agreement {
        rewards.push(Box::new(TokenAgreement));
    }
    if cfg.pixel_similarity {
        rewards.push(Box::new(PixelSimilarity));
    }
    if cfg.mini {
        // Records that are not world samples fall back to reading the task off the source and ground-truth images
        // (see `earl_mini::verify::reward`).
        rewards.push(Box::new(earl_mini::verify::reward::MiniReward::for_datasets(train_paths)?));
    }
    RewardSet::new(rewards, cfg.final_reward.clone())
}

/// Whether the verifier endpoint accepts connections, checked once at the start of a run: a TCP connect to the
/// base URL's host and port (no HTTP request, so nothing is billed or logged by the judge), within `timeout`. A
/// closed port is then a one-line error before any generation, instead of ~100 warnings after the first full
/// rollout. Nothing to check when no verifier reward is on.
pub fn check_verifier_reachable(cfg: &RewardConfig, verifier: &VerifierConfig, timeout: Duration) -> Result<()> {
    if !cfg.needs_verifier() {
        return Ok(());
    }
    let url = &verifier.api_base;
    let unreachable = |why: String| Error::Reward { reward: "verifier".into(), msg: format!("{url}: {why}") };
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default_port = if url.starts_with("https://") { 443 } else { 80 };
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .map_err(|e| unreachable(format!("cannot resolve {with_port}: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for a in &addrs {
        match std::net::TcpStream::connect_timeout(a, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(format!(
        "the verifier does not accept connections ({last}); start it or fix reward_function_api_base"
    )))
}

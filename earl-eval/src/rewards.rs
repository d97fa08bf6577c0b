//! Builds the [`RewardSet`] an RL config asks for: the verifier rewards (sharing one client, hence one bound on
//! requests in flight) and the offline ones, combined with the configured final-reward formula.
use std::time::Duration;

use earl_core::rl::config::{OnUnparsable, PromptSource, RewardConfig, VerifierConfig};
use earl_core::rl::{PixelSimilarity, Reward, RewardSet, TokenAgreement};
use earl_core::Result;

use crate::chat::{ChatClient, ClientOptions};
use crate::prompts::{read_template, PromptSet};
use crate::verifier::{GroundScore, Unparsable, VerifierOptions, VieScore};

fn prompt(source: &PromptSource, built_in: &str) -> Result<String> {
    match source {
        PromptSource::BuiltIn => Ok(built_in.to_string()),
        PromptSource::File(p) => read_template(p),
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
        semantic_consistency: prompt(&cfg.viescore_sc_template, &d.semantic_consistency)?,
        perceptual_quality: prompt(&cfg.viescore_pq_template, &d.perceptual_quality)?,
        ground_score_system: prompt(&cfg.ground_score_system_template, &d.ground_score_system)?,
        ground_score_user: prompt(&cfg.ground_score_user_template, &d.ground_score_user)?,
    };
    let on_unparsable = match cfg.on_unparsable {
        OnUnparsable::Error => Unparsable::Error,
        OnUnparsable::Zero => Unparsable::Zero,
    };
    Ok((client, VerifierOptions { prompts, max_rounds: cfg.max_rounds, on_unparsable, ..VerifierOptions::default() }))
}

/// The configured rewards and final formula.
pub fn reward_set(cfg: &RewardConfig) -> Result<RewardSet> {
    let mut rewards: Vec<Box<dyn Reward>> = Vec::new();
    if cfg.viescore || cfg.ground_score {
        let (client_opts, opts) = verifier_settings(&cfg.verifier)?;
        let client = ChatClient::new(client_opts);
        if cfg.viescore {
            rewards.push(Box::new(VieScore::new(client.clone(), opts.clone())));
        }
        if cfg.ground_score {
            rewards.push(Box::new(GroundScore::new(client, opts)));
        }
    }
    if cfg.token_agreement {
        rewards.push(Box::new(TokenAgreement));
    }
    if cfg.pixel_similarity {
        rewards.push(Box::new(PixelSimilarity));
    }
    RewardSet::new(rewards, cfg.final_reward.clone())
}

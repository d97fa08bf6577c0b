//! VIEScore over an OpenAI-compatible chat endpoint: the judge of the paper's table (`baselines/gen_viescore.py`,
//! `gpt-4o-mini-2024-07-18`, `max_tokens` 1400, the server's default temperature). Per sample two requests, each
//! one user message with the text first and then the images as JPEG (quality 75) data URLs: semantic consistency
//! over [original, edited] and perceptual quality over [edited]. SC = min of its list, PQ = min of its list,
//! overall = √(SC·PQ); the sub-scores are the lists' first and second entries (a one-element list is valid and
//! leaves the second sub-score out). The request building and the arithmetic are the RL verifier's
//! ([`crate::verifier`]); the rounds are [`crate::ask`]'s.
//!
//! Two failure modes ([`JudgeMode`]). `reference` (the default) is the reference's: it asks once, and any API or
//! parse failure scores the sample 0 on every metric, counted in the means (its `except` branch); the failures are
//! counted and reported. `retry` retries 429, 5xx and timeouts with back-off (the chat client's retries), asks
//! unparsable replies again for a capped number of rounds, and reports what still failed apart from the scores:
//! those samples are left out of the means. The judge is used by POST alone: no readiness probe is made, so a server
//! without `GET /models` still judges. With no API key no `Authorization` header is sent.
use std::time::Duration;

use serde_json::json;

use super::{Judge, JudgeInput, Verdict};
use crate::ask::{ask_rounds, Outcome};
use crate::chat::{ChatClient, ClientOptions};
use crate::parse::{parse_reasoning, parse_score_list};
use crate::prompts::{provenance, PromptSet};
use crate::verifier::{vie_scores, viescore_queries};

/// What a judge failure does to a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeMode {
    /// One attempt, one round; a failure scores 0 everywhere and is averaged in (the reference).
    #[default]
    Reference,
    /// Retries and re-asks; a failure is reported apart and left out of the means.
    Retry,
}

impl JudgeMode {
    /// The name used in flags, configs and the manifest.
    pub fn as_str(&self) -> &'static str {
        match self {
            JudgeMode::Reference => "reference",
            JudgeMode::Retry => "retry",
        }
    }
}

impl std::str::FromStr for JudgeMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "reference" => Ok(JudgeMode::Reference),
            "retry" => Ok(JudgeMode::Retry),
            other => Err(format!("judge mode must be `reference` or `retry`, got {other:?}")),
        }
    }
}

/// Settings of the VIEScore judge.
#[derive(Debug, Clone, PartialEq)]
pub struct VieScoreJudgeOptions {
    /// Endpoint base URL (see [`ClientOptions::base_url`]).
    pub url: String,
    /// Judge model name.
    pub model: String,
    /// Bearer key; empty = no `Authorization` header.
    pub api_key: String,
    /// Failure mode.
    pub mode: JudgeMode,
    /// The SC and PQ templates.
    pub prompts: PromptSet,
    /// Completion limit per request (the reference: 1400).
    pub max_tokens: u32,
    /// `None` = the server's default (the reference).
    pub temperature: Option<f64>,
    /// Requests in flight.
    pub max_concurrency: usize,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// `retry` mode: attempts per request on connection errors, timeouts, 429 and 5xx (`reference`: 1).
    pub max_attempts: u32,
    /// `retry` mode: rounds of asking unparsable replies again (`reference`: 1).
    pub max_rounds: u32,
    /// `retry` mode: first back-off, doubled per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    /// `retry` mode: longest back-off.
    pub max_backoff: Duration,
}

impl VieScoreJudgeOptions {
    /// The paper's judge settings for `model` at `url`: reference mode, 1400 tokens, server temperature, 8 in
    /// flight, 120 s timeout; retry mode would make 5 attempts and 5 rounds.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            api_key: String::new(),
            mode: JudgeMode::Reference,
            prompts: PromptSet::default(),
            max_tokens: 1400,
            temperature: None,
            max_concurrency: 8,
            timeout: Duration::from_secs(120),
            max_attempts: 5,
            max_rounds: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }

    /// (attempts, rounds) the mode allows.
    fn budget(&self) -> (u32, u32) {
        match self.mode {
            JudgeMode::Reference => (1, 1),
            JudgeMode::Retry => (self.max_attempts.max(1), self.max_rounds.max(1)),
        }
    }
}

/// The VIEScore judge (see the module header).
#[derive(Debug, Clone)]
pub struct VieScoreJudge {
    client: ChatClient,
    opts: VieScoreJudgeOptions,
}

impl VieScoreJudge {
    /// A judge asking `opts.url`; no connection is made until the first sample. Warns when a prompt is built in.
    pub fn new(opts: VieScoreJudgeOptions) -> Self {
        let (attempts, _) = opts.budget();
        let mut c = ClientOptions::new(opts.url.clone(), opts.model.clone());
        c.api_key = opts.api_key.clone();
        c.max_concurrency = opts.max_concurrency.max(1);
        c.timeout = opts.timeout;
        c.max_attempts = attempts;
        c.initial_backoff = opts.initial_backoff;
        c.max_backoff = opts.max_backoff;
        if opts.prompts.semantic_consistency.is_built_in() || opts.prompts.perceptual_quality.is_built_in() {
            tracing::warn!(
                "VIEScore judge: using the project's own prompt wording (scores differ from the paper's); \
                 scripts/fetch_judge_prompts.py writes the paper's prompt files"
            );
        }
        Self { client: ChatClient::new(c), opts }
    }

    fn verdict(&self, asked: crate::ask::Asked<Vec<f64>>) -> Verdict {
        let reasons: Vec<String> = asked.replies.iter().map(|r| parse_reasoning(r)).collect();
        let excluded = self.opts.mode == JudgeMode::Retry;
        match asked.outcome {
            Outcome::Parsed(lists) if lists.len() == 2 => {
                let v = vie_scores(&lists[0], &lists[1]);
                Verdict {
                    vie_sc: v.sc,
                    vie_pq: v.pq,
                    vie_all: v.overall,
                    edit_success: Some(v.edit_success),
                    overediting: v.overediting,
                    naturalness: Some(v.naturalness),
                    artifacts: v.artifacts,
                    replies: asked.replies,
                    reasons,
                    error: None,
                    excluded: false,
                }
            }
            Outcome::Parsed(_) => Verdict::failed("the judge was not asked".into(), asked.replies, excluded),
            Outcome::Unparsed => {
                let msg = format!("judge reply not parsable after {} round(s)", asked.rounds);
                Verdict { reasons, ..Verdict::failed(msg, asked.replies, excluded) }
            }
            Outcome::Failed(e) => {
                Verdict { reasons, ..Verdict::failed(format!("judge: {e}"), asked.replies, excluded) }
            }
        }
    }
}

impl Judge for VieScoreJudge {
    fn name(&self) -> &str {
        "viescore"
    }

    fn judge_batch(&self, inputs: &[JudgeInput<'_>]) -> earl_core::Result<Vec<Verdict>> {
        let o = &self.opts;
        let queries: Vec<_> = inputs
            .iter()
            .map(|i| viescore_queries(&o.prompts, i.instruction, i.original, i.edited, o.max_tokens, o.temperature))
            .collect();
        let (_, rounds) = o.budget();
        let asked = ask_rounds(&self.client, "viescore judge", &queries, rounds, false, |_, r| parse_score_list(r));
        Ok(asked.into_iter().map(|a| self.verdict(a)).collect())
    }

    fn manifest(&self) -> serde_json::Value {
        let (o, p) = (&self.opts, &self.opts.prompts);
        let (attempts, rounds) = o.budget();
        let t = [("semantic_consistency", &p.semantic_consistency), ("perceptual_quality", &p.perceptual_quality)];
        let built_in = p.semantic_consistency.is_built_in() || p.perceptual_quality.is_built_in();
        json!({
            "judge": "viescore",
            "url": self.client.url(),
            "model": o.model,
            "authorization": !o.api_key.is_empty(),
            "mode": o.mode.as_str(),
            "max_tokens": o.max_tokens,
            "temperature": o.temperature,
            "timeout_s": o.timeout.as_secs_f64(),
            "max_attempts": attempts,
            "max_rounds": rounds,
            "prompts": provenance(&t),
            "prompts_built_in": built_in,
        })
    }
}

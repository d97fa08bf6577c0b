//! The verifier rewards of EARL (`rl/reward.py`), asked of a multimodal judge behind a chat-completions endpoint.
//!
//! * [`VieScore`]: two queries per completion — semantic consistency (instruction + source + edited image → [edit
//!   success, over-editing]) and perceptual quality (edited image → [naturalness, artifacts]); SC = min of the
//!   first list, PQ = min of the second, overall = √(SC·PQ). A list may hold any number of scores from one on, as
//!   the reference reads it; the sub-scores are its first and second entries, and a missing second entry is left
//!   out of the components (the reference would fail on it) rather than invented.
//! * [`GroundScore`]: the predicted image against the ground-truth edit under the instruction, an integer 0–10
//!   read from `<score>X</score>`.
//!
//! An undecodable prediction scores 0 everywhere without a query. When a reply of a completion cannot be parsed,
//! every query of that completion is asked again (as EARL does: its SC and PQ queries go together), up to
//! `max_rounds` rounds in all (EARL: 5, a constant there). What happens to a completion still unparsed after the
//! last round is [`Unparsable`]'s choice. Transport failures that survive the client's retries fail the batch. Each
//! reward reports in its [`Reward::manifest`] where its prompts came from.
use earl_core::rl::{Reward, RewardInput, RewardOutput};
use earl_core::{Error, Result};

use crate::ask::{ask_rounds, Outcome};
use crate::chat::{message, text_and_images, ChatClient, ChatRequest};
use crate::parse::{parse_score_list, parse_tagged_score};
use crate::prompts::{fill, provenance, PromptSet};

/// What to do with a completion whose replies never parsed (`reward_function_on_unparsable = "error"` or `"zero"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unparsable {
    /// Fail the batch (EARL asserts, stopping the run).
    Error,
    /// Score it 0 everywhere and log a warning.
    Zero,
}

/// Query settings shared by the verifier rewards.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifierOptions {
    /// The judge prompts (built-in or loaded from files).
    pub prompts: PromptSet,
    /// Rounds of asking, the first included (EARL: 5, its `max_tries`).
    pub max_rounds: u32,
    /// What a completion whose replies never parsed gets.
    pub on_unparsable: Unparsable,
    /// EARL: 1400 tokens, server-default temperature.
    pub viescore_max_tokens: u32,
    /// Sampling temperature of VIEScore requests; `None` = the server's default (as EARL).
    pub viescore_temperature: Option<f64>,
    /// EARL: 1300 tokens at temperature 0.3.
    pub ground_score_max_tokens: u32,
    /// Sampling temperature of GroundScore requests (EARL: 0.3).
    pub ground_score_temperature: Option<f64>,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        Self {
            prompts: PromptSet::default(),
            max_rounds: 5,
            on_unparsable: Unparsable::Error,
            viescore_max_tokens: 1400,
            viescore_temperature: None,
            ground_score_max_tokens: 1300,
            ground_score_temperature: Some(0.3),
        }
    }
}

/// Asks every query of every completion still without answers ([`ask_rounds`]); returns per completion the parsed
/// answers, or `None` if they never all parsed. A request that fails for good (after the client's retries) fails the
/// batch.
fn ask_until_parsed<T>(
    client: &ChatClient,
    reward: &str,
    queries: &[Vec<ChatRequest>],
    max_rounds: u32,
    parse: impl Fn(usize, &str) -> Option<T>,
) -> Result<Vec<Option<Vec<T>>>> {
    ask_rounds(client, reward, queries, max_rounds, true, parse)
        .into_iter()
        .map(|a| match a.outcome {
            Outcome::Parsed(v) => Ok(Some(v)),
            Outcome::Unparsed => Ok(None),
            Outcome::Failed(e) => Err(Error::Reward { reward: reward.to_string(), msg: e.to_string() }),
        })
        .collect()
}

fn unresolved(
    reward: &str,
    policy: Unparsable,
    zeros: &[&'static str],
    out: &mut [Option<RewardOutput>],
    rounds: u32,
) -> Result<()> {
    let missing: Vec<usize> = out.iter().enumerate().filter(|(_, o)| o.is_none()).map(|(i, _)| i).collect();
    if missing.is_empty() {
        return Ok(());
    }
    match policy {
        Unparsable::Error => Err(Error::Reward {
            reward: reward.to_string(),
            msg: format!("no parsable verifier reply after {rounds} round(s) for completion(s) {missing:?}"),
        }),
        Unparsable::Zero => {
            tracing::warn!(reward, completions = ?missing, "no parsable verifier reply; scoring 0");
            for i in missing {
                out[i] = Some(RewardOutput::zeros(zeros));
            }
            Ok(())
        }
    }
}

/// VIEScore for image editing, as EARL computes it (see the module header).
#[derive(Debug, Clone)]
pub struct VieScore {
    client: ChatClient,
    opts: VerifierOptions,
}

impl VieScore {
    /// The reward's name in configs, metrics and `reward_final_reward`.
    pub const NAME: &'static str = "viescore";
    /// Every component a scored completion can carry (`overedit` and `artifacts` only when the judge gave them).
    pub const COMPONENTS: [&'static str; 7] = [
        "edit_success",
        "overedit",
        "naturalness",
        "artifacts",
        "semantic_consistency",
        "perceptual_quality",
        "overall",
    ];

    /// A VIEScore reward asking `client` with `opts`.
    pub fn new(client: ChatClient, opts: VerifierOptions) -> Self {
        Self { client, opts }
    }

    /// The components from the two parsed lists (each non-empty), see [`vie_scores`].
    fn components(sc: &[f64], pq: &[f64]) -> RewardOutput {
        let v = vie_scores(sc, pq);
        let mut c = vec![("edit_success", v.edit_success), ("naturalness", v.naturalness)];
        c.extend(v.overediting.map(|x| ("overedit", x)));
        c.extend(v.artifacts.map(|x| ("artifacts", x)));
        c.extend([("semantic_consistency", v.sc), ("perceptual_quality", v.pq), ("overall", v.overall)]);
        RewardOutput::from_components(c)
    }

    fn requests(&self, inp: &RewardInput<'_>) -> Vec<ChatRequest> {
        let Some(pred) = inp.predicted else { return Vec::new() };
        let o = &self.opts;
        viescore_queries(&o.prompts, inp.instruction, inp.source, pred, o.viescore_max_tokens, o.viescore_temperature)
    }
}

/// VIEScore's numbers from the two parsed lists (each non-empty).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VieScores {
    /// min of the SC list (EARL `min(sc_dict["score"])`).
    pub sc: f64,
    /// min of the PQ list.
    pub pq: f64,
    /// √(SC·PQ).
    pub overall: f64,
    /// SC entry 0.
    pub edit_success: f64,
    /// SC entry 1, when the list has one.
    pub overediting: Option<f64>,
    /// PQ entry 0.
    pub naturalness: f64,
    /// PQ entry 1, when the list has one.
    pub artifacts: Option<f64>,
}

/// SC and PQ are the minima over the whole lists, the sub-scores entries 0 and 1 (a missing entry 1 stays `None`).
pub(crate) fn vie_scores(sc: &[f64], pq: &[f64]) -> VieScores {
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (sc_min, pq_min) = (min(sc), min(pq));
    VieScores {
        sc: sc_min,
        pq: pq_min,
        overall: (sc_min * pq_min).sqrt(),
        edit_success: sc[0],
        overediting: sc.get(1).copied(),
        naturalness: pq[0],
        artifacts: pq.get(1).copied(),
    }
}

/// VIEScore's two queries, each one user message with the text first and then the images: semantic consistency
/// over [source, edited], perceptual quality over [edited].
pub(crate) fn viescore_queries(
    prompts: &PromptSet,
    instruction: &str,
    source: &image::RgbImage,
    edited: &image::RgbImage,
    max_tokens: u32,
    temperature: Option<f64>,
) -> Vec<ChatRequest> {
    let ask = |text: String, images: &[&image::RgbImage]| ChatRequest {
        messages: vec![message("user", text_and_images(&text, images))],
        max_tokens,
        temperature,
    };
    vec![
        ask(fill(&prompts.semantic_consistency.text, instruction), &[source, edited]),
        ask(fill(&prompts.perceptual_quality.text, instruction), &[edited]),
    ]
}

impl Reward for VieScore {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn manifest(&self) -> serde_json::Value {
        let p = &self.opts.prompts;
        let t = [("semantic_consistency", &p.semantic_consistency), ("perceptual_quality", &p.perceptual_quality)];
        serde_json::json!({ "judge_prompts": provenance(&t), "max_rounds": self.opts.max_rounds })
    }

    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>> {
        let queries: Vec<Vec<ChatRequest>> = inputs.iter().map(|i| self.requests(i)).collect();
        let answers = ask_until_parsed(&self.client, Self::NAME, &queries, self.opts.max_rounds, |_, reply| {
            parse_score_list(reply)
        })?;
        let mut out: Vec<Option<RewardOutput>> = inputs
            .iter()
            .zip(answers)
            .map(|(inp, ans)| match (inp.predicted, ans) {
                (None, _) => Some(RewardOutput::zeros(&Self::COMPONENTS)),
                (Some(_), Some(a)) => Some(Self::components(&a[0], &a[1])),
                (Some(_), None) => None,
            })
            .collect();
        unresolved(Self::NAME, self.opts.on_unparsable, &Self::COMPONENTS, &mut out, self.opts.max_rounds)?;
        Ok(out.into_iter().flatten().collect())
    }
}

/// GroundScore: semantic match of the prediction with the ground-truth edit (see the module header).
#[derive(Debug, Clone)]
pub struct GroundScore {
    client: ChatClient,
    opts: VerifierOptions,
}

impl GroundScore {
    /// The reward's name in configs, metrics and `reward_final_reward`.
    pub const NAME: &'static str = "ground_score";
    /// The components of a scored completion.
    pub const COMPONENTS: [&'static str; 1] = ["overall"];

    /// A GroundScore reward asking `client` with `opts`.
    pub fn new(client: ChatClient, opts: VerifierOptions) -> Self {
        Self { client, opts }
    }
}

impl Reward for GroundScore {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn manifest(&self) -> serde_json::Value {
        let p = &self.opts.prompts;
        let t = [("system", &p.ground_score_system), ("user", &p.ground_score_user)];
        serde_json::json!({ "judge_prompts": provenance(&t), "max_rounds": self.opts.max_rounds })
    }

    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>> {
        let mut queries = Vec::with_capacity(inputs.len());
        for (i, inp) in inputs.iter().enumerate() {
            let gt = inp.ground_truth.ok_or_else(|| Error::Reward {
                reward: Self::NAME.into(),
                msg: format!("completion {i} has no ground-truth image"),
            })?;
            queries.push(match inp.predicted {
                None => Vec::new(),
                Some(pred) => vec![ChatRequest {
                    messages: vec![
                        message("system", self.opts.prompts.ground_score_system.text.clone().into()),
                        message(
                            "user",
                            text_and_images(
                                &fill(&self.opts.prompts.ground_score_user.text, inp.instruction),
                                &[gt, pred],
                            ),
                        ),
                    ],
                    max_tokens: self.opts.ground_score_max_tokens,
                    temperature: self.opts.ground_score_temperature,
                }],
            });
        }
        let answers = ask_until_parsed(&self.client, Self::NAME, &queries, self.opts.max_rounds, |_, reply| {
            parse_tagged_score(reply)
        })?;
        let mut out: Vec<Option<RewardOutput>> = inputs
            .iter()
            .zip(answers)
            .map(|(inp, ans)| match (inp.predicted, ans) {
                (None, _) => Some(RewardOutput::zeros(&Self::COMPONENTS)),
                (Some(_), Some(a)) => Some(RewardOutput::from_components([("overall", f64::from(a[0]))])),
                (Some(_), None) => None,
            })
            .collect();
        unresolved(Self::NAME, self.opts.on_unparsable, &Self::COMPONENTS, &mut out, self.opts.max_rounds)?;
        Ok(out.into_iter().flatten().collect())
    }
}

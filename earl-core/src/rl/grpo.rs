//! GRPO math as pure functions, each returning `(value, metrics)`: group-normalised advantages, per-token log-probs
//! of completion tokens from temperature-scaled logits (optionally over separate text and visual vocabularies), the
//! KL-regularised policy-gradient loss, and the token masks of the text-only / vision-only training schedules.
//! Semantics follow EARL's `rl/nano_aha_moment.py` (`create_training_episodes`, `compute_pg_loss`, the masking in
//! `main`) and `rl/utils.py::compute_token_log_probs`; deviations are named where they occur. The RL loop composes
//! these; nothing here touches a model, so every function is tested on hand-sized tensors and against torch
//! (`fixtures/gen_grpo.py` → `tests/grpo_parity.rs`).
use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use crate::error::{guard, Error, Result};

/// Added to the group's standard deviation before dividing (EARL: `(r - mean) / (std + 1e-4)`).
pub const ADVANTAGE_EPS: f64 = 1e-4;

/// An advantage below this in magnitude counts as "near zero" (EARL logs `train/close_to_zero_advantages`).
pub const NEAR_ZERO_ADVANTAGE: f64 = 1e-6;

/// Statistics of one iteration's rewards, computed alongside the advantages.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvantageMetrics {
    /// Mean of all rewards of the iteration.
    pub reward_mean: f64,
    /// Population standard deviation of all rewards of the iteration.
    pub reward_std: f64,
    /// Mean over groups of the within-group population std (0 when every group is uniform).
    pub mean_group_std: f64,
    /// Groups whose rewards are all equal: their completions get advantage 0 and teach nothing.
    pub uniform_groups: usize,
    /// Groups in the iteration (`rewards.len() / group_size`).
    pub num_groups: usize,
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// GRPO advantages: `rewards` holds consecutive groups of `group_size` completions of the same prompt; each
/// completion gets `(r − mean_g) / (std_g + 1e-4)` with the population std of its group (numpy's default, as in
/// EARL). The RL loop gives this value to every token of the completion.
pub fn group_advantages(rewards: &[f64], group_size: usize) -> Result<(Vec<f64>, AdvantageMetrics)> {
    if group_size == 0 {
        return Err(Error::input("group_advantages: group_size must be at least 1"));
    }
    if rewards.is_empty() || !rewards.len().is_multiple_of(group_size) {
        return Err(Error::input(format!(
            "group_advantages: {} rewards do not form whole groups of {group_size}",
            rewards.len()
        )));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::input(format!("group_advantages: reward {i} is {}", rewards[i])));
    }
    let mut adv = Vec::with_capacity(rewards.len());
    let (mut std_sum, mut uniform) = (0.0, 0);
    for group in rewards.chunks(group_size) {
        let (mean, std) = mean_std(group);
        std_sum += std;
        if group.iter().all(|&r| r == group[0]) {
            uniform += 1;
        }
        adv.extend(group.iter().map(|r| (r - mean) / (std + ADVANTAGE_EPS)));
    }
    let num_groups = rewards.len() / group_size;
    let (reward_mean, reward_std) = mean_std(rewards);
    let metrics = AdvantageMetrics {
        reward_mean,
        reward_std,
        mean_group_std: std_sum / num_groups as f64,
        uniform_groups: uniform,
        num_groups,
    };
    Ok((adv, metrics))
}

/// Over which vocabulary a completion token's probability is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabSplit {
    /// One softmax over the whole vocabulary.
    Joint,
    /// EARL's `separate_language_and_vision_vocabs`: text tokens are normalised over ids `< first_visual_id`,
    /// visual tokens over ids `>= first_visual_id` (Emu3 keeps its visual codes at the end of the vocabulary).
    Separate {
        /// The lowest visual-code id; every id at or above it is visual.
        first_visual_id: i64,
    },
}

/// Options of [`token_log_probs`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogProbOptions {
    /// Sampling temperature; logits are divided by it, as the sampler did.
    pub temperature: f64,
    /// Joint or separate text/visual normalisation.
    pub vocab: VocabSplit,
    /// Also compute the exact mean entropy (costs one more pass over [B, T, V]; no gradient).
    pub compute_entropy: bool,
}

/// Metrics of [`token_log_probs`], averaged over the completion tokens (mask = 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogProbMetrics {
    /// Number of completion tokens (sum of the mask).
    pub tokens: f64,
    /// Mean log-prob of the sampled tokens.
    pub mean_logp: f64,
    /// Mean exact entropy of the (temperature-scaled, split if configured) next-token distributions, when asked.
    /// EARL logs `-Σ logp / n` instead, a one-sample estimate of it (see `GrpoLossMetrics::neg_logp`).
    pub entropy: Option<f64>,
}

fn check_2d(name: &str, t: &Tensor, bt: &[i64]) -> Result<()> {
    if t.size() != bt {
        return Err(Error::input(format!("{name}: expected shape {bt:?}, found {:?}", t.size())));
    }
    Ok(())
}

fn gather_minus_lse(z: &Tensor, ids: &Tensor) -> Tensor {
    // log softmax(z)[id] = z[id] − logsumexp(z); avoids materialising a second [B, T, V] tensor in the forward.
    z.gather(-1, &ids.unsqueeze(-1), false).squeeze_dim(-1) - z.logsumexp([-1i64].as_slice(), false)
}

fn entropy_of(z: &Tensor) -> Tensor {
    // H = logsumexp(z) − Σ softmax(z)·z, per position.
    z.logsumexp([-1i64].as_slice(), false)
        - (z.softmax(-1, z.kind()) * z).sum_dim_intlist([-1i64].as_slice(), false, z.kind())
}

/// Log-probs [B, T] of `completion_ids` under `logits` [B, T, V], where `logits[:, t]` is the prediction of
/// completion token `t` (the caller drops the last position, as EARL's `logits[:, :-1]` after `logits_to_keep =
/// T + 1`). Logits are divided by the temperature and upcast to f32 (EARL stays in the model dtype; f32 keeps
/// bf16 logits from losing precision over a 184k vocabulary). Positions with `completion_mask` 0 are set to 0;
/// `image_mask` [B, T] (nonzero = visual token) picks the vocabulary under [`VocabSplit::Separate`].
pub fn token_log_probs(
    logits: &Tensor,
    completion_ids: &Tensor,
    completion_mask: &Tensor,
    image_mask: &Tensor,
    opts: &LogProbOptions,
) -> Result<(Tensor, LogProbMetrics)> {
    let size = logits.size();
    if size.len() != 3 {
        return Err(Error::input(format!("token_log_probs: logits must be [B, T, V], found {size:?}")));
    }
    let (bt, v) = ([size[0], size[1]], size[2]);
    check_2d("token_log_probs: completion_ids", completion_ids, &bt)?;
    check_2d("token_log_probs: completion_mask", completion_mask, &bt)?;
    check_2d("token_log_probs: image_mask", image_mask, &bt)?;
    if !(opts.temperature.is_finite() && opts.temperature > 0.0) {
        return Err(Error::input(format!("token_log_probs: temperature must be > 0, got {}", opts.temperature)));
    }
    if let VocabSplit::Separate { first_visual_id } = opts.vocab {
        if first_visual_id <= 0 || first_visual_id >= v {
            return Err(Error::input(format!(
                "token_log_probs: first visual id {first_visual_id} does not split a vocabulary of {v}"
            )));
        }
    }
    guard("token log-probs", || {
        let ids = completion_ids.to_kind(Kind::Int64);
        if ids.numel() > 0 {
            let (lo, hi) = (ids.min().int64_value(&[]), ids.max().int64_value(&[]));
            if lo < 0 || hi >= v {
                return Err(Error::input(format!("token_log_probs: token ids span [{lo}, {hi}], vocabulary is {v}")));
            }
        }
        let kind = if logits.kind() == Kind::Double { Kind::Double } else { Kind::Float };
        let z = logits.to_kind(kind) / opts.temperature; // [B, T, V]
        let mask = completion_mask.to_kind(kind); // [B, T]
        let is_image = image_mask.ne(0); // [B, T] bool
        let (lp, parts) = match opts.vocab {
            VocabSplit::Joint => (gather_minus_lse(&z, &ids), None),
            VocabSplit::Separate { first_visual_id: f } => {
                let text = z.narrow(-1, 0, f); // [B, T, f]
                let vision = z.narrow(-1, f, v - f); // [B, T, V − f]
                                                     // Ids outside a part are clamped into it; `where` discards those values (EARL does the same).
                let lp_text = gather_minus_lse(&text, &ids.clamp_max(f - 1));
                let lp_vision = gather_minus_lse(&vision, &(&ids - f).clamp_min(0));
                (lp_vision.where_self(&is_image, &lp_text), Some((text, vision)))
            }
        };
        let lp = lp * &mask; // [B, T]
        let metrics = tch::no_grad(|| {
            let tokens = mask.sum(kind).double_value(&[]);
            let denom = tokens.max(1.0);
            let entropy = opts.compute_entropy.then(|| {
                let h = match &parts {
                    None => entropy_of(&z),
                    Some((text, vision)) => entropy_of(vision).where_self(&is_image, &entropy_of(text)),
                };
                (h * &mask).sum(Kind::Double).double_value(&[]) / denom
            });
            LogProbMetrics { tokens, mean_logp: lp.sum(Kind::Double).double_value(&[]) / denom, entropy }
        });
        Ok((lp, metrics))
    })
}

/// Metrics of one [`grpo_loss`] call. Sums are divided by the iteration's total completion tokens, so the values
/// of an iteration's micro-batches add up (use [`GrpoLossMetrics::add`]) to the iteration value. EARL logs the
/// *mean* of the per-micro-batch values instead, i.e. these divided by the number of micro-batches.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GrpoLossMetrics {
    /// Σ −logp·A / total.
    pub policy_loss: f64,
    /// Σ (exp(ref − logp) − (ref − logp) − 1) / total: the k3 KL estimator that the loss penalises.
    pub kl_penalty: f64,
    /// Σ (logp − ref) / total: the k1 estimator (EARL's `kl_penalty_2`).
    pub kl_logratio: f64,
    /// Σ logp / total.
    pub mean_logp: f64,
    /// Σ ref / total.
    pub mean_ref_logp: f64,
    /// Σ −logp / total: EARL's `entropy` metric (a one-sample entropy estimate; EARL divides it twice).
    pub neg_logp: f64,
    /// Share of completion tokens whose advantage is below 1e-6 in magnitude. EARL tests `A < 1e-6`, which also
    /// counts every negative advantage; we count |A| < 1e-6, the share of tokens that carry no signal.
    pub near_zero_advantage_share: f64,
    /// Completion tokens in this call (not normalised).
    pub tokens: f64,
}

impl GrpoLossMetrics {
    /// Accumulates another micro-batch of the same iteration.
    pub fn add(&mut self, o: &GrpoLossMetrics) {
        self.policy_loss += o.policy_loss;
        self.kl_penalty += o.kl_penalty;
        self.kl_logratio += o.kl_logratio;
        self.mean_logp += o.mean_logp;
        self.mean_ref_logp += o.mean_ref_logp;
        self.neg_logp += o.neg_logp;
        self.near_zero_advantage_share += o.near_zero_advantage_share;
        self.tokens += o.tokens;
    }

    /// Named values for logging, with EARL's metric names where one exists.
    pub fn to_map(&self) -> BTreeMap<&'static str, f64> {
        BTreeMap::from([
            ("policy_loss", self.policy_loss),
            ("kl_penalty", self.kl_penalty),
            ("kl_penalty_2", self.kl_logratio),
            ("avg_logps", self.mean_logp),
            ("avg_ref_logps", self.mean_ref_logp),
            ("neg_logp", self.neg_logp),
            ("close_to_zero_advantages", self.near_zero_advantage_share),
            ("active_tokens", self.tokens),
        ])
    }
}

/// The GRPO loss of one micro-batch:
/// `Σ_{b,t} mask·[ −logp·A + β·(exp(ref − logp) − (ref − logp) − 1) ] / total_tokens`, with β = `kl_coeff` and
/// `total_tokens` the completion tokens of the *whole iteration* (so gradients of micro-batches accumulate to the
/// iteration's token-mean; EARL `compute_pg_loss`). `logps`, `ref_logps`, `mask` are `[B, T]`; `advantages` is
/// `[B]` (one value per completion) or `[B, T]`. Only `logps` should carry gradient; `ref_logps` and `advantages` are
/// treated as constants.
pub fn grpo_loss(
    logps: &Tensor,
    ref_logps: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    kl_coeff: f64,
    total_tokens: f64,
) -> Result<(Tensor, GrpoLossMetrics)> {
    let size = logps.size();
    if size.len() != 2 {
        return Err(Error::input(format!("grpo_loss: logps must be [B, T], found {size:?}")));
    }
    check_2d("grpo_loss: ref_logps", ref_logps, &size)?;
    check_2d("grpo_loss: mask", mask, &size)?;
    let adv_size = advantages.size();
    if adv_size != size && adv_size != [size[0]] {
        return Err(Error::input(format!("grpo_loss: advantages must be [B] or [B, T], found {adv_size:?}")));
    }
    if !(kl_coeff.is_finite() && kl_coeff >= 0.0) {
        return Err(Error::input(format!("grpo_loss: kl_coeff must be >= 0, got {kl_coeff}")));
    }
    if !(total_tokens.is_finite() && total_tokens > 0.0) {
        return Err(Error::input(format!("grpo_loss: total_tokens must be > 0, got {total_tokens}")));
    }
    guard("GRPO loss", || {
        let kind = logps.kind();
        let mask = mask.to_kind(kind); // [B, T]
        let refs = ref_logps.to_kind(kind).detach(); // [B, T]
        let adv = advantages.to_kind(kind).detach();
        let adv = if adv.dim() == 1 { adv.unsqueeze(1).expand_as(logps) } else { adv }; // [B, T]
        let log_ratio = &refs - logps; // [B, T]
        let kl = (log_ratio.exp() - &log_ratio - 1.0) * &mask;
        let pg = -(logps * &adv) * &mask;
        let loss = (&pg + &kl * kl_coeff).sum(kind) / total_tokens;
        let metrics = tch::no_grad(|| {
            let s = |t: &Tensor| t.sum(Kind::Double).double_value(&[]) / total_tokens;
            let near_zero = adv.abs().lt(NEAR_ZERO_ADVANTAGE).to_kind(kind) * &mask;
            GrpoLossMetrics {
                policy_loss: s(&pg),
                kl_penalty: s(&kl),
                kl_logratio: s(&((logps - &refs) * &mask)),
                mean_logp: s(&(logps * &mask)),
                mean_ref_logp: s(&(&refs * &mask)),
                neg_logp: -s(&(logps * &mask)),
                near_zero_advantage_share: s(&near_zero),
                tokens: mask.sum(Kind::Double).double_value(&[]),
            }
        });
        Ok((loss, metrics))
    })
}

/// Which completion tokens an iteration trains on (EARL `train_text_tokens_only` / `train_vision_tokens_only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TokenSchedule {
    /// Cycles of `text_only_cycle_steps` iterations: the first `text_only_steps` train text tokens only, the rest
    /// visual tokens only.
    pub train_text_tokens_only: bool,
    /// Length of a text/visual cycle, in iterations.
    pub text_only_cycle_steps: u64,
    /// Iterations at the start of each cycle that train text tokens only.
    pub text_only_steps: u64,
    /// Cycles of `vision_only_cycle_steps` iterations: the first `vision_only_steps` train visual tokens only, the
    /// rest every token (EARL's asymmetry, reproduced).
    pub train_vision_tokens_only: bool,
    /// Length of a visual/all cycle, in iterations.
    pub vision_only_cycle_steps: u64,
    /// Iterations at the start of each cycle that train visual tokens only.
    pub vision_only_steps: u64,
}

/// What [`training_token_mask`] selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPhase {
    /// Every completion token.
    All,
    /// Text tokens only.
    TextOnly,
    /// Visual tokens only.
    VisionOnly,
}

/// Metrics of [`training_token_mask`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenMaskMetrics {
    /// Which tokens the iteration trains on.
    pub phase: TokenPhase,
    /// Completion tokens before the restriction (sum of `completion_mask`).
    pub active_before: f64,
    /// Tokens left after it.
    pub active_after: f64,
}

/// The completion mask of iteration `iteration` under `schedule`: `completion_mask` [B, T] restricted to text or
/// visual tokens (`image_mask` [B, T], nonzero = visual). With both options on, the text rule applies first and
/// the vision rule to its result, as in EARL (a text-only step followed by a vision-only step trains nothing; the
/// config validation rejects that combination).
pub fn training_token_mask(
    completion_mask: &Tensor,
    image_mask: &Tensor,
    schedule: &TokenSchedule,
    iteration: u64,
) -> Result<(Tensor, TokenMaskMetrics)> {
    check_2d("training_token_mask: image_mask", image_mask, &completion_mask.size())?;
    for (on, cycle, name) in [
        (schedule.train_text_tokens_only, schedule.text_only_cycle_steps, "text_only_cycle_steps"),
        (schedule.train_vision_tokens_only, schedule.vision_only_cycle_steps, "vision_only_cycle_steps"),
    ] {
        if on && cycle == 0 {
            return Err(Error::input(format!("training_token_mask: {name} must be at least 1")));
        }
    }
    guard("training token mask", || {
        let kind = completion_mask.kind();
        let image = image_mask.ne(0).to_kind(kind);
        let text = image.ones_like() - &image;
        let mut mask = completion_mask.shallow_clone();
        let mut phase = TokenPhase::All;
        if schedule.train_text_tokens_only {
            if iteration % schedule.text_only_cycle_steps < schedule.text_only_steps {
                mask = &mask * &text;
                phase = TokenPhase::TextOnly;
            } else {
                mask = &mask * &image;
                phase = TokenPhase::VisionOnly;
            }
        }
        if schedule.train_vision_tokens_only
            && iteration % schedule.vision_only_cycle_steps < schedule.vision_only_steps
        {
            mask = &mask * &image;
            phase = TokenPhase::VisionOnly;
        }
        let count = |t: &Tensor| t.sum(Kind::Double).double_value(&[]);
        let metrics = TokenMaskMetrics { phase, active_before: count(completion_mask), active_after: count(&mask) };
        Ok((mask, metrics))
    })
}

/// Marks visual tokens: ids in `[first_visual_id, first_visual_id + num_visual)` (EARL `compute_image_mask`).
pub fn visual_token_mask(ids: &Tensor, first_visual_id: i64, num_visual: i64) -> Tensor {
    ids.ge(first_visual_id).logical_and(&ids.lt(first_visual_id + num_visual)).to_kind(Kind::Int64)
}

#[cfg(test)]
#[path = "grpo_tests.rs"]
mod tests;

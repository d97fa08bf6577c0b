//! The update half of a GRPO iteration: one optimizer step over every completion token of the iteration. Each
//! micro-batch of `per_device_batch_size` episodes is prompt + completion through the crate's one left-padding
//! collate ([`LeftPadded`]); log-probs come from temperature-scaled logits of the policy and of the frozen
//! reference, and the KL-regularised policy-gradient loss is normalised by the iteration's completion tokens so
//! micro-batches (and loss chunks) add up. The step itself is the SFT trainer's ([`crate::train::SftTrainer::step_with`]).
use std::time::Instant;

use tch::{Device, Tensor};

use super::rollout::Episode;
use super::{IterationReport, RlRunner};
use crate::collate::LeftPadded;
use crate::error::{guard, Result};
use crate::model::ForwardArgs;
use crate::rl::grpo::{self, LogProbOptions, VocabSplit};
use crate::train::{checkpointed_backward, checkpointed_backward_chunked};

/// Episodes `idx` as one left-padded batch of prompt + completion, and the mask [B, T] of their completion tokens
/// (the targets; 0 on padding and prompt).
fn episode_batch(eps: &[Episode], idx: &[usize], pad: i64, device: Device) -> Result<(LeftPadded, Tensor)> {
    let rows: Vec<Vec<i64>> = idx.iter().map(|&i| [&eps[i].prompt[..], &eps[i].tokens[..]].concat()).collect();
    let batch = LeftPadded::new(&rows, pad, device)?;
    let completion: Vec<Vec<i64>> = idx
        .iter()
        .map(|&i| {
            std::iter::repeat_n(0, eps[i].prompt.len()).chain(std::iter::repeat_n(1, eps[i].tokens.len())).collect()
        })
        .collect();
    let cmask = batch.companion(&completion, 0)?;
    Ok((batch, cmask))
}

impl RlRunner {
    pub(super) fn train_step(&mut self, it: u64, eps: &[Episode], adv: &[f64]) -> Result<IterationReport> {
        let device = self.trainer.model.device();
        let g = &self.cfg.generation;
        let vocab = if self.cfg.grpo.separate_language_and_vision_vocabs {
            VocabSplit::Separate { first_visual_id: self.tok.first_visual_id() as i64 }
        } else {
            VocabSplit::Joint
        };
        let lp_opts = LogProbOptions { temperature: g.sampling.temperature.max(1e-6), vocab, compute_entropy: true };
        let total_tokens: f64 = eps.iter().map(|e| e.tokens.len() as f64).sum::<f64>().max(1.0);
        let mb = self.cfg.optim.per_device_batch_size.max(1);
        let chunks: Vec<Vec<usize>> = (0..eps.len()).collect::<Vec<_>>().chunks(mb).map(|c| c.to_vec()).collect();
        let (first_visual, n_visual) = (self.tok.first_visual_id() as i64, self.tok.codebook_size() as i64);
        let (kl_coeff, schedule, pad) =
            (self.cfg.grpo.kl_coeff, self.cfg.grpo.token_schedule, self.tok.special().pad as i64);
        let (lr, checkpointing) = (self.cfg.optim.learning_rate, self.cfg.optim.gradient_checkpointing);
        let chunk = self.cfg.optim.loss_chunk_tokens;
        let mut acc = grpo::GrpoLossMetrics::default();
        let (mut loss_sum, mut entropy_sum, mut ref_s) = (0.0, 0.0, 0.0);
        let reference = &self.reference;
        let t_train = Instant::now();
        let sm = self.trainer.step_with(chunks.len(), lr, |policy, c| {
            let idx = &chunks[c];
            let (batch, cmask) = episode_batch(eps, idx, pad, device)?;
            let (ids, mask) = (&batch.input_ids, &batch.attention_mask);
            // Position t predicts token t+1.
            let t = batch.width() as i64 - 1;
            let targets = ids.narrow(1, 1, t); // [B, T-1]
            let tmask = cmask.narrow(1, 1, t); // [B, T-1]
            let image = grpo::visual_token_mask(&targets, first_visual, n_visual); // [B, T-1]
            let (train_mask, _) = grpo::training_token_mask(&tmask, &image, &schedule, it)?;
            let args = ForwardArgs { attention_mask: Some(mask), ..Default::default() };
            let tr = Instant::now();
            let ref_lp = tch::no_grad(|| -> Result<Tensor> {
                let logits = reference.forward(ids, &args, None)?.narrow(1, 0, t); // [B, T-1, V]
                Ok(grpo::token_log_probs(
                    &logits,
                    &targets,
                    &tmask,
                    &image,
                    &LogProbOptions { compute_entropy: false, ..lp_opts },
                )?
                .0)
            })?;
            ref_s += tr.elapsed().as_secs_f64();
            let a: Vec<f64> = idx.iter().map(|&i| adv[i]).collect();
            let a = Tensor::from_slice(&a).to_device(device); // [B]
                                                              // The per-token objective of positions s..s+n (all of them unless the loss is chunked). Every metric is a
                                                              // token sum, so chunks and micro-batches add up.
            let mut objective = |logits: &Tensor, s: i64| -> Result<Tensor> {
                let n = logits.size()[1];
                let part = |x: &Tensor| x.narrow(1, s, n);
                let (lp, lpm) = grpo::token_log_probs(logits, &part(&targets), &part(&tmask), &part(&image), &lp_opts)?;
                let (loss, m) = grpo::grpo_loss(
                    &lp,
                    &part(&ref_lp),
                    &a.to_kind(lp.kind()),
                    &part(&train_mask),
                    kl_coeff,
                    total_tokens,
                )?;
                acc.add(&m);
                entropy_sum += lpm.entropy.unwrap_or(0.0) * lpm.tokens;
                Ok(loss)
            };
            let loss = match (checkpointing, chunk) {
                (true, c) if c > 0 => checkpointed_backward_chunked(policy, ids, &args, t, c, &mut objective)?,
                (true, _) => {
                    let whole = |logits: &Tensor| Ok((objective(&logits.narrow(1, 0, t), 0)?, ())); // [B, T-1, V]
                    checkpointed_backward(policy, ids, &args, whole)?.0
                }
                (false, _) => {
                    let loss = objective(&policy.forward(ids, &args, None)?.narrow(1, 0, t), 0)?; // [B, T-1, V]
                    guard("the GRPO backward pass", || {
                        loss.backward();
                        Ok(())
                    })?;
                    loss
                }
            };
            let loss = loss.double_value(&[]);
            loss_sum += loss;
            Ok(loss)
        })?;
        let time_training_s = t_train.elapsed().as_secs_f64() - ref_s;
        Ok(IterationReport {
            iteration: it,
            loss: loss_sum,
            policy_loss: acc.policy_loss,
            kl: acc.kl_penalty,
            entropy: entropy_sum / total_tokens,
            near_zero_advantage_share: acc.near_zero_advantage_share,
            grad_norm: sm.grad_norm,
            completion_tokens: total_tokens,
            time_reference_s: ref_s,
            time_training_s,
            ..Default::default()
        })
    }
}

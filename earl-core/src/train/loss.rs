//! The SFT objective: next-token cross-entropy over response tokens only. Labels are the input ids with every
//! prompt and padding position set to [`IGNORE_INDEX`] (−100, the reference's `ignore_index`); logits at position t
//! predict the label at t+1, and the cross-entropy is computed in f32 whatever the compute dtype (the reference
//! upcasts logits with `logits.float()` before its `CrossEntropyLoss`).
//!
//! Two normalisations are offered ([`LossNorm`]): dividing the summed token losses by the number of target tokens of
//! the whole optimizer step (token-weighted over the global batch, every response token counts the same whatever
//! micro-batch it falls in), or the reference trainer's behaviour (mean over each micro-batch's tokens, then divided
//! by the number of accumulation steps — what transformers' `Trainer` does for a model whose forward does not take
//! `num_items_in_batch`, as EARL's remote-code `Emu3ForCausalLM`).
use tch::{Kind, Reduction, Tensor};

use crate::error::{guard, Error, Result};

/// Label value of positions that carry no loss (prompt, padding).
pub const IGNORE_INDEX: i64 = -100;

/// How per-token losses are averaged over an optimizer step made of several micro-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossNorm {
    /// Σ token losses of the micro-batch / target tokens of the whole global batch.
    GlobalTokens,
    /// (mean token loss of the micro-batch) / accumulation steps — EARL's reference SFT (transformers `Trainer`).
    MicroBatchMean,
}

/// What one micro-batch's loss evaluation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossMetrics {
    /// Σ of the token cross-entropies of this micro-batch (nats).
    pub sum: f64,
    /// Target (non-ignored, shifted) tokens in this micro-batch.
    pub tokens: i64,
    /// Fraction of targets the argmax predicts correctly.
    pub accuracy: f64,
}

/// Number of target tokens of a label tensor [B, T] after the next-token shift (labels at positions 1..T).
pub fn count_targets(labels: &Tensor) -> i64 {
    let t = labels.size()[1];
    labels.narrow(1, 1, t - 1).ne(IGNORE_INDEX).sum(Kind::Int64).int64_value(&[])
}

/// Cross-entropy of `logits` [B, T, V] against `labels` [B, T] (i64, −100 = ignored), summed over targets and divided
/// by `denominator` (the target count of whatever the loss is averaged over; see [`LossNorm`]). Returns the scalar f32
/// loss (with the graph of `logits`, ready for `backward`) and its metrics. A batch without targets has loss 0.
pub fn sft_loss(logits: &Tensor, labels: &Tensor, denominator: f64) -> Result<(Tensor, LossMetrics)> {
    let (ls, bs) = (logits.size(), labels.size());
    if ls.len() != 3 || bs.len() != 2 || ls[0] != bs[0] || ls[1] != bs[1] || ls[1] < 2 {
        return Err(Error::input(format!(
            "sft_loss: logits {ls:?} and labels {bs:?} must be [B, T, V] and [B, T], T ≥ 2"
        )));
    }
    if !(denominator > 0.0) {
        return Err(Error::input(format!("sft_loss: denominator must be positive, got {denominator}")));
    }
    let t = ls[1];
    // Position t predicts the label at t + 1.
    targets_loss(&logits.narrow(1, 0, t - 1), &labels.narrow(1, 1, t - 1), denominator)
}

/// Cross-entropy of `logits` [B, N, V] against already-shifted `targets` [B, N] (−100 = ignored): the body of
/// [`sft_loss`], also used on sequence chunks (activation checkpointing's chunked head), where a chunk of logits
/// positions `[s, s+n)` meets the labels at `[s+1, s+n+1)`.
pub fn targets_loss(logits: &Tensor, targets: &Tensor, denominator: f64) -> Result<(Tensor, LossMetrics)> {
    let (ls, bs) = (logits.size(), targets.size());
    if ls.len() != 3 || bs.len() != 2 || ls[0] != bs[0] || ls[1] != bs[1] {
        return Err(Error::input(format!(
            "targets_loss: logits {ls:?} and targets {bs:?} must be [B, N, V] and [B, N]"
        )));
    }
    if !(denominator > 0.0) {
        return Err(Error::input(format!("targets_loss: denominator must be positive, got {denominator}")));
    }
    guard("the SFT loss", || {
        let (b, n, v) = (ls[0], ls[1], ls[2]);
        let flat_logits = logits.to_kind(Kind::Float).reshape([b * n, v]); // [N, V]
        let flat_targets = targets.to_device(logits.device()).reshape([b * n]); // [N]
        let valid = flat_targets.ne(IGNORE_INDEX); // [N]
        let sum = flat_logits.cross_entropy_loss::<Tensor>(&flat_targets, None, Reduction::Sum, IGNORE_INDEX, 0.0);
        let correct = flat_logits.argmax(-1, false).eq_tensor(&flat_targets).logical_and(&valid);
        // One device→host read for the three metrics (each read is a full sync of the device's queue). Counts up to
        // 2^53 are exact in f64.
        let read = Tensor::stack(&[sum.to_kind(Kind::Double), valid.sum(Kind::Double), correct.sum(Kind::Double)], 0);
        let read = Vec::<f64>::try_from(read.detach())?;
        let tokens = read[1] as i64;
        let metrics =
            LossMetrics { sum: read[0], tokens, accuracy: if tokens > 0 { read[2] / tokens as f64 } else { 0.0 } };
        Ok((sum / denominator, metrics))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cross_entropy_over_response_tokens_only() {
        // B=1, T=3, V=2. Targets: position 1 is prompt (ignored), position 2 has label 1.
        let logits = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 3.0, 9.0, 9.0]).view([1, 3, 2]);
        let labels = Tensor::from_slice(&[IGNORE_INDEX, IGNORE_INDEX, 1]).view([1, 3]);
        let (loss, m) = sft_loss(&logits, &labels, 1.0).unwrap();
        // Only logits at t=1 ([1, 3]) predict label 1: CE = log(e^1 + e^3) − 3.
        let expected = (1f64.exp() + 3f64.exp()).ln() - 3.0;
        assert!((loss.double_value(&[]) - expected).abs() < 1e-6);
        assert_eq!(m.tokens, 1);
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(count_targets(&labels), 1);
        let (half, _) = sft_loss(&logits, &labels, 2.0).unwrap();
        assert!((half.double_value(&[]) - expected / 2.0).abs() < 1e-6);
    }

    #[test]
    fn batch_without_targets_has_zero_loss_and_bad_shapes_are_errors() {
        let logits = Tensor::zeros([2, 4, 5], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::full([2, 4], IGNORE_INDEX, (Kind::Int64, tch::Device::Cpu));
        let (loss, m) = sft_loss(&logits, &labels, 1.0).unwrap();
        assert_eq!((loss.double_value(&[]), m.tokens), (0.0, 0));
        assert!(sft_loss(&logits, &labels.narrow(1, 0, 3), 1.0).is_err());
        assert!(sft_loss(&logits, &labels, 0.0).is_err());
    }
}

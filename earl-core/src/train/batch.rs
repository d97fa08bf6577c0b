//! Tokenized training sequences and their collation into left-padded batches (the crate's one collate,
//! [`crate::collate`]), as EARL's `Emu3FeatureDataset.
//! collate_fn` builds them: ids padded with 0, attention mask 0 and labels −100 on the left. Position ids are not
//! stored: the model derives the reference's `cumsum(mask) − 1` (padding → 1) from the mask.
use tch::{Device, Tensor};

use super::loss::IGNORE_INDEX;
use crate::collate::LeftPadded;
use crate::error::{Error, Result};

/// One training example: token ids and labels of equal length (labels −100 where no loss is taken).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sequence {
    /// Token ids.
    pub input_ids: Vec<i64>,
    /// Target per position: the token id, or −100 (no loss).
    pub labels: Vec<i64>,
}

impl Sequence {
    /// A sequence whose first `prompt_len` tokens carry no loss (the reference's `labels[:ignore_length] = -100`).
    pub fn with_prompt(input_ids: Vec<i64>, prompt_len: usize) -> Self {
        let labels =
            input_ids.iter().enumerate().map(|(i, &t)| if i < prompt_len { IGNORE_INDEX } else { t }).collect();
        Sequence { input_ids, labels }
    }

    /// Checks what a batch of this sequence needs, so that bad data is refused where it is read (naming its file
    /// and line) and not deep inside an embedding or cross-entropy kernel: equal, non-zero lengths; ids in
    /// `[0, vocab)`; labels in `[0, vocab)` or −100. `vocab = None` checks everything but the upper bound.
    pub fn check(&self, vocab: Option<i64>) -> std::result::Result<(), String> {
        if self.input_ids.is_empty() || self.input_ids.len() != self.labels.len() {
            return Err(format!(
                "{} ids and {} labels (need equal, non-zero lengths)",
                self.input_ids.len(),
                self.labels.len()
            ));
        }
        let top = vocab.unwrap_or(i64::MAX);
        if let Some((i, &t)) = self.input_ids.iter().enumerate().find(|&(_, &t)| t < 0 || t >= top) {
            return Err(format!("input id {t} at position {i} is outside the vocabulary [0, {top})"));
        }
        let bad_label = |&l: &i64| l != IGNORE_INDEX && (l < 0 || l >= top);
        if let Some((i, &l)) = self.labels.iter().enumerate().find(|(_, l)| bad_label(l)) {
            return Err(format!("label {l} at position {i} is neither −100 nor in the vocabulary [0, {top})"));
        }
        Ok(())
    }
}

/// A left-padded batch, every tensor [B, T] i64.
#[derive(Debug)]
pub struct Batch {
    /// Token ids, 0 on padding.
    pub input_ids: Tensor,
    /// 1 on real tokens, 0 on padding.
    pub attention_mask: Tensor,
    /// Targets, −100 on padding and prompt tokens.
    pub labels: Tensor,
}

impl Batch {
    /// Real (unpadded) tokens in the batch.
    pub fn num_tokens(&self) -> i64 {
        self.attention_mask.sum(tch::Kind::Int64).int64_value(&[])
    }
}

/// Left-pads `seqs` to their longest length (ids 0, mask 0, labels −100) on `device`, through the one collate
/// ([`LeftPadded`]).
pub fn collate_left(seqs: &[Sequence], device: Device) -> Result<Batch> {
    for (i, s) in seqs.iter().enumerate() {
        s.check(None).map_err(|e| Error::input(format!("sequence {i} of the batch: {e}")))?;
    }
    let ids: Vec<&[i64]> = seqs.iter().map(|s| s.input_ids.as_slice()).collect();
    let padded = LeftPadded::new(&ids, 0, device)?;
    let labels: Vec<&[i64]> = seqs.iter().map(|s| s.labels.as_slice()).collect();
    let labels = padded.companion(&labels, IGNORE_INDEX)?;
    Ok(Batch { input_ids: padded.input_ids, attention_mask: padded.attention_mask, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding_like_the_reference_collator() {
        let a = Sequence::with_prompt(vec![5, 6, 7], 2);
        let b = Sequence::with_prompt(vec![8], 0);
        assert_eq!(a.labels, vec![-100, -100, 7]);
        let batch = collate_left(&[a, b], Device::Cpu).unwrap();
        let ids = Vec::<i64>::try_from(batch.input_ids.view([-1])).unwrap();
        let mask = Vec::<i64>::try_from(batch.attention_mask.view([-1])).unwrap();
        let labels = Vec::<i64>::try_from(batch.labels.view([-1])).unwrap();
        assert_eq!(ids, vec![5, 6, 7, 0, 0, 8]);
        assert_eq!(mask, vec![1, 1, 1, 0, 0, 1]);
        assert_eq!(labels, vec![-100, -100, 7, -100, -100, 8]);
        assert_eq!(batch.num_tokens(), 4);
        assert!(collate_left(&[], Device::Cpu).is_err());
        assert!(collate_left(&[Sequence { input_ids: vec![1], labels: vec![] }], Device::Cpu).is_err());
    }
}

//! The one left-padding collate, shared by generation (prompt batches), SFT (training and validation batches) and
//! GRPO (prompt + completion batches). Rows are right-aligned in a [B, T] batch, as EARL's `Emu3FeatureDataset.
//! collate_fn` and transformers' `generate` lay them out: ids are filled with a pad id on the left, the attention
//! mask is 0 on padding and 1 on real tokens, and position ids are `cumsum(mask) − 1` with padding set to 1
//! ([`position_ids`], the rule the model applies when none are given). Per-token companions of the ids (SFT labels,
//! GRPO completion masks) are laid out the same way with their own fill value ([`LeftPadded::companion`]).
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// A left-padded batch of token rows: ids and attention mask [B, T] i64 on one device.
#[derive(Debug)]
pub struct LeftPadded {
    /// Token ids [B, T], the pad id on the left.
    pub input_ids: Tensor,
    /// 1 on real tokens, 0 on padding [B, T].
    pub attention_mask: Tensor,
    /// Length of every row before padding.
    lens: Vec<usize>,
    width: usize,
    device: Device,
}

impl LeftPadded {
    /// Left-pads `rows` to the longest with `pad_id` on `device`. An empty batch or an empty row is an error.
    pub fn new<R: AsRef<[i64]>>(rows: &[R], pad_id: i64, device: Device) -> Result<Self> {
        if rows.is_empty() {
            return Err(Error::input("cannot collate an empty batch"));
        }
        if let Some(i) = rows.iter().position(|r| r.as_ref().is_empty()) {
            return Err(Error::input(format!("row {i} of the batch is empty")));
        }
        let lens: Vec<usize> = rows.iter().map(|r| r.as_ref().len()).collect();
        let width = lens.iter().copied().max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        for r in rows {
            let (r, pad) = (r.as_ref(), width - r.as_ref().len());
            ids.extend(std::iter::repeat_n(pad_id, pad).chain(r.iter().copied()));
            mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, r.len())));
        }
        let shape = [rows.len() as i64, width as i64];
        let mk = |v: Vec<i64>| Tensor::from_slice(&v).view(shape).to_device(device);
        Ok(LeftPadded { input_ids: mk(ids), attention_mask: mk(mask), lens, width, device })
    }

    /// Padded length T.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Per-token values aligned with the ids (one row per batch row, of the same length), left-filled with `fill`,
    /// [B, T] i64 on the batch's device.
    pub fn companion<R: AsRef<[i64]>>(&self, rows: &[R], fill: i64) -> Result<Tensor> {
        if rows.len() != self.lens.len() {
            return Err(Error::input(format!("{} companion rows for a batch of {}", rows.len(), self.lens.len())));
        }
        let mut out = Vec::with_capacity(rows.len() * self.width);
        for (i, (r, &n)) in rows.iter().zip(&self.lens).enumerate() {
            let r = r.as_ref();
            if r.len() != n {
                return Err(Error::input(format!("row {i}: {n} ids but {} companion values", r.len())));
            }
            out.extend(std::iter::repeat_n(fill, self.width - n).chain(r.iter().copied()));
        }
        Ok(Tensor::from_slice(&out).view([rows.len() as i64, self.width as i64]).to_device(self.device))
    }

    /// The batch's position ids (see [`position_ids`]).
    pub fn position_ids(&self) -> Tensor {
        position_ids(&self.attention_mask)
    }
}

/// Position ids of a left-padded batch from its attention mask [B, T]: `cumsum(mask) − 1`, padding set to 1, as
/// transformers' `generate` and EARL's training derive them.
pub fn position_ids(mask: &Tensor) -> Tensor {
    (mask.cumsum(1, Kind::Int64) - 1).masked_fill(&mask.eq(0), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn rows_are_right_aligned_with_mask_positions_and_companions() {
        let b = LeftPadded::new(&[vec![5, 6, 7], vec![8]], 9, Device::Cpu).unwrap();
        assert_eq!(b.input_ids.size(), vec![2, 3]);
        assert_eq!(host(&b.input_ids), vec![5, 6, 7, 9, 9, 8]);
        assert_eq!(host(&b.attention_mask), vec![1, 1, 1, 0, 0, 1]);
        assert_eq!(host(&b.position_ids()), vec![0, 1, 2, 1, 1, 0]);
        let labels = b.companion(&[vec![-100, 6, 7], vec![8]], -100).unwrap();
        assert_eq!(host(&labels), vec![-100, 6, 7, -100, -100, 8]);
        assert!(b.companion(&[vec![1, 2], vec![3]], 0).is_err(), "row lengths must match the ids");
        assert!(b.companion(&[vec![1, 2, 3]], 0).is_err(), "one companion row per batch row");
        let empty: [Vec<i64>; 0] = [];
        assert!(LeftPadded::new(&empty, 0, Device::Cpu).is_err());
        assert!(LeftPadded::new(&[vec![1], vec![]], 0, Device::Cpu).is_err());
    }
}

//! Numerical comparison against reference outputs (goldens from `fixtures/make_fixtures.py`, or a file a user made
//! with the real weights). Errors are computed in f64 over the selected positions only — logits of left-padding
//! positions are meaningless in both implementations and are excluded.
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Error statistics of `ours` against `reference`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParityReport {
    /// max |ours − ref|
    pub max_abs: f64,
    /// ‖ours − ref‖₂ / ‖ref‖₂
    pub rel_l2: f64,
    /// max |ref|, to put `max_abs` in scale
    pub ref_max_abs: f64,
    /// Number of compared elements.
    pub numel: i64,
}

impl ParityReport {
    /// True when both the relative L2 error and the max absolute error are within bounds.
    pub fn within(&self, rel_tol: f64, abs_tol: f64) -> bool {
        self.rel_l2 <= rel_tol && self.max_abs <= abs_tol
    }
}

impl std::fmt::Display for ParityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rel L2 {:.3e}, max |Δ| {:.3e} (max |ref| {:.3e}, {} values)",
            self.rel_l2, self.max_abs, self.ref_max_abs, self.numel
        )
    }
}

/// Compares `ours` and `reference` of equal shape [B, T, …]; `keep` [B, T] (nonzero = compare) selects positions.
pub fn compare(ours: &Tensor, reference: &Tensor, keep: Option<&Tensor>) -> Result<ParityReport> {
    if ours.size() != reference.size() {
        return Err(Error::input(format!("shape {:?} vs reference {:?}", ours.size(), reference.size())));
    }
    let a = ours.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let b = reference.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let (a, b) = match keep {
        Some(k) => {
            let ks = k.size();
            if ks.len() > a.dim() || ks[..] != a.size()[..ks.len()] {
                return Err(Error::input(format!("mask shape {ks:?} does not prefix {:?}", a.size())));
            }
            let sel = k.to_device(tch::Device::Cpu).ne(0);
            (a.index(&[Some(&sel)]), b.index(&[Some(&sel)]))
        }
        None => (a, b),
    };
    let diff = &a - &b;
    let numel = diff.numel() as i64;
    if numel == 0 {
        return Err(Error::input("nothing to compare: the mask selects no position"));
    }
    Ok(ParityReport {
        max_abs: diff.abs().max().double_value(&[]),
        rel_l2: diff.norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-300),
        ref_max_abs: b.abs().max().double_value(&[]),
        numel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_positions_are_ignored() {
        let r = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 2, 2]);
        let o = Tensor::from_slice(&[100f32, 100., 3., 4.5]).view([1, 2, 2]);
        let keep = Tensor::from_slice2(&[[0i64, 1]]);
        let rep = compare(&o, &r, Some(&keep)).unwrap();
        assert_eq!(rep.numel, 2);
        assert!((rep.max_abs - 0.5).abs() < 1e-12);
        assert!((rep.rel_l2 - 0.5 / 5.0).abs() < 1e-12);
        assert!(!rep.within(0.05, 1.0) && rep.within(0.2, 1.0));
        assert!(compare(&o, &r, Some(&Tensor::zeros([1, 2], (Kind::Int64, tch::Device::Cpu)))).is_err());
        assert!(compare(&o.view([2, 2]), &r, None).is_err());
    }

    #[test]
    fn only_flips_at_wide_gaps_are_unexplained() {
        let reference = Tensor::from_slice(&[1i64, 2, 3, 4]).view([2, 2]);
        let ours = Tensor::from_slice(&[1i64, 9, 9, 4]).view([2, 2]); // positions 1 and 2 flipped
        let gap = Tensor::from_slice(&[1e-9f32, 5e-5, 3e-2, 0.5]).view([2, 2]); // a near-tie at 1, a clear win at 2
        assert_eq!(unexplained_code_flips(&ours, &reference, &gap, F32_CODE_GAP).unwrap(), 1);
        assert_eq!(unexplained_code_flips(&ours, &reference, &gap, 1.0).unwrap(), 0);
        assert_eq!(unexplained_code_flips(&reference, &reference, &gap, 0.0).unwrap(), 0);
        assert!(unexplained_code_flips(&ours.view([4]), &reference, &gap, 1.0).is_err());
    }
}

/// One compared quantity of a reference file.
#[derive(Debug, Clone)]
pub struct ParityCheck {
    /// What was compared (`logits`, `decode_logits`, …).
    pub name: &'static str,
    /// How close ours came to the reference's.
    pub report: ParityReport,
}

/// Runs the language model on the inputs of a reference file and compares with its outputs: `logits` of a full
/// forward over `input_ids`/`attention_mask` (real positions only), and, when the file has them, the logits of
/// cached token-by-token decoding (`decode_prefill_ids`, `decode_prefill_mask`, `decode_ids`, `decode_logits`).
pub fn check_lm_reference(
    model: &crate::Emu3ForCausalLM,
    reference: &crate::SafetensorsStore,
) -> Result<Vec<ParityCheck>> {
    use crate::ForwardArgs;
    let ids = reference.tensor_any("input_ids")?;
    let mask = reference.tensor_any("attention_mask")?;
    let want = reference.tensor_any("logits")?;
    let got = model.forward(&ids, &ForwardArgs { attention_mask: Some(&mask), ..Default::default() }, None)?;
    let mut checks = vec![ParityCheck { name: "full forward", report: compare(&got, &want, Some(&mask))? }];

    if reference.contains_name("decode_ids") {
        let p_ids = reference.tensor_any("decode_prefill_ids")?;
        let p_mask = reference.tensor_any("decode_prefill_mask")?;
        let d_ids = reference.tensor_any("decode_ids")?;
        let want = reference.tensor_any("decode_logits")?;
        let (b, steps) = (d_ids.size()[0], d_ids.size()[1]);
        let mut cache = model.new_cache(b, p_ids.size()[1] + steps)?;
        let prefill = ForwardArgs { attention_mask: Some(&p_mask), logits_to_keep: 1, ..Default::default() };
        let _ = model.forward(&p_ids, &prefill, Some(&mut cache))?;
        let mut outs = Vec::with_capacity(steps as usize);
        for s in 0..steps {
            let step = d_ids.narrow(1, s, 1);
            outs.push(model.forward(&step, &ForwardArgs::default(), Some(&mut cache))?);
        }
        let got = Tensor::cat(&outs, 1); // [B, S, V]
        checks.push(ParityCheck { name: "cached decode", report: compare(&got, &want, None)? });
    }
    Ok(checks)
}

/// Largest gap `(d₂ − d₁) / (d₂ + d₁)` between the reference's second-nearest and nearest squared codebook distances
/// at which an f32 encoding may still pick the other code. Our f32 latents agree with the reference's to ~1e-6
/// relative (the decoded pixels, one network later, agree to 6e-7; the f32 bound we hold them to is 1e-5), and a
/// latent error ε moves a squared distance d by at most 2ε‖z‖√d, i.e. the gap by ≤ 2ε‖z‖/√d: with ε ≤ 1e-5 and
/// ‖z‖/√d ≤ 5 for the near-ties that matter, 1e-4. TF32 convolutions (ε ≈ 1e-3) and bf16 (ε ≈ 1e-2) flip codes
/// well beyond it.
pub const F32_CODE_GAP: f64 = 1e-4;

/// Codes that differ from the reference's where the reference's nearest-code gap (`gap`, [`F32_CODE_GAP`] units)
/// exceeds `max_gap`: flips that rounding cannot explain. All three tensors have one shape.
pub fn unexplained_code_flips(ours: &Tensor, reference: &Tensor, gap: &Tensor, max_gap: f64) -> Result<i64> {
    if ours.size() != reference.size() || gap.size() != reference.size() {
        return Err(Error::input(format!(
            "codes {:?}, reference {:?} and gaps {:?} differ in shape",
            ours.size(),
            reference.size(),
            gap.size()
        )));
    }
    let ours = ours.to_device(tch::Device::Cpu).to_kind(Kind::Int64);
    let flipped = ours.ne_tensor(&reference.to_kind(Kind::Int64));
    let wide = gap.to_kind(Kind::Double).gt(max_gap);
    Ok(flipped.logical_and(&wide).sum(Kind::Int64).int64_value(&[]))
}

/// Result of [`check_vq_reference`].
#[derive(Debug, Clone)]
pub struct VqParity {
    /// Codes of `pixel_values` equal to the reference's.
    pub codes_equal: i64,
    /// Codes compared (every position of the reference's code grid).
    pub codes_total: i64,
    /// Of the differing codes, those where the reference's nearest-code gap exceeds [`F32_CODE_GAP`] (`None` for a
    /// reference file without `code_gap`). In f32 this must be 0.
    pub codes_flipped_beyond_gap: Option<i64>,
    /// Our decoding of the reference codes against the reference's `decoded`.
    pub decoded: ParityReport,
}

impl VqParity {
    /// Fraction of codes equal to the reference's, in [0, 1].
    pub fn code_agreement(&self) -> f64 {
        self.codes_equal as f64 / self.codes_total.max(1) as f64
    }
}

/// Runs the vision tokenizer on a reference file: encodes `pixel_values` (f32 `[B,3,H,W]`) and compares with `codes`
/// (i64 `[B,h,w]`); decodes the reference `codes` (so a code mismatch does not leak into the pixel comparison) and
/// compares with `decoded` (f32 `[B,3,H,W]`). With the reference's `code_gap` (f32 `[B,h,w]`), differing codes are
/// split into near-ties, which rounding explains, and the rest.
pub fn check_vq_reference(model: &crate::Emu3VqModel, reference: &crate::SafetensorsStore) -> Result<VqParity> {
    let pixels = reference.tensor_any("pixel_values")?;
    let want_codes = reference.tensor_any("codes")?;
    let want = reference.tensor_any("decoded")?;
    let got_codes = model.encode(&pixels)?.to_device(tch::Device::Cpu);
    if got_codes.size() != want_codes.size() {
        return Err(Error::input(format!("codes: shape {:?} vs reference {:?}", got_codes.size(), want_codes.size())));
    }
    let codes_equal = got_codes.eq_tensor(&want_codes.to_kind(Kind::Int64)).sum(Kind::Int64).int64_value(&[]);
    let codes_flipped_beyond_gap = if reference.contains_name("code_gap") {
        Some(unexplained_code_flips(&got_codes, &want_codes, &reference.tensor_any("code_gap")?, F32_CODE_GAP)?)
    } else {
        None
    };
    let decoded = compare(&model.decode(&want_codes)?, &want, None)?;
    Ok(VqParity { codes_equal, codes_total: want_codes.numel() as i64, codes_flipped_beyond_gap, decoded })
}

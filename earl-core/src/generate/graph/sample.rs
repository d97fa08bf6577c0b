//! Token sampling as a pure tensor function, for the captured decode step: the same ops in the same order as
//! [`TokenSampler::sample`](crate::generate::TokenSampler::sample) (argmax for greedy; otherwise
//! [`SamplingParams::warp`], softmax in f32, cumulative sum in f64 and the inverse CDF of the row's uniform), with
//! the uniforms given as a device tensor instead of drawn from the streams. The streams do not depend on the logits,
//! so the host draws each row's uniforms ahead of time ([`draw_uniforms`]) and the ids are those the eager sampler
//! picks. Nothing here reads back to the host.
use rand_chacha::ChaCha20Rng;
use tch::{Kind, Tensor};

use crate::generate::sampling::{uniform, SamplingParams};

/// Sampled ids [B] (i64) and the rows whose logits are not finite [B] (bool: a NaN or +Inf, or no finite value,
/// which the eager sampler reports as an error) for constrained logits [B, V] and, unless greedy, one uniform per
/// row `uniforms` [B] (f64, in [0, 1)).
pub(crate) fn sample_rows(logits: &Tensor, uniforms: Option<&Tensor>, params: &SamplingParams) -> (Tensor, Tensor) {
    let v = logits.size()[1];
    let bad = logits
        .isnan()
        .logical_or(&logits.isposinf())
        .any_dim(-1, false)
        .logical_or(&logits.max_dim(-1, false).0.isneginf());
    let ids = match uniforms {
        Some(u) if !params.is_greedy() => {
            let probs = params.warp(logits).softmax(-1, Kind::Float).to_kind(Kind::Double); // [B, V]
            let cdf = probs.cumsum(-1, Kind::Double);
            let target = u.unsqueeze(1) * cdf.narrow(1, v - 1, 1);
            target.searchsorted(&cdf, false, true, "right", None::<Tensor>).squeeze_dim(1).clamp_max(v - 1)
        }
        _ => logits.to_kind(Kind::Float).argmax(-1, false),
    };
    (ids.to_kind(Kind::Int64), bad)
}

/// `steps` draws of every stream, row-major [rows × steps] (what the host uploads before a block of replays).
pub(crate) fn draw_uniforms(streams: &mut [ChaCha20Rng], steps: usize) -> Vec<f64> {
    streams.iter_mut().flat_map(|s| (0..steps).map(|_| uniform(s)).collect::<Vec<_>>()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::sampling::{sample_stream, TokenSampler, TopK};
    use tch::Device;

    const ROWS: [(u64, u64); 5] = [(0, 0), (0, 1), (3, 0), (7, 2), (1, 4)];

    /// Logits [B, V] with ties, removed ids (−∞) and a wide range, different at every step.
    fn logits(step: i64, v: i64) -> Tensor {
        tch::manual_seed(100 + step);
        let x = Tensor::randn([ROWS.len() as i64, v], (Kind::Float, Device::Cpu)) * 3.0;
        let _ = x.narrow(1, 0, 2).fill_(1.5); // a tie
        let _ = x.narrow(1, v - 3, 2).fill_(f64::NEG_INFINITY);
        x
    }

    /// The device function, fed the uniforms the host draws ahead, picks what the eager sampler picks.
    fn same_ids_as_the_token_sampler(params: SamplingParams, v: i64) {
        let mut eager = TokenSampler::new(params, 11, &ROWS).unwrap();
        let mut streams: Vec<ChaCha20Rng> = ROWS.iter().map(|&(i, j)| sample_stream(11, i, j)).collect();
        let steps = 40;
        let u = draw_uniforms(&mut streams, steps);
        let u = Tensor::from_slice(&u).view([ROWS.len() as i64, steps as i64]);
        let mut distinct = std::collections::BTreeSet::new();
        for step in 0..steps as i64 {
            let l = logits(step, v);
            // Each gets its own copy: `SamplingParams::warp` divides f32 logits by the temperature in place.
            let want = eager.sample(&l.copy()).unwrap();
            let (ids, bad) = sample_rows(&l, Some(&u.select(1, step)), &params);
            assert_eq!(Vec::<i64>::try_from(&ids).unwrap(), want, "{params:?} step {step}");
            assert!(!bool::try_from(bad.any()).unwrap());
            distinct.extend(want);
        }
        // Not a degenerate comparison: sampling spreads over many ids (greedy over the rows' maxima).
        assert!(distinct.len() >= if params.is_greedy() { 5 } else { 20 }, "{params:?}: {distinct:?}");
    }

    #[test]
    fn device_sampling_matches_the_token_sampler() {
        let p = |temperature, top_k, top_p| SamplingParams { temperature, top_k, top_p };
        for v in [64, 320] {
            same_ids_as_the_token_sampler(SamplingParams::greedy(), v);
            same_ids_as_the_token_sampler(p(1.0, TopK::Off, 1.0), v);
            same_ids_as_the_token_sampler(p(0.7, TopK::Off, 1.0), v);
            same_ids_as_the_token_sampler(p(1.3, TopK::K(20), 1.0), v);
            same_ids_as_the_token_sampler(p(1.0, TopK::Off, 0.9), v);
            same_ids_as_the_token_sampler(p(0.8, TopK::K(40), 0.95), v);
            same_ids_as_the_token_sampler(SamplingParams::reference_eval(), v);
        }
    }

    #[test]
    fn greedy_ignores_uniforms_and_non_finite_rows_are_flagged() {
        let ninf = f32::NEG_INFINITY;
        let l =
            Tensor::from_slice(&[0f32, 3., 1., f32::NAN, 0., 0., ninf, ninf, ninf, 2., 9., f32::INFINITY]).view([4, 3]);
        let u = Tensor::from_slice(&[0.5f64, 0.5, 0.5, 0.5]);
        let (ids, bad) = sample_rows(&l, Some(&u), &SamplingParams::greedy());
        assert_eq!(Vec::<i64>::try_from(&ids).unwrap()[0], 1);
        assert_eq!(Vec::<bool>::try_from(&bad).unwrap(), vec![false, true, true, true]);
        let l = l.narrow(1, 0, 2);
        let (ids, bad) = sample_rows(&l, Some(&u), &SamplingParams::reference_eval());
        assert_eq!(Vec::<bool>::try_from(&bad).unwrap(), vec![false, true, true, false]);
        assert_eq!(Vec::<i64>::try_from(&ids).unwrap()[3], 1); // [2, 9]: the draw lands on the heavy id
    }
}

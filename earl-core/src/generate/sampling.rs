//! Seeded token sampling: greedy, temperature, top-k and top-p with the semantics and order of transformers'
//! warpers (temperature → top-k → top-p; ties at the k-th logit kept; top-p keeps the smallest set whose mass
//! reaches p and always at least one token).
//!
//! Determinism and batch invariance: request `i`, sample `j` owns the random stream
//! `ChaCha20Rng::seed_from_u64(seed)` with `set_stream((i << 32) | j)`. Each sampled token consumes exactly one
//! draw `u = (next_u64() >> 11) · 2⁻⁵³ ∈ [0, 1)` and picks the first id whose cumulative probability exceeds
//! `u · total` (inverse CDF, computed in f64 on the device). A row's tokens therefore depend only on its own
//! logits and its own stream — not on batch size, order or the other rows. Greedy decoding draws nothing.
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Top-k filtering: off, or keep the `k ≥ 1` most likely ids (ties at the k-th logit kept).
///
/// Experiment files and JSON write it as the reference does: `-1` for off (vLLM's `SamplingParams(top_k=-1)`, which
/// the reference's rollouts get from `top_k = -1` in rl/configs/grpo.jsonnet) and `k` otherwise. transformers'
/// `generate` spells off as 0 instead; 0 is refused here so that no spelling means two things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopK {
    /// No top-k filtering (−1 in files).
    Off,
    /// Keep the k most likely ids.
    K(usize),
}

impl TopK {
    /// From the reference's integer: −1 = off, k ≥ 1 = keep k.
    pub fn from_reference(k: i64) -> std::result::Result<TopK, String> {
        match k {
            -1 => Ok(TopK::Off),
            k if k >= 1 => Ok(TopK::K(k as usize)),
            k => Err(format!("top_k must be -1 (off) or >= 1, got {k}")),
        }
    }

    /// The reference's integer: −1 for off.
    pub fn to_reference(self) -> i64 {
        match self {
            TopK::Off => -1,
            TopK::K(k) => k as i64,
        }
    }
}

/// `off` or `-1` (off), or k ≥ 1: how `--top-k` is written.
impl std::str::FromStr for TopK {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "off" => Ok(TopK::Off),
            t => t
                .parse::<i64>()
                .map_err(|_| format!("top-k {s:?}: write off, -1 (off) or k >= 1"))
                .and_then(TopK::from_reference),
        }
    }
}

impl std::fmt::Display for TopK {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopK::Off => f.write_str("off"),
            TopK::K(k) => write!(f, "{k}"),
        }
    }
}

impl serde::Serialize for TopK {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i64(self.to_reference())
    }
}

impl<'de> serde::Deserialize<'de> for TopK {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        TopK::from_reference(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How logits become tokens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f64,
    /// Top-k filtering.
    pub top_k: TopK,
    /// Nucleus mass; 1.0 = off.
    pub top_p: f64,
}

impl SamplingParams {
    /// Argmax decoding: temperature 0, no top-k, no top-p.
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, top_k: TopK::Off, top_p: 1.0 }
    }

    /// EARL's evaluation setting: temperature 1.0, top-k 2048, top-p 1.0.
    pub fn reference_eval() -> Self {
        SamplingParams { temperature: 1.0, top_k: TopK::K(2048), top_p: 1.0 }
    }

    /// Whether this picks the argmax (temperature 0) and so draws no random numbers.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks temperature ≥ 0 and finite, top-k ≥ 0, top-p in (0, 1]; [`TokenSampler::new`] calls it.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0) || !self.temperature.is_finite() {
            return Err(Error::input(format!("temperature must be ≥ 0, got {}", self.temperature)));
        }
        if self.top_k == TopK::K(0) {
            return Err(Error::input("top_k must be off or >= 1, got 0"));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::input(format!("top_p must be in (0, 1], got {}", self.top_p)));
        }
        Ok(())
    }

    /// Temperature, top-k and top-p applied to logits [B, V] (f32 result; removed ids are −∞).
    ///
    /// ```
    /// use earl_core::generate::{SamplingParams, TopK};
    /// use tch::Tensor;
    ///
    /// let logits = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([1, 4]);
    /// // top-k 2 keeps the two largest logits; the others become −∞.
    /// let top2 = SamplingParams { temperature: 1.0, top_k: TopK::K(2), top_p: 1.0 }.warp(&logits);
    /// let kept: Vec<bool> = Vec::<f32>::try_from(top2.get(0)).unwrap().iter().map(|x| x.is_finite()).collect();
    /// assert_eq!(kept, [false, false, true, true]);
    /// ```
    pub fn warp(&self, logits: &Tensor) -> Tensor {
        let mut x = logits.to_kind(Kind::Float);
        if self.temperature > 0.0 && self.temperature != 1.0 {
            x /= self.temperature;
        }
        let v = x.size()[1];
        if let TopK::K(k) = self.top_k {
            let k = k as i64;
            if k < v {
                let (kth, _) = x.topk(k, -1, true, true);
                let threshold = kth.narrow(1, k - 1, 1); // [B, 1]
                x = x.masked_fill(&x.lt_tensor(&threshold), f64::NEG_INFINITY);
            }
        }
        if self.top_p < 1.0 {
            let (sorted, order) = x.sort(-1, false); // ascending
            let cum = sorted.softmax(-1, Kind::Float).cumsum(-1, Kind::Float);
            let remove_sorted = cum.le(1.0 - self.top_p);
            let _ = remove_sorted.narrow(1, v - 1, 1).fill_(0); // always keep the most likely id
            let remove = remove_sorted.scatter(1, &order, &remove_sorted);
            x = x.masked_fill(&remove, f64::NEG_INFINITY);
        }
        x
    }
}

/// The random stream of request `request`, sample `sample` under `seed`.
pub fn sample_stream(seed: u64, request: u64, sample: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream((request << 32) | (sample & 0xffff_ffff));
    rng
}

/// The row's next draw: the one uniform a sampled token consumes (the graph engine draws it ahead of time).
pub(crate) fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Samples one token per row, each row from its own stream.
///
/// ```
/// use earl_core::generate::{SamplingParams, TokenSampler};
/// use tch::Tensor;
///
/// let logits = Tensor::from_slice(&[0.0f32, 3.0, 1.0, 5.0, 3.0, 1.0]).view([2, 3]);
/// // Two batch rows: request 0 and request 1, sample 0 of each.
/// let mut greedy = TokenSampler::new(SamplingParams::greedy(), 0, &[(0, 0), (1, 0)])?;
/// assert_eq!(greedy.sample(&logits)?, [1, 0]);
///
/// // With sampling, the same seed and rows give the same tokens, whatever else is in the batch.
/// let params = SamplingParams::reference_eval();
/// let a = TokenSampler::new(params, 7, &[(0, 0), (1, 0)])?.sample(&logits)?;
/// let b = TokenSampler::new(params, 7, &[(0, 0), (1, 0)])?.sample(&logits)?;
/// assert_eq!(a, b);
/// # Ok::<(), earl_core::Error>(())
/// ```
pub struct TokenSampler {
    /// Validated in [`TokenSampler::new`]; private so it stays valid.
    params: SamplingParams,
    streams: Vec<ChaCha20Rng>,
    /// (request, sample) of each row, to name a row whose logits are not finite.
    rows: Vec<(u64, u64)>,
    /// Calls of [`TokenSampler::sample`] so far: the decoding step, for errors.
    step: usize,
}

impl TokenSampler {
    /// `rows[r] = (request, sample)` identifies the stream of batch row `r`.
    pub fn new(params: SamplingParams, seed: u64, rows: &[(u64, u64)]) -> Result<Self> {
        params.validate()?;
        let streams = rows.iter().map(|&(i, j)| sample_stream(seed, i, j)).collect();
        Ok(TokenSampler { params, streams, rows: rows.to_vec(), step: 0 })
    }

    /// The (validated) sampling parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Keeps the streams of `rows` (in that order), after finished rows leave the batch.
    pub fn retain_rows(&mut self, rows: &[usize]) {
        let old = std::mem::take(&mut self.streams);
        self.streams = rows.iter().map(|&r| old[r].clone()).collect();
        self.rows = rows.iter().map(|&r| self.rows[r]).collect();
    }

    /// One token per row from logits [B, V] (already constrained). Every row draws exactly once unless greedy.
    /// A row whose logits hold a NaN or +Inf, or no finite value at all, is an error naming the request, sample and
    /// step: sampling from it would pick an arbitrary id (and break the grid constraint) without saying why. The
    /// check is one reduction on the device, read back with the sampled ids (no extra synchronisation).
    pub fn sample(&mut self, logits: &Tensor) -> Result<Vec<i64>> {
        let s = logits.size();
        if s.len() != 2 || s[0] as usize != self.streams.len() {
            return Err(Error::input(format!("logits {s:?} for {} sampling rows", self.streams.len())));
        }
        let step = self.step;
        self.step += 1;
        let bad = logits
            .isnan()
            .logical_or(&logits.isposinf())
            .any_dim(-1, false)
            .logical_or(&logits.max_dim(-1, false).0.isneginf()); // [B]
        let ids = if self.params.is_greedy() {
            logits.to_kind(Kind::Float).argmax(-1, false)
        } else {
            let probs = self.params.warp(logits).softmax(-1, Kind::Float).to_kind(Kind::Double); // [B, V]
            let cdf = probs.cumsum(-1, Kind::Double);
            let u: Vec<f64> = self.streams.iter_mut().map(uniform).collect();
            let target = Tensor::from_slice(&u).to_device(logits.device()).unsqueeze(1) * cdf.narrow(1, s[1] - 1, 1);
            target.searchsorted(&cdf, false, true, "right", None::<Tensor>).squeeze_dim(1).clamp_max(s[1] - 1)
        };
        let both = Tensor::stack(&[ids.to_kind(Kind::Int64), bad.to_kind(Kind::Int64)], 0).to_device(tch::Device::Cpu);
        let both = Vec::<i64>::try_from(both.flatten(0, -1))?;
        let (ids, bad) = both.split_at(s[0] as usize);
        if let Some(r) = bad.iter().position(|&b| b != 0) {
            let (request, sample) = self.rows[r];
            return Err(Error::input(format!(
                "non-finite logits (NaN or +Inf, or no finite value) for request {request}, sample {sample} at \
                 decoding step {step}: the model's weights or inputs are damaged (--check-weights checks the weights)"
            )));
        }
        Ok(ids.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(rows: &[&[f32]]) -> Tensor {
        Tensor::stack(&rows.iter().map(|r| Tensor::from_slice(r)).collect::<Vec<_>>(), 0)
    }

    #[test]
    fn greedy_takes_the_argmax_and_draws_nothing() {
        let mut s = TokenSampler::new(SamplingParams::greedy(), 0, &[(0, 0), (1, 0)]).unwrap();
        assert_eq!(s.sample(&logits(&[&[0., 3., 1.], &[5., 3., 1.]])).unwrap(), vec![1, 0]);
    }

    #[test]
    fn top_k_and_top_p_remove_the_tail() {
        let l = logits(&[&[1., 2., 3., 4.]]);
        let k = SamplingParams { temperature: 1.0, top_k: TopK::K(2), top_p: 1.0 }.warp(&l);
        assert_eq!(Vec::<f32>::try_from(k.get(0)).unwrap()[..2], [f32::NEG_INFINITY, f32::NEG_INFINITY]);
        // softmax(1,2,3,4) ≈ .032 .087 .237 .644: p = 0.8 keeps {3, 4}; p = 0.5 keeps only {4}.
        let p = SamplingParams { temperature: 1.0, top_k: TopK::Off, top_p: 0.8 }.warp(&l);
        let kept: Vec<bool> = Vec::<f32>::try_from(p.get(0)).unwrap().iter().map(|x| x.is_finite()).collect();
        assert_eq!(kept, vec![false, false, true, true]);
        let p = SamplingParams { temperature: 1.0, top_k: TopK::Off, top_p: 0.5 }.warp(&l);
        let kept: Vec<bool> = Vec::<f32>::try_from(p.get(0)).unwrap().iter().map(|x| x.is_finite()).collect();
        assert_eq!(kept, vec![false, false, false, true]);
    }

    #[test]
    fn sampling_follows_the_distribution_and_never_picks_removed_ids() {
        let params = SamplingParams { temperature: 1.0, top_k: TopK::K(3), top_p: 1.0 };
        let l = logits(&[&[0.0, (2f32).ln(), 0.0, f32::NEG_INFINITY, -30.0]]); // p ∝ 1, 2, 1, 0, (removed by top-k)
        let mut counts = [0usize; 5];
        let mut s = TokenSampler::new(params, 7, &[(0, 0)]).unwrap();
        for _ in 0..4000 {
            counts[s.sample(&l).unwrap()[0] as usize] += 1;
        }
        assert_eq!(counts[3] + counts[4], 0);
        let f1 = counts[1] as f64 / 4000.0;
        assert!((f1 - 0.5).abs() < 0.04, "{counts:?}");
    }

    #[test]
    fn non_finite_logits_are_errors_naming_the_row_and_step() {
        for params in [SamplingParams::greedy(), SamplingParams::reference_eval()] {
            let mut s = TokenSampler::new(params, 0, &[(0, 0), (4, 2)]).unwrap();
            assert!(s.sample(&logits(&[&[0., 1.], &[1., f32::NEG_INFINITY]])).is_ok());
            for bad in [[f32::NAN, 1.], [f32::INFINITY, 0.], [f32::NEG_INFINITY, f32::NEG_INFINITY]] {
                let e = s.sample(&logits(&[&[0., 1.], &bad])).unwrap_err().to_string();
                assert!(e.contains("non-finite logits") && e.contains("request 4, sample 2 at decoding step"), "{e}");
            }
            s.retain_rows(&[1]);
            let e = s.sample(&logits(&[&[f32::NAN, 0.]])).unwrap_err().to_string();
            assert!(e.contains("request 4, sample 2 at decoding step 4"), "{e}");
        }
    }

    #[test]
    fn rows_are_independent_of_batch_composition() {
        let params = SamplingParams { temperature: 0.7, top_k: TopK::Off, top_p: 0.9 };
        let row = [0.1f32, 0.5, 0.2, 0.9, 0.3];
        let other = [2.0f32, 0.0, 0.0, 0.0, 0.0];
        let mut alone = TokenSampler::new(params, 42, &[(3, 1)]).unwrap();
        let mut batch = TokenSampler::new(params, 42, &[(0, 0), (3, 1), (9, 4)]).unwrap();
        for _ in 0..50 {
            let a = alone.sample(&logits(&[&row])).unwrap()[0];
            let b = batch.sample(&logits(&[&other, &row, &other])).unwrap()[1];
            assert_eq!(a, b);
        }
        assert!(TokenSampler::new(SamplingParams { top_p: 0.0, ..params }, 0, &[]).is_err());
    }

    #[test]
    fn top_k_is_written_as_the_reference_writes_it() {
        assert_eq!(TopK::from_reference(-1), Ok(TopK::Off));
        assert_eq!(TopK::from_reference(2048), Ok(TopK::K(2048)));
        assert!(TopK::from_reference(0).unwrap_err().contains("-1 (off) or >= 1"));
        assert_eq!(("off".parse(), "-1".parse(), "7".parse()), (Ok(TopK::Off), Ok(TopK::Off), Ok(TopK::K(7))));
        assert!("0".parse::<TopK>().is_err() && "x".parse::<TopK>().is_err());
        assert_eq!(serde_json::to_string(&TopK::Off).unwrap(), "-1");
        assert_eq!(serde_json::from_str::<TopK>("16").unwrap(), TopK::K(16));
        assert!(TokenSampler::new(SamplingParams { top_k: TopK::K(0), ..SamplingParams::greedy() }, 0, &[]).is_err());
    }
}

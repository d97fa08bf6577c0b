//! Small building blocks of the decoder: linear projections, RMSNorm, the SwiGLU MLP and rotary embeddings, each
//! reproducing the numerics of the transformers reference (dtype casts included).
use tch::{Kind, Tensor};

use crate::config::{Emu3Config, RopeScaling};
use crate::error::Result;
use crate::weights::TensorSource;

/// `y = x Wᵀ + b` (torch `nn.Linear`).
#[derive(Debug)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `bias`).
    pub fn load(src: &dyn TensorSource, prefix: &str, in_dim: i64, out_dim: i64, bias: bool) -> Result<Self> {
        let weight = src.tensor(&format!("{prefix}.weight"), &[out_dim, in_dim])?;
        let bias = if bias { Some(src.tensor(&format!("{prefix}.bias"), &[out_dim])?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// `x [.., in]` → `[.., out]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// RMSNorm as `Emu3RMSNorm`: normalise in f32, cast back to the input dtype, then scale by the weight.
#[derive(Debug)]
pub struct RmsNorm {
    /// Scale, `[hidden]`.
    pub weight: Tensor,
    /// Added to the mean square before the reciprocal square root.
    pub eps: f64,
}

impl RmsNorm {
    /// Loads the weight `name` of shape `[dim]`.
    pub fn load(src: &dyn TensorSource, name: &str, dim: i64, eps: f64) -> Result<Self> {
        Ok(RmsNorm { weight: src.tensor(name, &[dim])?, eps })
    }

    /// Normalises over the last dimension; the result has `x`'s dtype.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let xf = x.to_kind(Kind::Float);
        let var = xf.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = xf * (var + self.eps).rsqrt();
        &self.weight * normed.to_kind(kind)
    }
}

/// SwiGLU MLP: `down(silu(gate(x)) * up(x))`.
#[derive(Debug)]
pub struct Mlp {
    /// `gate_proj`: hidden → intermediate.
    pub gate: Linear,
    /// `up_proj`: hidden → intermediate.
    pub up: Linear,
    /// `down_proj`: intermediate → hidden.
    pub down: Linear,
}

impl Mlp {
    /// Loads `{prefix}.{gate,up,down}_proj` (biases when `mlp_bias`).
    pub fn load(src: &dyn TensorSource, prefix: &str, cfg: &Emu3Config) -> Result<Self> {
        let (h, i, b) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        Ok(Mlp {
            gate: Linear::load(src, &format!("{prefix}.gate_proj"), h, i, b)?,
            up: Linear::load(src, &format!("{prefix}.up_proj"), h, i, b)?,
            down: Linear::load(src, &format!("{prefix}.down_proj"), i, h, b)?,
        })
    }

    /// `[.., hidden]` → `[.., hidden]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.down.forward(&(self.gate.forward(x).silu() * self.up.forward(x)))
    }
}

/// Rotary position embeddings (`Emu3RotaryEmbedding`): inverse frequencies `1 / θ^(2i/d)`, angles computed in f32
/// for the given position ids, cos/sin cast to the activation dtype; applied with the rotate-half convention.
#[derive(Debug)]
pub struct Rotary {
    inv_freq: Tensor, // [head_dim / 2] f32
}

impl Rotary {
    /// Inverse frequencies for `cfg`'s `head_dim`, `rope_theta` and `rope_scaling`, on `device`.
    pub fn new(cfg: &Emu3Config, device: tch::Device) -> Self {
        let d = cfg.head_dim;
        let exponent = Tensor::arange_start_step(0, d, 2, (Kind::Int64, device)).to_kind(Kind::Float) / (d as f64);
        let mut inv_freq = Tensor::pow_scalar(cfg.rope_theta, &exponent).reciprocal();
        if let RopeScaling::Linear { factor } = cfg.rope_scaling {
            inv_freq /= factor;
        }
        Rotary { inv_freq }
    }

    /// cos and sin for `position_ids` [B, T], each [B, T, head_dim] in `kind`.
    pub fn cos_sin(&self, position_ids: &Tensor, kind: Kind) -> (Tensor, Tensor) {
        let pos = position_ids.to_kind(Kind::Float).unsqueeze(-1); // [B, T, 1]
        let freqs = pos * self.inv_freq.view([1, 1, -1]); // [B, T, D/2]
        let emb = Tensor::cat(&[&freqs, &freqs], -1); // [B, T, D]
        (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
    }

    /// Rotates `x` [B, H, T, D] by angles given as cos/sin [B, T, D].
    pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let (cos, sin) = (cos.unsqueeze(1), sin.unsqueeze(1)); // [B, 1, T, D]
        let half = x.size()[3] / 2;
        let x1 = x.narrow(3, 0, half);
        let x2 = x.narrow(3, half, half);
        let rotated = Tensor::cat(&[&x2.neg(), &x1], 3);
        x * cos + rotated * sin
    }
}

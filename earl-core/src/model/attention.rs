//! Grouped-query self-attention of `Emu3Attention`: q/k/v projections, rotary embeddings on q and k, optional KV
//! cache, key/value heads repeated to the query heads (the reference's `repeat_kv`), libtorch's fused
//! scaled-dot-product attention with an explicit boolean mask, output projection. On CUDA the backend is chosen by
//! the query length: native GQA for a decode step, repeated heads (memory-efficient kernel) for prefill/training.
use tch::Tensor;

use super::layers::{Linear, Rotary};
use crate::config::Emu3Config;
use crate::error::Result;
use crate::kv_cache::KvCache;
use crate::weights::TensorSource;

/// One layer's self-attention (`self_attn` in checkpoints), with its head layout taken from the config.
#[derive(Debug)]
pub struct Attention {
    /// `q_proj`: hidden → `num_heads · head_dim`.
    pub q_proj: Linear,
    /// `k_proj`: hidden → `num_kv_heads · head_dim`.
    pub k_proj: Linear,
    /// `v_proj`: hidden → `num_kv_heads · head_dim`.
    pub v_proj: Linear,
    /// `o_proj`: `num_heads · head_dim` → hidden.
    pub o_proj: Linear,
    num_heads: i64,
    num_kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    /// Loads `{prefix}.{q,k,v,o}_proj` with the shapes `cfg` implies (biases when `attention_bias`).
    pub fn load(src: &dyn TensorSource, prefix: &str, cfg: &Emu3Config) -> Result<Self> {
        let (h, d, b) = (cfg.hidden_size, cfg.head_dim, cfg.attention_bias);
        Ok(Attention {
            q_proj: Linear::load(src, &format!("{prefix}.q_proj"), h, cfg.num_heads * d, b)?,
            k_proj: Linear::load(src, &format!("{prefix}.k_proj"), h, cfg.num_kv_heads * d, b)?,
            v_proj: Linear::load(src, &format!("{prefix}.v_proj"), h, cfg.num_kv_heads * d, b)?,
            o_proj: Linear::load(src, &format!("{prefix}.o_proj"), cfg.num_heads * d, h, b)?,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: d,
        })
    }

    /// `x` [B, T, hidden]; `cos`/`sin` [B, T, D]; `mask` [B, 1, T, L] bool (true = may attend), L = cached + T.
    pub fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        cache: Option<(&mut KvCache, usize)>,
        dropout: f64,
    ) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let (h, hkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self.q_proj.forward(x).view([b, t, h, d]).transpose(1, 2); // [B, H, T, D]
        let k = self.k_proj.forward(x).view([b, t, hkv, d]).transpose(1, 2); // [B, Hkv, T, D]
        let v = self.v_proj.forward(x).view([b, t, hkv, d]).transpose(1, 2); // [B, Hkv, T, D]
        let q = Rotary::apply(&q, cos, sin);
        let k = Rotary::apply(&k, cos, sin);
        let (k, v) = match cache {
            Some((cache, layer)) => cache.write(layer, &k, &v), // [B, Hkv, L, D]
            None => (k, v),
        };
        let scale = (d as f64).powf(-0.5);
        let out = if x.device().is_cuda() && t == 1 {
            // A decode step: grouped heads natively, so the (growing) cache is not copied per step and layer. With a
            // mask, `enable_gqa` leaves only libtorch's math backend, which is cheap for one query per row.
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), dropout, false, scale, h != hkv)
        } else {
            // The reference's explicit `repeat_kv`: bitwise-identical to transformers in f32 on the CPU, and on CUDA
            // for prefill/training (T > 1) what lets SDPA take its memory-efficient kernel, which accepts a mask and
            // streams the scores; the math backend that masked `enable_gqa` leaves would materialise [B, H, T, L]
            // in f32 for the forward and again for the backward (torch 2.11 has no masked GQA kernel).
            let (k, v) = (repeat_kv(&k, h / hkv), repeat_kv(&v, h / hkv)); // [B, H, L, D]
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), dropout, false, scale, false)
        };
        self.o_proj.forward(&out.transpose(1, 2).reshape([b, t, h * d]))
    }
}

/// [B, Hkv, L, D] → [B, Hkv·n, L, D], each kv head repeated n times consecutively (torch `repeat_kv`).
pub(crate) fn repeat_kv(x: &Tensor, n: i64) -> Tensor {
    if n == 1 {
        return x.shallow_clone();
    }
    let s = x.size();
    x.unsqueeze(2).expand([s[0], s[1], n, s[2], s[3]], false).reshape([s[0], s[1] * n, s[2], s[3]])
}

//! The static-shape decode step of one batch-size bucket: every tensor it reads or writes is allocated once
//! ([`StepBuffers`]) and updated in place, so the step can be captured in a CUDA graph and replayed. One step samples
//! the next token of every row from the logits buffer (grid mask from the device state, in-graph sampling with the
//! row's uploaded uniform), records it in the block history, feeds it to the decoder (KV written at the device-side
//! write index, attention mask built on the device from the per-row slot validity, positions from a [B] counter)
//! and leaves the next logits in the buffer. The decoder ops repeat [`Emu3ForCausalLM::forward`]'s cached step
//! exactly (same shapes, dtypes and op order), so on one device a row's numbers are the eager path's.
use tch::{Kind, Tensor};

use super::grid::DeviceGrid;
use super::sample::sample_rows;
use crate::generate::constraint::ImageTokens;
use crate::generate::sampling::SamplingParams;
use crate::kv_cache::KvCache;
use crate::model::{repeat_kv, Attention, Emu3ForCausalLM, Rotary};

/// What a captured step bakes in besides its buffers: a step is reused only for the same key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepKey {
    /// Rows (the bucket size).
    pub(crate) batch: i64,
    /// Cache slots per row (prompt width + new tokens, as the eager cache).
    pub(crate) capacity: i64,
    /// Steps per block between host reads.
    pub(crate) block: i64,
    pub(crate) sampling: SamplingParams,
    pub(crate) image_tokens: Option<ImageTokens>,
}

/// The static buffers of one bucket.
#[derive(Debug)]
pub(crate) struct StepBuffers {
    pub(crate) key: StepKey,
    /// [B, V], model dtype: logits of the token to sample next.
    pub(crate) logits: Tensor,
    /// Per layer [B, H_kv, L, D].
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    /// [B, L] bool: slot holds a real token.
    valid: Tensor,
    /// [B] i64: position id of the token fed next.
    positions: Tensor,
    /// [1] i64: cache slot the token fed next is written to (the same for every row: prompts are left-padded).
    write_at: Tensor,
    /// [1, L] i64: slot numbers, for the attention mask.
    slots: Tensor,
    pub(crate) grid: DeviceGrid,
    /// [B, K] f64: the rows' uniforms for the block's steps.
    pub(crate) uniforms: Tensor,
    /// [1] i64: the step's column in the block.
    column: Tensor,
    /// [B, K] i64: sampled ids of the block.
    pub(crate) tokens: Tensor,
    /// [B, K] i64: 1 where the row's logits were not finite.
    pub(crate) bad: Tensor,
    rotary: Rotary,
}

impl StepBuffers {
    /// Zeroed buffers for `key` on the model's device.
    pub(crate) fn new(model: &Emu3ForCausalLM, key: StepKey) -> StepBuffers {
        let (dev, cfg) = (model.device(), &model.cfg);
        let (b, l, k) = (key.batch, key.capacity, key.block);
        let kv = || Tensor::zeros([b, cfg.num_kv_heads, l, cfg.head_dim], (model.kind(), dev));
        StepBuffers {
            key,
            logits: Tensor::zeros([b, cfg.vocab_size], (model.kind(), dev)),
            keys: (0..cfg.num_layers).map(|_| kv()).collect(),
            values: (0..cfg.num_layers).map(|_| kv()).collect(),
            valid: Tensor::zeros([b, l], (Kind::Bool, dev)),
            positions: Tensor::zeros([b], (Kind::Int64, dev)),
            write_at: Tensor::zeros([1], (Kind::Int64, dev)),
            slots: Tensor::arange(l, (Kind::Int64, dev)).unsqueeze(0),
            grid: DeviceGrid::zeros(b, dev),
            uniforms: Tensor::zeros([b, k], (Kind::Double, dev)),
            column: Tensor::zeros([1], (Kind::Int64, dev)),
            tokens: Tensor::zeros([b, k], (Kind::Int64, dev)),
            bad: Tensor::zeros([b, k], (Kind::Int64, dev)),
            rotary: Rotary::new(cfg, dev),
        }
    }

    /// Loads a chunk: row `i` of the buffers becomes row `rows[i]` of the prefilled `cache` and `last` logits
    /// [R, V] (dummy rows repeat a real one); the next token goes to slot `cache.len()`.
    pub(crate) fn load(&self, cache: &KvCache, last: &Tensor, rows: &[i64]) {
        let idx = Tensor::from_slice(rows).to_device(self.logits.device());
        let copy = |dst: &Tensor, src: &Tensor| dst.shallow_clone().copy_(&src.index_select(0, &idx));
        for (layer, (k, v)) in self.keys.iter().zip(&self.values).enumerate() {
            let (ck, cv) = cache.layer_buffers(layer);
            copy(k, ck);
            copy(v, cv);
        }
        copy(&self.valid, cache.valid_slots());
        copy(&self.positions, cache.next_positions());
        copy(&self.logits, last);
        let _ = self.write_at.shallow_clone().fill_(cache.len());
    }

    /// Starts a block: uploads its uniforms [B × K] (row-major; ignored when greedy) and rewinds the column.
    pub(crate) fn begin_block(&self, uniforms: &[f64]) {
        if !self.key.sampling.is_greedy() {
            let host = Tensor::from_slice(uniforms).view([self.key.batch, self.key.block]);
            self.uniforms.shallow_clone().copy_(&host);
        }
        let _ = self.column.shallow_clone().zero_();
    }

    /// One decode step (what is captured): sample, record, feed the token, advance the device counters.
    pub(crate) fn step(&self, model: &Emu3ForCausalLM) {
        let v = model.cfg.vocab_size;
        let masked = match &self.key.image_tokens {
            Some(t) => self.logits.masked_fill(&self.grid.mask(t, v).logical_not(), f64::NEG_INFINITY),
            None => self.logits.shallow_clone(),
        };
        let u = self.uniforms.index_select(1, &self.column).squeeze_dim(1);
        let (ids, bad) = sample_rows(&masked, Some(&u), &self.key.sampling);
        let _ = self.tokens.shallow_clone().index_copy_(1, &self.column, &ids.unsqueeze(1));
        let _ = self.bad.shallow_clone().index_copy_(1, &self.column, &bad.to_kind(Kind::Int64).unsqueeze(1));
        if let Some(t) = &self.key.image_tokens {
            self.grid.push_(&ids, t);
        }
        let next = self.forward(model, &ids.unsqueeze(1)); // [B, 1, V]
        self.logits.shallow_clone().copy_(&next.squeeze_dim(1));
        let _ = self.positions.shallow_clone().g_add_scalar_(1);
        let _ = self.write_at.shallow_clone().g_add_scalar_(1);
        let _ = self.column.shallow_clone().g_add_scalar_(1);
    }

    /// The decoder on one new token per row, ids [B, 1] on the device: `Emu3ForCausalLM::forward` with a cache,
    /// except that the write index, positions and slot validity are device tensors.
    fn forward(&self, model: &Emu3ForCausalLM, ids: &Tensor) -> Tensor {
        let b = self.key.batch;
        let _ = self.valid.shallow_clone().index_fill_(1, &self.write_at, 1i64);
        // The eager mask (causal_lm::attention_mask for one query at slot `write_at`): real keys up to the query,
        // and the query itself.
        let query = self.write_at.view([1, 1]);
        let mask = self.slots.le_tensor(&query).logical_and(&self.valid).logical_or(&self.slots.eq_tensor(&query));
        let mask = mask.view([b, 1, 1, -1]);
        let (cos, sin) = self.rotary.cos_sin(&self.positions.view([b, 1]), model.kind());
        let mut x = Tensor::embedding(&model.embed_tokens, ids, model.cfg.pad_token_id, false, false);
        for (i, layer) in model.layers.iter().enumerate() {
            let h = layer.input_layernorm.forward(&x);
            let a = self.attend(&layer.self_attn, model, &h, &cos, &sin, &mask, i);
            x = &x + a;
            let m = layer.mlp.forward(&layer.post_attention_layernorm.forward(&x));
            x = &x + m;
        }
        model.head(&x)
    }

    /// `Attention::forward` for one token with the key/value write at the device-side index.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        attn: &Attention,
        model: &Emu3ForCausalLM,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        layer: usize,
    ) -> Tensor {
        let cfg = &model.cfg;
        let (b, t) = (x.size()[0], x.size()[1]);
        let (h, hkv, d) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let q = attn.q_proj.forward(x).view([b, t, h, d]).transpose(1, 2);
        let k = attn.k_proj.forward(x).view([b, t, hkv, d]).transpose(1, 2);
        let v = attn.v_proj.forward(x).view([b, t, hkv, d]).transpose(1, 2);
        let q = Rotary::apply(&q, cos, sin);
        let k = Rotary::apply(&k, cos, sin);
        let (keys, values) = (self.keys[layer].shallow_clone(), self.values[layer].shallow_clone());
        let _ = keys.shallow_clone().index_copy_(2, &self.write_at, &k);
        let _ = values.shallow_clone().index_copy_(2, &self.write_at, &v);
        let scale = (d as f64).powf(-0.5);
        let out = if x.device().is_cuda() {
            Tensor::scaled_dot_product_attention(&q, &keys, &values, Some(mask), 0.0, false, scale, h != hkv)
        } else {
            let (keys, values) = (repeat_kv(&keys, h / hkv), repeat_kv(&values, h / hkv));
            Tensor::scaled_dot_product_attention(&q, &keys, &values, Some(mask), 0.0, false, scale, false)
        };
        attn.o_proj.forward(&out.transpose(1, 2).reshape([b, t, h * d]))
    }
}

//! `Emu3ForCausalLM`: loading from any checkpoint layout and the batched forward pass (full or cached).
use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::attention::Attention;
use super::layers::{Linear, Mlp, RmsNorm, Rotary};
use crate::config::Emu3Config;
use crate::error::{guard, Error, Result};
use crate::kv_cache::KvCache;
use crate::weights::{SafetensorsStore, TensorSource};

/// One decoder layer: pre-norm attention and MLP, each added back to the residual stream.
#[derive(Debug)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Grouped-query self-attention.
    pub self_attn: Attention,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// SwiGLU MLP.
    pub mlp: Mlp,
}

/// The Emu3 decoder with its language-model head. Immutable after loading; see [`Emu3ForCausalLM::forward`].
#[derive(Debug)]
pub struct Emu3ForCausalLM {
    /// The configuration the weights were loaded for; the tensor shapes follow it.
    pub cfg: Emu3Config,
    /// `embed_tokens.weight`, `[vocab, hidden]`.
    pub embed_tokens: Tensor,
    /// The decoder layers, in order.
    pub layers: Vec<DecoderLayer>,
    /// The final RMSNorm before the head.
    pub norm: RmsNorm,
    /// `None` when `tie_word_embeddings` is set: the embedding matrix doubles as the head.
    pub lm_head: Option<Linear>,
    rotary: Rotary,
    kind: Kind,
    device: Device,
}

/// Optional inputs of a forward pass beside the token ids.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardArgs<'a> {
    /// [B, T], 1 for real tokens and 0 for (left) padding; all ones when absent.
    pub attention_mask: Option<&'a Tensor>,
    /// [B, T] position ids; when absent they follow the reference's `cumsum(mask) - 1`, padding set to 1,
    /// continuing from the cache.
    pub position_ids: Option<&'a Tensor>,
    /// Compute logits only for the last k positions (0 = all), like transformers' `logits_to_keep`.
    pub logits_to_keep: i64,
    /// Training mode: dropout (`attention_dropout`) on the input embeddings, attention weights and both residual
    /// branches, as EARL's remote-code model.
    pub train: bool,
    /// In training mode, re-seed libtorch's generators from (this seed, layer index) before each layer, so that a
    /// layer's dropout masks can be drawn again exactly: activation checkpointing recomputes layers during the
    /// backward pass and must see the same masks as the forward. `None` draws from the generators as they stand.
    pub dropout_seed: Option<i64>,
}

/// What every decoder layer of one forward pass shares: rotary angles, the attention mask and the dropout setting.
/// Built by [`Emu3ForCausalLM::layer_inputs`]; used by the layer-by-layer API that activation checkpointing needs.
#[derive(Debug)]
pub struct LayerInputs {
    cos: Tensor,       // [B, T, D]
    sin: Tensor,       // [B, T, D]
    attn_mask: Tensor, // [B, 1, T, L]
    dropout: f64,
    train: bool,
    dropout_seed: Option<i64>,
}

/// Checkpoint prefixes of the text decoder: EARL/BAAI and `Emu3ForCausalLM` (`model.`), the in-memory
/// `Emu3ForConditionalGeneration` names (`model.text_model.`) and its saved hub layout (`text_model.model.`).
const DECODER_PREFIXES: [&str; 3] = ["model.", "model.text_model.", "text_model.model."];
const HEAD_NAMES: [&str; 2] = ["lm_head.weight", "text_model.lm_head.weight"];

impl Emu3ForCausalLM {
    /// Reads `dir/config.json` and the safetensors weights of `dir`, as `kind` on `device`.
    pub fn from_dir(dir: &Path, kind: Kind, device: Device) -> Result<Self> {
        crate::torch_cuda::load();
        let (cfg, defaulted) = Emu3Config::from_dir_with_defaults(dir)?;
        let store = SafetensorsStore::open(dir, kind, device)?;
        tracing::info!(dir = %dir.display(), params = cfg.num_parameters(), ?kind, ?device, "loading Emu3 decoder");
        // transformers fills an absent shape field with Emu3-8B's value, as we do; when the weights then disagree,
        // the config is what to fix, not the tensor.
        Self::load(&store, &cfg).map_err(|e| match e {
            Error::Shape { .. } if !defaulted.is_empty() => Error::Config {
                path: dir.join("config.json"),
                msg: format!(
                    "{e}; config.json does not set {}, so Emu3-8B's values were assumed",
                    defaulted.join(", ")
                ),
            },
            e => e,
        })
    }

    /// Builds the model from any tensor source; every checkpoint tensor name is spelled here and nowhere else.
    pub fn load(src: &dyn TensorSource, cfg: &Emu3Config) -> Result<Self> {
        let _span = tracing::info_span!("load_emu3", layers = cfg.num_layers).entered();
        let p = DECODER_PREFIXES
            .iter()
            .find(|p| src.contains(&format!("{p}embed_tokens.weight")))
            .copied()
            .unwrap_or(DECODER_PREFIXES[0]);
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let embed_tokens = src.tensor(&format!("{p}embed_tokens.weight"), &[cfg.vocab_size, h])?;
        let mut layers = Vec::with_capacity(cfg.num_layers as usize);
        for i in 0..cfg.num_layers {
            let l = format!("{p}layers.{i}");
            layers.push(DecoderLayer {
                input_layernorm: RmsNorm::load(src, &format!("{l}.input_layernorm.weight"), h, eps)?,
                self_attn: Attention::load(src, &format!("{l}.self_attn"), cfg)?,
                post_attention_layernorm: RmsNorm::load(src, &format!("{l}.post_attention_layernorm.weight"), h, eps)?,
                mlp: Mlp::load(src, &format!("{l}.mlp"), cfg)?,
            });
        }
        // Weights with more layers than the config names would otherwise be dropped without a word.
        let extra = format!("{p}layers.{}.input_layernorm.weight", cfg.num_layers);
        if src.is_stored() && src.contains(&extra) {
            return Err(Error::input(format!(
                "the weights hold more decoder layers than the config's num_hidden_layers = {} (found `{extra}`)",
                cfg.num_layers
            )));
        }
        let norm = RmsNorm::load(src, &format!("{p}norm.weight"), h, eps)?;
        let head_name = HEAD_NAMES.iter().find(|n| src.contains(n)).copied();
        let lm_head = match (head_name, cfg.tie_word_embeddings) {
            (Some(name), _) => Some(Linear { weight: src.tensor(name, &[cfg.vocab_size, h])?, bias: None }),
            (None, true) => None,
            (None, false) => Some(Linear { weight: src.tensor(HEAD_NAMES[0], &[cfg.vocab_size, h])?, bias: None }),
        };
        Ok(Emu3ForCausalLM {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary: Rotary::new(cfg, src.device()),
            kind: src.kind(),
            device: src.device(),
        })
    }

    /// Every trainable tensor with its checkpoint name, in the layout `Emu3ForCausalLM.save_pretrained` of
    /// transformers writes (`model.…`, `lm_head.weight`), in a stable order (embedding, layers, final norm, head).
    /// The tensors are shallow handles sharing storage and autograd state with the model: training code sets
    /// `requires_grad`, reads gradients and updates values in place through them; saving writes them under these
    /// names. A tied head is not listed (it is the embedding).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed_tokens.shallow_clone())];
        let linear = |out: &mut Vec<(String, Tensor)>, name: String, l: &Linear| {
            out.push((format!("{name}.weight"), l.weight.shallow_clone()));
            if let Some(b) = &l.bias {
                out.push((format!("{name}.bias"), b.shallow_clone()));
            }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let l = format!("model.layers.{i}");
            out.push((format!("{l}.input_layernorm.weight"), layer.input_layernorm.weight.shallow_clone()));
            let a = &layer.self_attn;
            for (n, lin) in [("q_proj", &a.q_proj), ("k_proj", &a.k_proj), ("v_proj", &a.v_proj), ("o_proj", &a.o_proj)]
            {
                linear(&mut out, format!("{l}.self_attn.{n}"), lin);
            }
            out.push((
                format!("{l}.post_attention_layernorm.weight"),
                layer.post_attention_layernorm.weight.shallow_clone(),
            ));
            let m = &layer.mlp;
            for (n, lin) in [("gate_proj", &m.gate), ("up_proj", &m.up), ("down_proj", &m.down)] {
                linear(&mut out, format!("{l}.mlp.{n}"), lin);
            }
        }
        out.push(("model.norm.weight".to_string(), self.norm.weight.shallow_clone()));
        if let Some(head) = &self.lm_head {
            linear(&mut out, "lm_head".to_string(), head);
        }
        out
    }

    /// The dtype the weights were loaded in (activations and logits use it too).
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.device
    }

    /// A cache sized for this model.
    pub fn new_cache(&self, batch: i64, max_len: i64) -> Result<KvCache> {
        KvCache::new(&self.cfg, batch, max_len, self.kind, self.device)
    }

    /// Logits [B, T', V] (T' = T, or `logits_to_keep`) in the model dtype for `input_ids` [B, T] (i64).
    /// With a cache, the tokens are appended after those already cached and attend to them.
    pub fn forward(&self, input_ids: &Tensor, args: &ForwardArgs, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let _span = tracing::debug_span!("emu3_forward", shape = ?input_ids.size()).entered();
        guard("the Emu3 forward pass", || {
            let (ids, mask, positions) = self.check_inputs(input_ids, args)?;
            self.forward_checked(&ids, &mask, positions.as_ref(), args, cache)
        })
    }

    /// Validates shapes, dtypes and id ranges and moves inputs to the model's device.
    fn check_inputs(&self, input_ids: &Tensor, args: &ForwardArgs) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let size = input_ids.size();
        if size.len() != 2 || size[0] == 0 || size[1] == 0 {
            return Err(Error::input(format!("input_ids must be a non-empty [B, T] tensor, got shape {size:?}")));
        }
        if input_ids.is_floating_point() || input_ids.kind() == Kind::Bool {
            return Err(Error::input(format!("input_ids must be integer, got {:?}", input_ids.kind())));
        }
        // The range check runs where the ids are: on host ids (what the generation engine passes) it costs no
        // device synchronisation, which a check on the GPU copy would add to every decode step.
        let host = input_ids.to_kind(Kind::Int64);
        let (lo, hi) = (host.min().int64_value(&[]), host.max().int64_value(&[]));
        let ids = host.to_device(self.device);
        if lo < 0 || hi >= self.cfg.vocab_size {
            return Err(Error::input(format!("token ids must lie in [0, {}), found {lo}..={hi}", self.cfg.vocab_size)));
        }
        let same_shape = |name: &str, t: &Tensor| -> Result<Tensor> {
            if t.size() != size {
                return Err(Error::input(format!("{name} has shape {:?}, input_ids {size:?}", t.size())));
            }
            Ok(t.to_device(self.device).to_kind(Kind::Int64))
        };
        let mask = match args.attention_mask {
            Some(m) => same_shape("attention_mask", m)?,
            None => Tensor::ones([size[0], size[1]], (Kind::Int64, self.device)),
        };
        let positions = args.position_ids.map(|p| same_shape("position_ids", p)).transpose()?;
        if args.logits_to_keep < 0 {
            return Err(Error::input(format!("logits_to_keep must be ≥ 0, got {}", args.logits_to_keep)));
        }
        Ok((ids, mask, positions))
    }

    fn forward_checked(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        positions: Option<&Tensor>,
        args: &ForwardArgs,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let t = ids.size()[1];
        let ctx = self.step_inputs(mask, positions, args, cache.as_deref_mut())?;
        let mut x = self.embed(ids, &ctx); // [B, T, h]
        for i in 0..self.layers.len() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            x = self.layer_forward(i, &x, &ctx, layer_cache);
        }
        if let Some(c) = cache {
            c.end_step(mask);
        }
        let keep = if args.logits_to_keep == 0 || args.logits_to_keep > t { t } else { args.logits_to_keep };
        Ok(self.head(&x.narrow(1, t - keep, keep)))
    }

    /// The inputs all layers share for T new tokens with `mask` [B, T]: positions (given, or the reference's
    /// `cumsum(mask) - 1` with padding at 1, continuing from the cache), the attention mask over cached + new keys,
    /// rotary angles and the dropout setting. With a cache this starts its step (`KvCache::begin_step`).
    fn step_inputs(
        &self,
        mask: &Tensor,
        positions: Option<&Tensor>,
        args: &ForwardArgs,
        cache: Option<&mut KvCache>,
    ) -> Result<LayerInputs> {
        let t = mask.size()[1];
        let (past, derived_pos, key_valid) = match cache {
            Some(c) => {
                let past = c.len();
                let (pos, valid) = c.begin_step(mask)?;
                (past, pos, valid)
            }
            None => (0, crate::collate::position_ids(mask), mask.to_kind(Kind::Bool)),
        };
        let pos = positions.map(|p| p.shallow_clone()).unwrap_or(derived_pos);
        let attn_mask = attention_mask(&key_valid, past, t); // [B, 1, T, L]
        let (cos, sin) = self.rotary.cos_sin(&pos, self.kind); // [B, T, D]
        let dropout = if args.train { self.cfg.attention_dropout } else { 0.0 };
        Ok(LayerInputs { cos, sin, attn_mask, dropout, train: args.train, dropout_seed: args.dropout_seed })
    }

    /// Layer-by-layer API (no cache), for callers that schedule the layers themselves (activation checkpointing):
    /// validates the inputs like [`Self::forward`] and returns the device-side ids [B, T] with the inputs every layer
    /// shares. `forward` is exactly `head(layer_forward(…(layer_forward(embed(ids)))))`.
    pub fn layer_inputs(&self, input_ids: &Tensor, args: &ForwardArgs) -> Result<(Tensor, LayerInputs)> {
        guard("preparing the Emu3 layer inputs", || {
            let (ids, mask, positions) = self.check_inputs(input_ids, args)?;
            let ctx = self.step_inputs(&mask, positions.as_ref(), args, None)?;
            Ok((ids, ctx))
        })
    }

    /// Token embeddings [B, T, h] of device-side ids [B, T]. In training mode they go through dropout as in EARL's
    /// remote-code `Emu3Model.forward` (`self.dropout(inputs_embeds)`, p = `attention_dropout`); transformers 5.17's
    /// Emu3 has no embedding dropout, which only matters when training.
    pub fn embed(&self, ids: &Tensor, ctx: &LayerInputs) -> Tensor {
        let x = Tensor::embedding(&self.embed_tokens, ids, self.cfg.pad_token_id, false, false);
        if !(ctx.train && ctx.dropout > 0.0) {
            return x;
        }
        if let Some(seed) = ctx.dropout_seed {
            // The index after the last layer: a stream of its own.
            tch::manual_seed(layer_seed(seed, self.layers.len()));
        }
        x.dropout(ctx.dropout, true)
    }

    /// Decoder layer `i` on the residual stream `x` [B, T, h].
    pub fn layer_forward(
        &self,
        i: usize,
        x: &Tensor,
        ctx: &LayerInputs,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor {
        if let (true, Some(seed)) = (ctx.train && ctx.dropout > 0.0, ctx.dropout_seed) {
            tch::manual_seed(layer_seed(seed, i));
        }
        let layer = &self.layers[i];
        let (train, p) = (ctx.train, ctx.dropout);
        let a =
            layer.self_attn.forward(&layer.input_layernorm.forward(x), &ctx.cos, &ctx.sin, &ctx.attn_mask, cache, p);
        let x = x + a.dropout(p, train);
        let m = layer.mlp.forward(&layer.post_attention_layernorm.forward(&x));
        x + m.dropout(p, train)
    }

    /// Final norm and language-model head: logits [B, T, V] of the residual stream `x` [B, T, h].
    pub fn head(&self, x: &Tensor) -> Tensor {
        let x = self.norm.forward(x);
        match &self.lm_head {
            Some(head) => head.forward(&x),
            None => x.linear::<Tensor>(&self.embed_tokens, None),
        }
    }
}

/// Generator seed of layer `layer` under dropout seed `seed` (a SplitMix64 finaliser; non-negative for torch).
fn layer_seed(seed: i64, layer: usize) -> i64 {
    let mut z = (seed as u64) ^ (layer as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// Boolean attention mask [B, 1, T, L] for T new tokens after `past` cached ones: a query at absolute slot
/// `past + i` sees real keys at slots `≤ past + i`. Each query also sees itself, so rows of padding tokens (which
/// would otherwise see nothing and turn into NaN) stay finite; their outputs are never used.
fn attention_mask(key_valid: &Tensor, past: i64, t: i64) -> Tensor {
    let l = key_valid.size()[1];
    let dev = key_valid.device();
    let keys = Tensor::arange(l, (Kind::Int64, dev)).unsqueeze(0); // [1, L]
    let queries = (Tensor::arange(t, (Kind::Int64, dev)) + past).unsqueeze(1); // [T, 1]
    let causal = keys.le_tensor(&queries); // [T, L]
    let own = keys.eq_tensor(&queries); // [T, L]
    let allowed = causal.unsqueeze(0).logical_and(&key_valid.unsqueeze(1)).logical_or(&own.unsqueeze(0)); // [B,T,L]
    allowed.unsqueeze(1)
}

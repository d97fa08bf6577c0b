//! The decoder of the vision tokenizer (`Emu3VQVAEDecoder`): a temporal stage (temporal residual blocks, then per
//! temporal factor of two a nearest ×2 upsampling in time, a causal 3D convolution and SiLU) run on the latents and
//! on the quantized codes alike, then a 2D pyramid per frame (conv_in, middle block, per level `num_res_blocks + 1`
//! residual blocks with optional attention and a nearest ×2 upsample, norm, SiLU, conv_out) whose norms are all
//! conditioned on the quantized codes (`SpatialNorm`).
use tch::Tensor;

use super::blocks::{AttnBlock, CausalConv3d, Conv2d, Norm, ResnetBlock, TemporalResnetBlock, Upsample};
use super::encoder::MiddleBlock;
use super::names::Names;
use super::VqConfig;
use crate::error::Result;
use crate::weights::TensorSource;

#[derive(Debug)]
struct Level {
    blocks: Vec<ResnetBlock>,
    attns: Vec<AttnBlock>,
    upsample: Option<Upsample>,
}

#[derive(Debug)]
pub struct Decoder {
    time_res: Vec<TemporalResnetBlock>,
    time_conv: Vec<CausalConv3d>,
    conv_in: Conv2d,
    mid: MiddleBlock,
    /// Indexed by level (0 = full resolution); run from the innermost level outwards.
    levels: Vec<Level>,
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Decoder {
    pub fn load(src: &dyn TensorSource, n: &Names, cfg: &VqConfig) -> Result<Self> {
        let p = n.root("decoder");
        let z = cfg.latent_channels;
        let zq = Some(cfg.embed_dim);
        let time_res = (0..cfg.num_res_blocks)
            .map(|i| TemporalResnetBlock::load(src, &format!("{p}.time_res_stack.{i}"), z))
            .collect::<Result<_>>()?;
        let time_conv = (0..cfg.temporal_blocks())
            .map(|i| CausalConv3d::load(src, &format!("{p}.time_conv.{i}.conv.conv"), z, z, [3, 3, 3], [1, 1, 1]))
            .collect::<Result<_>>()?;
        let mut cin = cfg.inner_channels();
        let conv_in = Conv2d::load(src, &format!("{p}.conv_in"), z, cin, 3, 1, 1)?;
        let mut levels: Vec<Option<Level>> = (0..cfg.channel_multiplier.len()).map(|_| None).collect();
        for i in (0..cfg.channel_multiplier.len()).rev() {
            let lp = n.level("decoder", i);
            let cout = cfg.level_channels(i);
            let (mut blocks, mut attns) = (Vec::new(), Vec::new());
            for j in 0..=cfg.num_res_blocks as usize {
                blocks.push(ResnetBlock::load(src, &format!("{lp}.block.{j}"), cin, cout, zq)?);
                cin = cout;
                if cfg.has_attention(i) {
                    let (attn, norm) = n.level_attention(&lp, j);
                    attns.push(AttnBlock::load(src, &attn, &norm, cout, cfg.num_attention_heads, zq, n.attn_names())?);
                }
            }
            let upsample = if i > 0 { Some(Upsample::load(src, &format!("{lp}.upsample"), cout)?) } else { None };
            levels[i] = Some(Level { blocks, attns, upsample });
        }
        let c0 = cfg.level_channels(0);
        Ok(Decoder {
            time_res,
            time_conv,
            conv_in,
            mid: MiddleBlock::load(src, n, "decoder", cfg, zq)?,
            levels: levels.into_iter().flatten().collect(),
            norm_out: Norm::load(src, &format!("{p}.norm_out"), c0, zq)?,
            conv_out: Conv2d::load(src, &format!("{p}.conv_out"), c0, cfg.out_channels, 3, 1, 1)?,
        })
    }

    /// The temporal part, on latents and quantized codes stacked along the batch (as the reference does, so the
    /// batch norms see the same tensors). x: [2B, latent, T, h, w] → [2B, latent, T * temporal_factor, h, w].
    pub fn temporal(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for block in &self.time_res {
            h = block.forward(&h);
        }
        for conv in &self.time_conv {
            // F.interpolate(scale_factor=2, mode="nearest") along time: every frame twice.
            h = conv.forward(&h.repeat_interleave_self_int(2, 2, None)).silu();
        }
        h
    }

    /// The per-frame 2D part. x: [N, latent, h, w], zq: [N, embed_dim, h, w] → [N, out_channels, h·f, w·f].
    pub fn frames(&self, x: &Tensor, zq: &Tensor) -> Tensor {
        let mut h = self.mid.forward(&self.conv_in.forward(x), Some(zq));
        for level in self.levels.iter().rev() {
            for (j, block) in level.blocks.iter().enumerate() {
                h = block.forward(&h, Some(zq));
                if let Some(attn) = level.attns.get(j) {
                    h = attn.forward(&h, Some(zq));
                }
            }
            if let Some(u) = &level.upsample {
                h = u.forward(&h);
            }
        }
        self.conv_out.forward(&self.norm_out.forward(&h, Some(zq)).silu())
    }
}

//! The encoder of the vision tokenizer (`Emu3VQVAEEncoder`): a 2D convolutional pyramid applied to every frame
//! (conv_in, per level residual blocks with optional attention and a stride-2 downsample, the middle block, norm,
//! SiLU, conv_out to the latent channels), then a temporal stage over the frames (stride-2 causal 3D convolutions,
//! each followed by SiLU, and temporal residual blocks).
use tch::Tensor;

use super::blocks::{AttnBlock, CausalConv3d, Conv2d, Downsample, GroupNorm, ResnetBlock, TemporalResnetBlock};
use super::names::Names;
use super::VqConfig;
use crate::error::Result;
use crate::weights::TensorSource;

/// One resolution level: `num_res_blocks` residual blocks, each followed by attention where configured.
#[derive(Debug)]
struct Level {
    blocks: Vec<ResnetBlock>,
    attns: Vec<AttnBlock>,
    downsample: Option<Downsample>,
}

/// Residual block, attention, residual block at the innermost resolution (encoder and decoder).
#[derive(Debug)]
pub struct MiddleBlock {
    block_1: ResnetBlock,
    attn: AttnBlock,
    block_2: ResnetBlock,
}

impl MiddleBlock {
    /// `part` is `encoder` or `decoder`; `zq` is `Some(embed_dim)` in the decoder.
    pub fn load(src: &dyn TensorSource, n: &Names, part: &str, cfg: &VqConfig, zq: Option<i64>) -> Result<Self> {
        let c = cfg.inner_channels();
        let mid = n.middle(part);
        let (attn, norm) = n.middle_attention(&mid);
        Ok(MiddleBlock {
            block_1: ResnetBlock::load(src, &format!("{mid}.block_1"), c, c, zq)?,
            attn: AttnBlock::load(src, &attn, &norm, c, cfg.num_attention_heads, zq, n.attn_names())?,
            block_2: ResnetBlock::load(src, &format!("{mid}.block_2"), c, c, zq)?,
        })
    }

    pub fn forward(&self, x: &Tensor, zq: Option<&Tensor>) -> Tensor {
        let h = self.block_1.forward(x, zq);
        let h = self.attn.forward(&h, zq);
        self.block_2.forward(&h, zq)
    }
}

#[derive(Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    levels: Vec<Level>,
    mid: MiddleBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    time_conv: Vec<CausalConv3d>,
    time_res: Vec<TemporalResnetBlock>,
}

impl Encoder {
    pub fn load(src: &dyn TensorSource, n: &Names, cfg: &VqConfig) -> Result<Self> {
        let p = n.root("encoder");
        let conv_in = Conv2d::load(src, &format!("{p}.conv_in"), cfg.in_channels, cfg.base_channels, 3, 1, 1)?;
        let num_levels = cfg.channel_multiplier.len();
        let mut levels = Vec::with_capacity(num_levels);
        let mut cin = cfg.base_channels;
        for i in 0..num_levels {
            let lp = n.level("encoder", i);
            let cout = cfg.level_channels(i);
            let (mut blocks, mut attns) = (Vec::new(), Vec::new());
            for j in 0..cfg.num_res_blocks as usize {
                blocks.push(ResnetBlock::load(src, &format!("{lp}.block.{j}"), cin, cout, None)?);
                cin = cout;
                if cfg.has_attention(i) {
                    let (attn, norm) = n.level_attention(&lp, j);
                    attns.push(AttnBlock::load(
                        src,
                        &attn,
                        &norm,
                        cout,
                        cfg.num_attention_heads,
                        None,
                        n.attn_names(),
                    )?);
                }
            }
            let downsample =
                if i + 1 < num_levels { Some(Downsample::load(src, &format!("{lp}.downsample"), cout)?) } else { None };
            levels.push(Level { blocks, attns, downsample });
        }
        let inner = cfg.inner_channels();
        let z = cfg.latent_channels;
        let time_conv = (0..cfg.temporal_blocks())
            .map(|i| CausalConv3d::load(src, &format!("{p}.time_conv.{i}.conv.conv"), z, z, [4, 3, 3], [2, 1, 1]))
            .collect::<Result<_>>()?;
        let time_res = (0..cfg.num_res_blocks)
            .map(|i| TemporalResnetBlock::load(src, &format!("{p}.time_res_stack.{i}"), z))
            .collect::<Result<_>>()?;
        Ok(Encoder {
            conv_in,
            levels,
            mid: MiddleBlock::load(src, n, "encoder", cfg, None)?,
            norm_out: GroupNorm::load(src, &format!("{p}.norm_out"), inner)?,
            conv_out: Conv2d::load(src, &format!("{p}.conv_out"), inner, z, 3, 1, 1)?,
            time_conv,
            time_res,
        })
    }

    /// The per-frame 2D part. x: [N, 3, H, W] → [N, latent, H/f, W/f].
    pub fn frames(&self, x: &Tensor) -> Tensor {
        let mut h = self.conv_in.forward(x);
        for level in &self.levels {
            for (j, block) in level.blocks.iter().enumerate() {
                h = block.forward(&h, None);
                if let Some(attn) = level.attns.get(j) {
                    h = attn.forward(&h, None);
                }
            }
            if let Some(d) = &level.downsample {
                h = d.forward(&h);
            }
        }
        let h = self.mid.forward(&h, None);
        self.conv_out.forward(&self.norm_out.forward(&h).silu())
    }

    /// The temporal part. x: [B, latent, T, h, w] → [B, latent, T / temporal_factor, h, w].
    pub fn temporal(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for conv in &self.time_conv {
            h = conv.forward(&h).silu();
        }
        for block in &self.time_res {
            h = block.forward(&h);
        }
        h
    }
}

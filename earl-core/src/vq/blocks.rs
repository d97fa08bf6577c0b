//! Building blocks of the Emu3 vision tokenizer, each reproducing the numerics of its transformers 5.17.0
//! `Emu3VQVAE*` counterpart: 2D convolutions (with the encoder's asymmetric stride-2 padding and the decoder's nearest
//! ×2 upsampling), causal 3D convolutions (two frames of zero padding in front, none behind), GroupNorm(32), the
//! decoder's spatially conditioned norm, eval-mode BatchNorm3d, residual blocks and single-resolution attention.
//! Loaders take the full tensor names from their caller, which knows the checkpoint layout.
use tch::Tensor;

use crate::error::Result;
use crate::weights::TensorSource;

/// `F.conv2d`/`F.conv3d` (dilation 1, one group) through `aten::_convolution`, the only entry point that takes
/// cuDNN's TF32 switch per call: f32 stays f32 on a GPU unless [`crate::device::allow_tf32`] says otherwise.
/// Benchmark mode stays off (libtorch's default), so the algorithm choice does not depend on timing.
fn convolution(x: &Tensor, weight: &Tensor, bias: &Tensor, stride: &[i64], padding: &[i64]) -> Tensor {
    let ones = vec![1; stride.len()];
    let zeros = vec![0; stride.len()];
    let cudnn = tch::Cuda::user_enabled_cudnn();
    x.internal_convolution(
        weight,
        Some(bias),
        stride,
        padding,
        ones,
        false,
        zeros,
        1,
        false,
        false,
        cudnn,
        crate::device::allow_tf32(),
    )
}

/// `nn.Conv2d` with square kernel, stride and symmetric padding.
#[derive(Debug)]
pub struct Conv2d {
    weight: Tensor, // [out, in, k, k]
    bias: Tensor,   // [out]
    stride: i64,
    padding: i64,
}

impl Conv2d {
    pub fn load(
        src: &dyn TensorSource,
        name: &str,
        cin: i64,
        cout: i64,
        k: i64,
        stride: i64,
        pad: i64,
    ) -> Result<Self> {
        Ok(Conv2d {
            weight: src.tensor(&format!("{name}.weight"), &[cout, cin, k, k])?,
            bias: src.tensor(&format!("{name}.bias"), &[cout])?,
            stride,
            padding: pad,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        convolution(x, &self.weight, &self.bias, &[self.stride; 2], &[self.padding; 2])
    }
}

/// `Emu3VQVAEConv3d`: zero padding of two frames in front (causal in time) and `k - s` split front-heavy in space,
/// then a valid `nn.Conv3d`.
#[derive(Debug)]
pub struct CausalConv3d {
    weight: Tensor, // [out, in, kt, kh, kw]
    bias: Tensor,
    stride: [i64; 3],
    /// F.pad order: (w_left, w_right, h_left, h_right, t_front, t_back)
    pad: [i64; 6],
}

impl CausalConv3d {
    pub fn load(
        src: &dyn TensorSource,
        name: &str,
        cin: i64,
        cout: i64,
        k: [i64; 3],
        stride: [i64; 3],
    ) -> Result<Self> {
        let split = |p: i64| [p / 2 + p % 2, p / 2];
        let (h, w) = (split(k[1] - stride[1]), split(k[2] - stride[2]));
        Ok(CausalConv3d {
            weight: src.tensor(&format!("{name}.weight"), &[cout, cin, k[0], k[1], k[2]])?,
            bias: src.tensor(&format!("{name}.bias"), &[cout])?,
            stride,
            pad: [w[0], w[1], h[0], h[1], 2, 0],
        })
    }

    /// x: [B, C, T, H, W]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        convolution(&x.constant_pad_nd(self.pad), &self.weight, &self.bias, &self.stride, &[0, 0, 0])
    }
}

/// `nn.GroupNorm(32, C, eps=1e-6)`.
#[derive(Debug)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
}

impl GroupNorm {
    pub fn load(src: &dyn TensorSource, name: &str, c: i64) -> Result<Self> {
        Ok(GroupNorm {
            weight: src.tensor(&format!("{name}.weight"), &[c])?,
            bias: src.tensor(&format!("{name}.bias"), &[c])?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.group_norm(32, Some(&self.weight), Some(&self.bias), 1e-6, true)
    }
}

/// `Emu3VQVAESpatialNorm`: GroupNorm, then a per-pixel scale and shift predicted (1×1 convs) from the quantized
/// latents upsampled (nearest) to the feature map's size — how the decoder conditions every norm on the codes.
#[derive(Debug)]
pub struct SpatialNorm {
    norm: GroupNorm,
    conv_y: Conv2d,
    conv_b: Conv2d,
}

/// A norm of the encoder (plain GroupNorm) or the decoder (spatially conditioned).
#[derive(Debug)]
pub enum Norm {
    Group(GroupNorm),
    Spatial(SpatialNorm),
}

impl Norm {
    /// `zq_channels` is `Some(embed_dim)` in the decoder. Names: `{name}.weight/bias` for a GroupNorm;
    /// `{name}.norm_layer.*`, `{name}.conv_y.*`, `{name}.conv_b.*` for a spatial norm (the same in both layouts).
    pub fn load(src: &dyn TensorSource, name: &str, c: i64, zq_channels: Option<i64>) -> Result<Self> {
        Ok(match zq_channels {
            None => Norm::Group(GroupNorm::load(src, name, c)?),
            Some(zq) => Norm::Spatial(SpatialNorm {
                norm: GroupNorm::load(src, &format!("{name}.norm_layer"), c)?,
                conv_y: Conv2d::load(src, &format!("{name}.conv_y"), zq, c, 1, 1, 0)?,
                conv_b: Conv2d::load(src, &format!("{name}.conv_b"), zq, c, 1, 1, 0)?,
            }),
        })
    }

    /// x: [N, C, H, W]; zq: [N, embed_dim, h, w] (decoder only).
    pub fn forward(&self, x: &Tensor, zq: Option<&Tensor>) -> Tensor {
        match (self, zq) {
            (Norm::Group(n), _) => n.forward(x),
            (Norm::Spatial(s), Some(zq)) => {
                let size = &x.size()[2..];
                let zq = zq.upsample_nearest2d(size, None, None);
                s.norm.forward(x) * s.conv_y.forward(&zq) + s.conv_b.forward(&zq)
            }
            (Norm::Spatial(_), None) => unreachable!("decoder norms always receive the quantized latents"),
        }
    }
}

/// `nn.BatchNorm3d` in eval mode (running statistics, eps 1e-5): the tokenizer is frozen.
#[derive(Debug)]
pub struct BatchNorm3d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNorm3d {
    pub fn load(src: &dyn TensorSource, name: &str, c: i64) -> Result<Self> {
        let t = |s: &str| src.tensor(&format!("{name}.{s}"), &[c]);
        Ok(BatchNorm3d {
            weight: t("weight")?,
            bias: t("bias")?,
            running_mean: t("running_mean")?,
            running_var: t("running_var")?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (w, b, m, v) = (&self.weight, &self.bias, &self.running_mean, &self.running_var);
        x.batch_norm(Some(w), Some(b), Some(m), Some(v), false, 0.1, 1e-5, true)
    }
}

/// `Emu3VQVAEResnetBlock`: two (norm → SiLU → 3×3 conv) stages plus the shortcut (a 1×1 conv when the channel count
/// changes).
#[derive(Debug)]
pub struct ResnetBlock {
    norm1: Norm,
    conv1: Conv2d,
    norm2: Norm,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn load(src: &dyn TensorSource, name: &str, cin: i64, cout: i64, zq: Option<i64>) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: Norm::load(src, &format!("{name}.norm1"), cin, zq)?,
            conv1: Conv2d::load(src, &format!("{name}.conv1"), cin, cout, 3, 1, 1)?,
            norm2: Norm::load(src, &format!("{name}.norm2"), cout, zq)?,
            conv2: Conv2d::load(src, &format!("{name}.conv2"), cout, cout, 3, 1, 1)?,
            nin_shortcut: if cin != cout {
                Some(Conv2d::load(src, &format!("{name}.nin_shortcut"), cin, cout, 1, 1, 0)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: &Tensor, zq: Option<&Tensor>) -> Tensor {
        let h = self.conv1.forward(&self.norm1.forward(x, zq).silu());
        let h = self.conv2.forward(&self.norm2.forward(&h, zq).silu());
        match &self.nin_shortcut {
            Some(s) => s.forward(x) + h,
            None => x + h,
        }
    }
}

/// `Emu3VQVAETemporalResnetBlock`: the residual block of the temporal stacks, with eval-mode batch norms and causal
/// 3×3×3 convolutions (input and output channels are always equal in Emu3).
#[derive(Debug)]
pub struct TemporalResnetBlock {
    norm1: BatchNorm3d,
    conv1: CausalConv3d,
    norm2: BatchNorm3d,
    conv2: CausalConv3d,
}

impl TemporalResnetBlock {
    /// Names: `{name}.norm1.*`, `{name}.conv1.conv.*`, … (both layouts).
    pub fn load(src: &dyn TensorSource, name: &str, c: i64) -> Result<Self> {
        Ok(TemporalResnetBlock {
            norm1: BatchNorm3d::load(src, &format!("{name}.norm1"), c)?,
            conv1: CausalConv3d::load(src, &format!("{name}.conv1.conv"), c, c, [3, 3, 3], [1, 1, 1])?,
            norm2: BatchNorm3d::load(src, &format!("{name}.norm2"), c)?,
            conv2: CausalConv3d::load(src, &format!("{name}.conv2.conv"), c, c, [3, 3, 3], [1, 1, 1])?,
        })
    }

    /// x: [B, C, T, H, W]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.conv1.forward(&self.norm1.forward(x).silu());
        let h = self.conv2.forward(&self.norm2.forward(&h).silu());
        x + h
    }
}

/// Which names an attention block's projections have: transformers' `q_proj/k_proj/v_proj/out_proj` linears, or
/// the original `q/k/v/proj_out` 1×1 convolutions (same numbers, weight shape [C, C, 1, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttnNames {
    Linear,
    Conv1x1,
}

/// Norm then multi-head self-attention over all H·W positions of one frame, added to the input
/// (`Emu3VQVAEAttentionBlock` with its preceding `attn_norm`; the original block is the single-head case).
#[derive(Debug)]
pub struct AttnBlock {
    norm: Norm,
    qkv: Tensor,      // [3C, C]: q, k, v stacked — one matmul instead of three
    qkv_bias: Tensor, // [3C]
    out: Tensor,      // [C, C]
    out_bias: Tensor,
    heads: i64,
}

impl AttnBlock {
    /// `attn` names the projections' module, `norm` the preceding norm.
    pub fn load(
        src: &dyn TensorSource,
        attn: &str,
        norm: &str,
        c: i64,
        heads: i64,
        zq: Option<i64>,
        names: AttnNames,
    ) -> Result<Self> {
        let (parts, shape): ([&str; 4], Vec<i64>) = match names {
            AttnNames::Linear => (["q_proj", "k_proj", "v_proj", "out_proj"], vec![c, c]),
            AttnNames::Conv1x1 => (["q", "k", "v", "proj_out"], vec![c, c, 1, 1]),
        };
        let w = |p: &str| -> Result<Tensor> { Ok(src.tensor(&format!("{attn}.{p}.weight"), &shape)?.reshape([c, c])) };
        let b = |p: &str| src.tensor(&format!("{attn}.{p}.bias"), &[c]);
        Ok(AttnBlock {
            norm: Norm::load(src, norm, c, zq)?,
            qkv: Tensor::cat(&[w(parts[0])?, w(parts[1])?, w(parts[2])?], 0),
            qkv_bias: Tensor::cat(&[b(parts[0])?, b(parts[1])?, b(parts[2])?], 0),
            out: w(parts[3])?,
            out_bias: b(parts[3])?,
            heads,
        })
    }

    /// x: [N, C, H, W]
    pub fn forward(&self, x: &Tensor, zq: Option<&Tensor>) -> Tensor {
        let (n, c, h, w) = x.size4().expect("attention input is 4-D");
        let d = c / self.heads;
        let t = self.norm.forward(x, zq).view([n, c, h * w]).transpose(1, 2); // [N, HW, C]
        let qkv = t.linear(&self.qkv, Some(&self.qkv_bias)).view([n, h * w, 3, self.heads, d]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2)); // [N, heads, HW, d]
        let scale = (d as f64).powf(-0.5);
        let a = Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, 0.0, false, scale, false);
        let a = a.transpose(1, 2).reshape([n, h * w, c]).linear(&self.out, Some(&self.out_bias)); // [N, HW, C]
        x + a.view([n, h, w, c]).permute([0, 3, 1, 2])
    }
}

/// `Emu3VQVAEEncoderConvDownsample`: zero-pad one pixel right and bottom, then a 3×3 stride-2 convolution.
#[derive(Debug)]
pub struct Downsample(Conv2d);

impl Downsample {
    pub fn load(src: &dyn TensorSource, name: &str, c: i64) -> Result<Self> {
        Ok(Downsample(Conv2d::load(src, &format!("{name}.conv"), c, c, 3, 2, 0)?))
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.0.forward(&x.constant_pad_nd([0, 1, 0, 1]))
    }
}

/// `Emu3VQVAEEncoderConvUpsample`: nearest ×2, then a 3×3 convolution.
#[derive(Debug)]
pub struct Upsample(Conv2d);

impl Upsample {
    pub fn load(src: &dyn TensorSource, name: &str, c: i64) -> Result<Self> {
        Ok(Upsample(Conv2d::load(src, &format!("{name}.conv"), c, c, 3, 1, 1)?))
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        self.0.forward(&x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None))
    }
}

//! The Emu3 vision tokenizer: a VQ autoencoder that turns an image into a grid of codebook indices (spatial factor
//! 8, codebook 32768 for the released model) and back. It reproduces transformers 5.17.0 `Emu3VQVAE` (identical to
//! BAAI's `Emu3VisionVQModel`): a still image is repeated `temporal_downsample_factor` times along time before
//! encoding, and decoding keeps the first of the frames it produces. Two exact shortcuts make it cheaper than the
//! reference without changing a number: the per-frame 2D encoder runs once per image (its repeated frames are
//! identical), and the 2D decoder runs only on the first frame (the one that is kept; frames are independent there).
//! [`Emu3VqModel::encode_video_frames`] runs the reference's full path, so tests can check both agree.
mod blocks;
pub mod config;
mod decoder;
mod encoder;
mod names;
mod quantizer;
pub mod train;

use std::path::Path;

use tch::{Device, Kind, Tensor};

pub use config::{is_vq_checkpoint, RawVqConfig, VqConfig, VqLayout};
use decoder::Decoder;
use encoder::Encoder;
use names::Names;
pub(crate) use quantizer::Quantizer;

use crate::error::{guard, Error, Result};
use crate::weights::{RandomSource, SafetensorsStore, TensorSource};

/// The vision tokenizer. Immutable after loading.
#[derive(Debug)]
pub struct Emu3VqModel {
    /// The configuration the weights were loaded for; the tensor shapes follow it.
    pub cfg: VqConfig,
    encoder: Encoder,
    decoder: Decoder,
    quantize: Quantizer,
    quant_conv: blocks::CausalConv3d,
    post_quant_conv: blocks::CausalConv3d,
    kind: Kind,
    device: Device,
}

/// Name prefixes under which a saved `Emu3ForConditionalGeneration` keeps its VQ model.
const MULTIMODAL_PREFIXES: [&str; 2] = ["vqmodel.", "model.vqmodel."];

impl Emu3VqModel {
    /// Reads `dir/config.json` (either layout) and the safetensors weights of `dir`, as `kind` on `device`.
    pub fn from_dir(dir: &Path, kind: Kind, device: Device) -> Result<Self> {
        let cfg = VqConfig::from_dir(dir)?;
        let store = SafetensorsStore::open(dir, kind, device)?;
        tracing::info!(dir = %dir.display(), layout = ?cfg.layout, ?kind, ?device, "loading Emu3 vision tokenizer");
        Self::load(&store, cfg)
    }

    /// Builds the model from any tensor source; `cfg.layout` decides the tensor names.
    pub fn load(src: &dyn TensorSource, cfg: VqConfig) -> Result<Self> {
        cfg.validate().map_err(|msg| Error::input(format!("invalid VQ config: {msg}")))?;
        let prefix = match cfg.layout {
            VqLayout::TransformersMultimodal => MULTIMODAL_PREFIXES
                .into_iter()
                .find(|p| src.contains(&format!("{p}quantize.embedding.weight")))
                .unwrap_or(MULTIMODAL_PREFIXES[0]),
            _ => "",
        };
        let n = Names::new(cfg.layout, prefix);
        let _span = tracing::info_span!("vq_load").entered();
        let (z, e) = (cfg.latent_channels, cfg.embed_dim);
        Ok(Emu3VqModel {
            encoder: Encoder::load(src, &n, &cfg)?,
            decoder: Decoder::load(src, &n, &cfg)?,
            quantize: Quantizer::load(src, &format!("{}.embedding.weight", n.root("quantize")), cfg.codebook_size, e)?,
            quant_conv: blocks::CausalConv3d::load(
                src,
                &format!("{}.conv", n.root("quant_conv")),
                z,
                e,
                [3, 1, 1],
                [1; 3],
            )?,
            post_quant_conv: blocks::CausalConv3d::load(
                src,
                &format!("{}.conv", n.root("post_quant_conv")),
                e,
                z,
                [3, 1, 1],
                [1; 3],
            )?,
            kind: src.kind(),
            device: src.device(),
            cfg,
        })
    }

    /// The dtype the weights were loaded in.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Checks `images` [B, C, H, W]: any size of at least one code. Like the reference, sides that are not multiples
    /// of the spatial factor are fine: the stride-2 convolutions floor them (`⌊H/f⌋ × ⌊W/f⌋` codes).
    fn check_images(&self, images: &Tensor) -> Result<(i64, i64, i64)> {
        let s = images.size();
        let f = self.cfg.spatial_factor();
        match s[..] {
            [b, c, h, w] if b > 0 && c == self.cfg.in_channels && h >= f && w >= f => Ok((b, h, w)),
            [_, c, h, w] if c == self.cfg.in_channels => {
                Err(Error::input(format!("image size {h}×{w} is smaller than one code of the spatial factor {f}")))
            }
            _ => Err(Error::input(format!("images must be [B, {}, H, W], got {s:?}", self.cfg.in_channels))),
        }
    }

    /// Encodes images [B, 3, H, W] (normalised pixels, any float dtype, any device) to codes [B, ⌊H/f⌋, ⌊W/f⌋]
    /// (i64, on the model's device).
    pub fn encode(&self, images: &Tensor) -> Result<Tensor> {
        let (b, h, w) = self.check_images(images)?;
        let _span = tracing::debug_span!("vq_encode", b, h, w).entered();
        guard("VQ encode", || {
            let t = self.cfg.temporal_downsample_factor;
            let x = images.f_to_device(self.device)?.f_to_kind(self.kind)?;
            let frame = self.encoder.frames(&x); // [B, z, h, w]: identical for the T repeated frames
            let video = frame.unsqueeze(2).expand([-1, -1, t, -1, -1], false).contiguous(); // [B, z, T, h, w]
            Ok(self.quantize_latents(&self.encoder.temporal(&video)))
        })
    }

    /// The quantizer's continuous input [B, e, 1, h, w] for images [B, 3, H, W] already in the model's dtype and
    /// device (the path of [`Emu3VqModel::encode`] before the nearest-code search; training differentiates it).
    pub(crate) fn continuous_latents(&self, images: &Tensor) -> Result<Tensor> {
        self.check_images(images)?;
        let t = self.cfg.temporal_downsample_factor;
        let frame = self.encoder.frames(images);
        let video = frame.unsqueeze(2).expand([-1, -1, t, -1, -1], false).contiguous();
        Ok(self.quant_conv.forward(&self.encoder.temporal(&video)))
    }

    /// The codebook layer (training reads codes and embeddings from it).
    pub(crate) fn quantizer(&self) -> &Quantizer {
        &self.quantize
    }

    /// The reference's literal path for a still image — every repeated frame through the 2D encoder — kept for
    /// tests of the shortcut in [`Emu3VqModel::encode`].
    pub fn encode_video_frames(&self, images: &Tensor) -> Result<Tensor> {
        let (b, _, _) = self.check_images(images)?;
        guard("VQ encode (all frames)", || {
            let t = self.cfg.temporal_downsample_factor;
            let x = images.f_to_device(self.device)?.f_to_kind(self.kind)?;
            let s = x.size();
            let frames = x.unsqueeze(1).expand([-1, t, -1, -1, -1], false).reshape([b * t, s[1], s[2], s[3]]);
            let z = self.encoder.frames(&frames); // [B·T, z, h, w]
            let zs = z.size();
            let video = z.view([b, t, zs[1], zs[2], zs[3]]).permute([0, 2, 1, 3, 4]); // [B, z, T, h, w]
            Ok(self.quantize_latents(&self.encoder.temporal(&video)))
        })
    }

    /// Latents after the temporal stage [B, z, 1, h, w] → codes [B, h, w].
    fn quantize_latents(&self, latents: &Tensor) -> Tensor {
        let q = self.quant_conv.forward(latents); // [B, e, 1, h, w]
        let (b, e, _, h, w) = q.size5().expect("5-D latents");
        let flat = q.permute([0, 2, 3, 4, 1]).reshape([-1, e]); // [B·h·w, e]
        self.quantize.codes(&flat).view([b, h, w])
    }

    /// Decodes codes [B, h, w] (integers in `[0, codebook_size)`) to images [B, 3, h·f, w·f] in the model's dtype
    /// (normalised pixels; see `crate::image::to_rgb8` for 8-bit output).
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let s = codes.size();
        let [b, h, w] = s[..] else {
            return Err(Error::input(format!("codes must be [B, h, w], got {s:?}")));
        };
        if b == 0 || h == 0 || w == 0 {
            return Err(Error::input(format!("codes grid {s:?} is empty")));
        }
        if !matches!(codes.kind(), Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8) {
            return Err(Error::input(format!("codes must be integers, got {:?}", codes.kind())));
        }
        let _span = tracing::debug_span!("vq_decode", b, h, w).entered();
        guard("VQ decode", || {
            let codes = codes.f_to_device(self.device)?.f_to_kind(Kind::Int64)?;
            let (lo, hi) = (codes.min().int64_value(&[]), codes.max().int64_value(&[]));
            if lo < 0 || hi >= self.cfg.codebook_size {
                let bad = if lo < 0 { lo } else { hi };
                return Err(Error::input(format!(
                    "code {bad} is outside the codebook (valid: 0..{})",
                    self.cfg.codebook_size - 1
                )));
            }
            let quant = self.quantize.lookup(&codes).permute([0, 3, 1, 2]).unsqueeze(2); // [B, e, 1, h, w]
            Ok(self.decode_quantized(&quant))
        })
    }

    /// Quantized latents [B, e, 1, h, w] → images [B, 3, h·f, w·f] (the part of [`Emu3VqModel::decode`] after the
    /// codebook lookup; training feeds it the straight-through latents).
    pub(crate) fn decode_quantized(&self, quant: &Tensor) -> Tensor {
        let b = quant.size()[0];
        let post = self.post_quant_conv.forward(quant); // [B, z, 1, h, w]
        let both = self.decoder.temporal(&Tensor::cat(&[&post, quant], 0)); // [2B, z, T, h, w]
                                                                            // Only the first frame is returned for a still image; the 2D decoder treats frames independently.
        let first = both.select(2, 0); // [2B, z, h, w]
        let (hidden, zq) = (first.narrow(0, 0, b), first.narrow(0, b, b));
        self.decoder.frames(&hidden, &zq)
    }
}

/// Deterministic random weights under the VQ tensor names (speed benchmarks of the real-shaped tokenizer without
/// its checkpoint, created directly on the device): convolution and projection weights N(0, 1/fan_in), biases
/// small, norm scales around 1, batch-norm running variances in [0.5, 1.5], codebook N(0, 1). Every name exists.
pub struct VqRandomSource {
    inner: RandomSource,
}

impl VqRandomSource {
    /// Weights drawn from `seed`, created in `kind` on `device`.
    pub fn new(seed: u64, kind: Kind, device: Device) -> Self {
        VqRandomSource { inner: RandomSource { seed, std: 1.0, kind, device } }
    }
}

impl TensorSource for VqRandomSource {
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        // The suffix keeps RandomSource's own "norm.weight" rule out of the way: we get plain N(0, 1) draws.
        let r = self.inner.tensor(&format!("{name}#vq"), shape)?;
        guard(&format!("creating random `{name}`"), || {
            let fan_in: i64 = shape.iter().skip(1).product();
            Ok(if name.ends_with("running_var") {
                r.abs() * 0.5 + 0.5
            } else if name.ends_with("running_mean") || name.ends_with(".bias") {
                r * 0.05
            } else if shape.len() == 1 {
                r * 0.1 + 1.0 // norm scales
            } else if name.ends_with("embedding.weight") {
                r
            } else {
                r / (fan_in as f64).sqrt()
            })
        })
    }
    fn contains(&self, _name: &str) -> bool {
        true
    }
    fn kind(&self) -> Kind {
        self.inner.kind
    }
    fn device(&self) -> Device {
        self.inner.device
    }
}

#[cfg(test)]
mod tests;

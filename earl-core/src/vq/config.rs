//! Vision-tokenizer configuration, in two levels: [`RawVqConfig`] mirrors `config.json` in every dialect users have —
//! transformers' `Emu3VQVAEConfig` (`"model_type": "emu3_vqgan"`: `base_channels`, `channel_multiplier`,
//! `latent_channels`, …), the VQ part of a full transformers `Emu3ForConditionalGeneration` (`"model_type": "emu3"`
//! with `vq_config`) and the original BAAI/Emu3-VisionTokenizer remote-code config (`"model_type": "Emu3VisionVQ"`:
//! `ch`, `ch_mult`, `z_channels`, …) — and converts into the validated [`VqConfig`], which has no `Option`s.
//! Defaults follow transformers 5.17.0 `Emu3VQVAEConfig`, which is the released Emu3 tokenizer.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Which checkpoint layout a config belongs to; it decides the tensor names the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VqLayout {
    /// transformers `Emu3VQVAE` saved on its own (`encoder.down_block.down.{i}…`, linear attention projections).
    Transformers,
    /// The VQ inside a saved transformers `Emu3ForConditionalGeneration` (same names under `vqmodel.`).
    TransformersMultimodal,
    /// BAAI `Emu3VisionVQModel` (`encoder.down.{i}…`, `mid.*`, attention q/k/v/proj_out as 1×1 convolutions).
    Original,
    /// Built in code (presets, benchmarks with random weights: transformers names).
    Preset,
}

/// The validated configuration every VQ module is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct VqConfig {
    /// Number of codebook vectors; visual codes are `0..codebook_size`.
    pub codebook_size: i64,
    /// Dimension of a codebook vector (= `latent_channels`: the decoder concatenates both along the batch).
    pub embed_dim: i64,
    /// Channels of the encoder output / decoder input latent (`z_channels` in the original dialect).
    pub latent_channels: i64,
    /// Image channels the encoder reads (3, RGB).
    pub in_channels: i64,
    /// Image channels the decoder writes (3, RGB).
    pub out_channels: i64,
    /// Frames per latent step; a still image is repeated this many times before encoding.
    pub temporal_downsample_factor: i64,
    /// Channels of the first resolution level (`ch` in the original dialect); levels are multiples of it.
    pub base_channels: i64,
    /// Channel multiplier per resolution level; `len - 1` stride-2 downsamplings give the spatial factor.
    pub channel_multiplier: Vec<i64>,
    /// Residual blocks per resolution level (the decoder has one more per level, as the reference).
    pub num_res_blocks: i64,
    /// Level indices (not pixel resolutions, despite the name) whose blocks are followed by attention.
    pub attn_resolutions: Vec<i64>,
    /// Heads of every attention block; 1 in the original dialect.
    pub num_attention_heads: i64,
    /// Checkpoint layout, which decides the tensor names the loader reads.
    pub layout: VqLayout,
}

/// Serde mirror of `config.json`; unknown fields are ignored, everything is optional here and checked in
/// [`RawVqConfig::into_config`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawVqConfig {
    /// `"emu3_vqgan"`, `"Emu3VisionVQ"` or `"emu3"`; selects the dialect.
    pub model_type: Option<String>,
    /// The vision-tokenizer part of a multimodal (`"emu3"`) config.
    pub vq_config: Option<Box<RawVqConfig>>,
    /// See [`VqConfig::codebook_size`].
    pub codebook_size: Option<i64>,
    /// See [`VqConfig::embed_dim`].
    pub embed_dim: Option<i64>,
    // transformers names
    /// See [`VqConfig::latent_channels`].
    pub latent_channels: Option<i64>,
    /// Must not be `true` (Emu3 uses single latents).
    pub double_latent: Option<bool>,
    /// See [`VqConfig::base_channels`].
    pub base_channels: Option<i64>,
    /// See [`VqConfig::channel_multiplier`].
    pub channel_multiplier: Option<Vec<i64>>,
    /// Attention width in transformers; must equal the channels of every attention block.
    pub hidden_size: Option<i64>,
    /// See [`VqConfig::num_attention_heads`].
    pub num_attention_heads: Option<i64>,
    // original BAAI names
    /// Original name of [`VqConfig::latent_channels`].
    pub z_channels: Option<i64>,
    /// Original name of `double_latent`; must not be `true`.
    pub double_z: Option<bool>,
    /// Original name of [`VqConfig::base_channels`].
    pub ch: Option<i64>,
    /// Original name of [`VqConfig::channel_multiplier`].
    pub ch_mult: Option<Vec<i64>>,
    // shared
    /// See [`VqConfig::in_channels`].
    pub in_channels: Option<i64>,
    /// See [`VqConfig::out_channels`].
    pub out_channels: Option<i64>,
    /// See [`VqConfig::temporal_downsample_factor`].
    pub temporal_downsample_factor: Option<i64>,
    /// See [`VqConfig::num_res_blocks`].
    pub num_res_blocks: Option<i64>,
    /// See [`VqConfig::attn_resolutions`].
    pub attn_resolutions: Option<Vec<i64>>,
}

/// `model_type`s of vision-tokenizer configs.
const VQ_MODEL_TYPES: [&str; 2] = ["emu3_vqgan", "Emu3VisionVQ"];

impl RawVqConfig {
    /// Parses `config.json`; syntax and type errors name the file, line and column.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        })
    }

    /// Whether this config describes a stand-alone vision tokenizer (as opposed to a language model).
    pub fn is_vq(&self) -> bool {
        self.model_type.as_deref().is_some_and(|t| VQ_MODEL_TYPES.contains(&t))
    }

    /// Validates and converts; `path` is only used in error messages.
    pub fn into_config(self, path: &Path) -> Result<VqConfig> {
        let bad = |msg: String| Error::Config { path: path.to_path_buf(), msg };
        let (raw, layout) = match self.model_type.as_deref() {
            Some("emu3_vqgan") => (self, VqLayout::Transformers),
            Some("Emu3VisionVQ") => (self, VqLayout::Original),
            Some("emu3") => {
                let vq = self.vq_config.ok_or_else(|| bad("model_type \"emu3\" without a vq_config".into()))?;
                (*vq, VqLayout::TransformersMultimodal)
            }
            Some(other) => return Err(bad(format!("model_type {other:?} is not an Emu3 vision tokenizer"))),
            None => return Err(bad("missing model_type".into())),
        };
        let d = VqConfig::emu3();
        let original = layout == VqLayout::Original;
        // Each dialect has its own names; a field of the other dialect is a sign of a mixed-up config.
        let (base, mult, latent, double) = if original {
            (raw.ch, raw.ch_mult.clone(), raw.z_channels, raw.double_z)
        } else {
            (raw.base_channels, raw.channel_multiplier.clone(), raw.latent_channels, raw.double_latent)
        };
        if double == Some(true) {
            return Err(bad("double latent channels (double_z / double_latent) are not supported: Emu3 uses \
                            single latents, and transformers' Emu3VQVAE cannot run them either"
                .into()));
        }
        let base_channels = base.unwrap_or(d.base_channels);
        let channel_multiplier = mult.unwrap_or_else(|| d.channel_multiplier.clone());
        let num_attention_heads = if original { 1 } else { raw.num_attention_heads.unwrap_or(d.num_attention_heads) };
        let cfg = VqConfig {
            codebook_size: raw.codebook_size.unwrap_or(d.codebook_size),
            embed_dim: raw.embed_dim.unwrap_or(d.embed_dim),
            latent_channels: latent.unwrap_or(d.latent_channels),
            in_channels: raw.in_channels.unwrap_or(d.in_channels),
            out_channels: raw.out_channels.unwrap_or(d.out_channels),
            temporal_downsample_factor: raw.temporal_downsample_factor.unwrap_or(d.temporal_downsample_factor),
            base_channels,
            channel_multiplier,
            num_res_blocks: raw.num_res_blocks.unwrap_or(d.num_res_blocks),
            attn_resolutions: raw.attn_resolutions.clone().unwrap_or_else(|| d.attn_resolutions.clone()),
            num_attention_heads,
            layout,
        };
        cfg.validate().map_err(&bad)?;
        if !original {
            // transformers sizes every attention block by `hidden_size`: it must equal the channels there.
            let hidden = raw.hidden_size.unwrap_or(1024);
            for (what, c) in cfg.attention_channels() {
                if c != hidden {
                    return Err(bad(format!("hidden_size {hidden} differs from the {c} channels of the {what}")));
                }
            }
        }
        Ok(cfg)
    }
}

impl VqConfig {
    /// Reads and validates `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path: PathBuf = dir.join("config.json");
        RawVqConfig::from_file(&path)?.into_config(&path)
    }

    /// The released Emu3 vision tokenizer (BAAI/Emu3-VisionTokenizer; transformers' `Emu3VQVAEConfig()` defaults).
    pub fn emu3() -> Self {
        VqConfig {
            codebook_size: 32_768,
            embed_dim: 4,
            latent_channels: 4,
            in_channels: 3,
            out_channels: 3,
            temporal_downsample_factor: 4,
            base_channels: 256,
            channel_multiplier: vec![1, 2, 2, 4],
            num_res_blocks: 2,
            attn_resolutions: vec![3],
            num_attention_heads: 1,
            layout: VqLayout::Preset,
        }
    }

    /// The shape of `fixtures/vq-tiny` (codebook 64, spatial factor 8): unit tests and CPU benchmarks.
    pub fn tiny() -> Self {
        VqConfig {
            codebook_size: 64,
            base_channels: 32,
            channel_multiplier: vec![1, 1, 1, 1],
            num_res_blocks: 1,
            ..Self::emu3()
        }
    }

    /// Pixels per code along each spatial axis: `2^(levels - 1)`.
    pub fn spatial_factor(&self) -> i64 {
        1 << (self.channel_multiplier.len() - 1)
    }

    /// Number of stride-2 temporal convolutions (encoder) and temporal upsamplings (decoder).
    pub fn temporal_blocks(&self) -> i64 {
        self.temporal_downsample_factor.trailing_zeros() as i64
    }

    /// Channels of resolution level `i` (`base_channels * channel_multiplier[i]`).
    pub fn level_channels(&self, i: usize) -> i64 {
        self.base_channels * self.channel_multiplier[i]
    }

    /// Channels of the innermost level, where the middle blocks run.
    pub fn inner_channels(&self) -> i64 {
        self.level_channels(self.channel_multiplier.len() - 1)
    }

    /// Whether level `i` has attention after each residual block.
    pub fn has_attention(&self, level: usize) -> bool {
        self.attn_resolutions.contains(&(level as i64))
    }

    /// (description, channels) of every attention block.
    fn attention_channels(&self) -> Vec<(String, i64)> {
        let mut v = vec![("middle blocks".to_string(), self.inner_channels())];
        for i in 0..self.channel_multiplier.len() {
            if self.has_attention(i) {
                v.push((format!("attention at level {i}"), self.level_channels(i)));
            }
        }
        v
    }

    /// Checks the invariants the encoder, quantizer and decoder rely on: positive sizes, 1 to 8 levels, level
    /// channels divisible by the 32 GroupNorm groups, a power-of-two temporal factor, `embed_dim ==
    /// latent_channels`, attention levels in range and divisible by the head count. Returns the first violation.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let pos = [
            ("codebook_size", self.codebook_size),
            ("embed_dim", self.embed_dim),
            ("latent_channels", self.latent_channels),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("temporal_downsample_factor", self.temporal_downsample_factor),
            ("base_channels", self.base_channels),
            ("num_res_blocks", self.num_res_blocks),
            ("num_attention_heads", self.num_attention_heads),
        ];
        for (name, v) in pos {
            if v <= 0 {
                return Err(format!("{name} must be positive, got {v}"));
            }
        }
        if self.channel_multiplier.is_empty() || self.channel_multiplier.len() > 8 {
            return Err(format!("channel_multiplier must have 1 to 8 levels, got {:?}", self.channel_multiplier));
        }
        if let Some(m) = self.channel_multiplier.iter().find(|&&m| m <= 0) {
            return Err(format!("channel_multiplier entries must be positive, got {m}"));
        }
        // Every GroupNorm of the reference has 32 groups.
        for i in 0..self.channel_multiplier.len() {
            let c = self.level_channels(i);
            if c % 32 != 0 {
                return Err(format!("level {i} has {c} channels, not a multiple of the 32 normalisation groups"));
            }
        }
        if self.temporal_downsample_factor.count_ones() != 1 {
            return Err(format!(
                "temporal_downsample_factor {} is not a power of two",
                self.temporal_downsample_factor
            ));
        }
        if self.embed_dim != self.latent_channels {
            return Err(format!(
                "embed_dim ({}) must equal the latent channels ({}): the decoder's temporal blocks run on both",
                self.embed_dim, self.latent_channels
            ));
        }
        let levels = self.channel_multiplier.len() as i64;
        if let Some(a) = self.attn_resolutions.iter().find(|&&a| a < 0 || a >= levels) {
            return Err(format!("attn_resolutions entry {a} is not a level index below {levels}"));
        }
        for (what, c) in self.attention_channels() {
            if c % self.num_attention_heads != 0 {
                return Err(format!(
                    "the {what} has {c} channels, not divisible by {} heads",
                    self.num_attention_heads
                ));
            }
        }
        Ok(())
    }
}

/// Whether `dir/config.json` describes a vision tokenizer (`emu3_vqgan` or `Emu3VisionVQ`) rather than a language
/// model. Used by commands that accept either kind of checkpoint.
pub fn is_vq_checkpoint(dir: &Path) -> Result<bool> {
    Ok(RawVqConfig::from_file(&dir.join("config.json"))?.is_vq())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<VqConfig> {
        let raw: RawVqConfig = serde_json::from_str(json).unwrap();
        raw.into_config(Path::new("config.json"))
    }

    #[test]
    fn both_dialects_give_the_same_config() {
        let t = parse(
            r#"{"model_type":"emu3_vqgan","codebook_size":64,"base_channels":32,"channel_multiplier":[1,1,1,1],
                "num_res_blocks":1,"attn_resolutions":[3],"hidden_size":32,"latent_channels":4}"#,
        )
        .unwrap();
        let o = parse(
            r#"{"model_type":"Emu3VisionVQ","codebook_size":64,"ch":32,"ch_mult":[1,1,1,1],"num_res_blocks":1,
                "attn_resolutions":[3],"z_channels":4,"double_z":false}"#,
        )
        .unwrap();
        assert_eq!(VqConfig { layout: VqLayout::Preset, ..t.clone() }, VqConfig::tiny());
        assert_eq!(VqConfig { layout: VqLayout::Transformers, ..o }, t);
        assert_eq!((t.spatial_factor(), t.temporal_blocks()), (8, 2));
    }

    #[test]
    fn defaults_are_the_released_tokenizer() {
        let c = parse(r#"{"model_type":"emu3","vq_config":{"model_type":"emu3_vqgan"}}"#).unwrap();
        assert_eq!(VqConfig { layout: VqLayout::Preset, ..c.clone() }, VqConfig::emu3());
        assert_eq!(c.layout, VqLayout::TransformersMultimodal);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let cases = [
            (r#"{"model_type":"emu3_vqgan","base_channels":48}"#, "normalisation groups"),
            (r#"{"model_type":"emu3_vqgan","embed_dim":8}"#, "must equal the latent"),
            (r#"{"model_type":"emu3_vqgan","temporal_downsample_factor":3}"#, "power of two"),
            (r#"{"model_type":"emu3_vqgan","attn_resolutions":[4]}"#, "level index"),
            (r#"{"model_type":"emu3_vqgan","hidden_size":512}"#, "hidden_size 512"),
            (r#"{"model_type":"Emu3VisionVQ","double_z":true}"#, "double latent"),
            (r#"{"model_type":"Emu3"}"#, "not an Emu3 vision tokenizer"),
            (r#"{"model_type":"emu3_vqgan","codebook_size":0}"#, "codebook_size must be positive"),
        ];
        for (json, want) in cases {
            let e = parse(json).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
    }
}

//! Configuration of a tokenizer training run, in two levels: [`RawVqTrainConfig`] (serde, every field optional, as a
//! TOML/JSON file or CLI flags give it) and the validated [`VqTrainConfig`]. The default model is
//! [`mini_vq_config`], a small tokenizer in the released Emu3 layout for 128×128 synthetic scenes.
use serde::{Deserialize, Serialize};
use tch::Device;

use super::super::{VqConfig, VqLayout};
use crate::error::{Error, Result};

/// The per-pixel reconstruction term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReconLoss {
    /// Mean absolute error (sharper edges on flat-colour images).
    L1,
    /// Mean squared error.
    L2,
}

/// The mini world's tokenizer: spatial factor 8 (128×128 → 16×16 codes), channels 32-64-64-128, one residual block
/// per level, attention only in the middle blocks (16×16 positions), latents and codes of 8 dimensions, 1024
/// codes, and the released temporal factor 4 (transformers' `Emu3VQVAE` repeats a still image 4 times; the temporal
/// layers work on the 8 latent channels only, so they cost little).
pub fn mini_vq_config() -> VqConfig {
    VqConfig {
        codebook_size: 1024,
        embed_dim: 8,
        latent_channels: 8,
        in_channels: 3,
        out_channels: 3,
        temporal_downsample_factor: 4,
        base_channels: 32,
        channel_multiplier: vec![1, 2, 2, 4],
        num_res_blocks: 1,
        attn_resolutions: vec![],
        num_attention_heads: 1,
        layout: VqLayout::Preset,
    }
}

/// The validated run configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct VqTrainConfig {
    /// The tokenizer's shape.
    pub model: VqConfig,
    /// Optimizer steps.
    pub steps: u64,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate (AdamW, β = (0.9, 0.99)).
    pub lr: f64,
    /// Learning rate at the last step (cosine decay after the warm-up).
    pub min_lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// Weight of the commitment loss (VQ-VAE's β).
    pub beta: f64,
    /// Reconstruction term.
    pub recon: ReconLoss,
    /// Global gradient-norm clip (0 disables).
    pub max_grad_norm: f64,
    /// Decoupled weight decay of weights (not of biases and norms).
    pub weight_decay: f64,
    /// Every this many steps, codebook entries unused since the last restart move onto current latents (0: never).
    pub restart_every: u64,
    /// Save the checkpoint every this many steps as well as at the end (0: only at the end), so a run cut short
    /// (a time limit) still leaves its latest weights.
    pub save_every: u64,
    /// Seeds the initial weights and the codebook picks.
    pub seed: u64,
    /// Where training runs.
    pub device: Device,
}

/// Serde mirror of [`VqTrainConfig`]; `None` takes the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVqTrainConfig {
    /// Default 1024.
    pub codebook_size: Option<i64>,
    /// Latent and code dimension; default 8.
    pub embed_dim: Option<i64>,
    /// Default 32.
    pub base_channels: Option<i64>,
    /// Default `[1, 2, 2, 4]` (factor 8).
    pub channel_multiplier: Option<Vec<i64>>,
    /// Default 1.
    pub num_res_blocks: Option<i64>,
    /// Default 4 (the released tokenizer's).
    pub temporal_downsample_factor: Option<i64>,
    /// Default 2000.
    pub steps: Option<u64>,
    /// Default 16.
    pub batch_size: Option<usize>,
    /// Default 1e-3.
    pub lr: Option<f64>,
    /// Default lr / 10.
    pub min_lr: Option<f64>,
    /// Default min(100, steps / 10).
    pub warmup_steps: Option<u64>,
    /// Default 0.25.
    pub beta: Option<f64>,
    /// Default l1.
    pub recon: Option<ReconLoss>,
    /// Default 1.0.
    pub max_grad_norm: Option<f64>,
    /// Default 0.
    pub weight_decay: Option<f64>,
    /// Default 50.
    pub restart_every: Option<u64>,
    /// Default 0 (only at the end).
    pub save_every: Option<u64>,
    /// Default 0.
    pub seed: Option<u64>,
}

impl RawVqTrainConfig {
    /// Fills defaults and checks ranges; `device` is where the run will train.
    pub fn into_config(self, device: Device) -> Result<VqTrainConfig> {
        let d = mini_vq_config();
        let dim = self.embed_dim.unwrap_or(d.embed_dim);
        let model = VqConfig {
            codebook_size: self.codebook_size.unwrap_or(d.codebook_size),
            embed_dim: dim,
            latent_channels: dim,
            base_channels: self.base_channels.unwrap_or(d.base_channels),
            channel_multiplier: self.channel_multiplier.unwrap_or(d.channel_multiplier),
            num_res_blocks: self.num_res_blocks.unwrap_or(d.num_res_blocks),
            temporal_downsample_factor: self.temporal_downsample_factor.unwrap_or(d.temporal_downsample_factor),
            ..d
        };
        model.validate().map_err(|m| Error::input(format!("VQ model: {m}")))?;
        let steps = self.steps.unwrap_or(2000);
        let lr = self.lr.unwrap_or(1e-3);
        let cfg = VqTrainConfig {
            model,
            steps,
            batch_size: self.batch_size.unwrap_or(16),
            lr,
            min_lr: self.min_lr.unwrap_or(lr / 10.0),
            warmup_steps: self.warmup_steps.unwrap_or((steps / 10).min(100)),
            beta: self.beta.unwrap_or(0.25),
            recon: self.recon.unwrap_or(ReconLoss::L1),
            max_grad_norm: self.max_grad_norm.unwrap_or(1.0),
            weight_decay: self.weight_decay.unwrap_or(0.0),
            restart_every: self.restart_every.unwrap_or(50),
            save_every: self.save_every.unwrap_or(0),
            seed: self.seed.unwrap_or(0),
            device,
        };
        cfg.validate().map_err(Error::input)?;
        Ok(cfg)
    }
}

impl VqTrainConfig {
    /// Positive steps and batch, a finite positive lr with `0 ≤ min_lr ≤ lr`, non-negative β, clip and decay.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.steps == 0 || self.batch_size == 0 {
            return Err(format!("steps ({}) and batch_size ({}) must be positive", self.steps, self.batch_size));
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return Err(format!("need lr > 0 and 0 ≤ min_lr ≤ lr, got lr {} and min_lr {}", self.lr, self.min_lr));
        }
        for (name, v) in
            [("beta", self.beta), ("max_grad_norm", self.max_grad_norm), ("weight_decay", self.weight_decay)]
        {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{name} must be finite and non-negative, got {v}"));
            }
        }
        self.model.validate()
    }
}

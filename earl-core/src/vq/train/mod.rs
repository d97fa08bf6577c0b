//! Training a vision tokenizer from scratch in the transformers `Emu3VQVAE` layout, on images from any iterator.
//! The inference modules of `crate::vq` are reused as they are: they are built from a [`ParamStore`] of fp32 leaf
//! tensors, so one network definition serves training, inference here and loading in transformers. Each step runs
//! [`step::forward`] (reconstruction + codebook + β·commitment, straight-through estimator), one AdamW step of
//! `crate::train::optim` under the project's warm-up + cosine schedule, and codebook housekeeping; it appends one
//! JSON line to `out_dir/metrics.jsonl`. The result is saved as a checkpoint [`Emu3VqModel::from_dir`] and
//! transformers' `Emu3VQVAE.from_pretrained` both load.
mod config;
mod params;
mod step;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use serde::Serialize;
use tch::{Kind, Tensor};

pub use config::{mini_vq_config, RawVqTrainConfig, ReconLoss, VqTrainConfig};
pub use params::{config_json, preprocessor_json, ParamStore};

use super::Emu3VqModel;
use crate::error::{guard, Error, Result};
use crate::imageproc::{self, ImageProcessConfig};
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::CosineSchedule;

/// Name of the codebook in the state dict.
const CODEBOOK: &str = "quantize.embedding.weight";

/// What one step did (one line of `metrics.jsonl`).
#[derive(Debug, Clone, Serialize)]
pub struct VqStepMetrics {
    /// 1-based step.
    pub step: u64,
    /// The optimised total.
    pub loss: f64,
    /// Reconstruction term.
    pub recon: f64,
    /// Codebook term.
    pub codebook: f64,
    /// Commitment term (before β).
    pub commitment: f64,
    /// Distinct codes in the batch.
    pub codes_used: i64,
    /// Perplexity of the batch's code histogram.
    pub perplexity: f64,
    /// Codebook entries restarted after this step.
    pub restarted: usize,
    /// Learning rate of the step.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Wall time of the step.
    pub secs: f64,
}

/// The outcome of [`train_vq`].
#[derive(Debug, Clone)]
pub struct VqTrainReport {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Steps taken (fewer than configured if the images ran out).
    pub steps: u64,
    /// Trainable parameters.
    pub parameters: i64,
    /// Size of `model.safetensors`.
    pub weights_bytes: u64,
    /// The first and last step's metrics.
    pub first: Option<VqStepMetrics>,
    /// See `first`.
    pub last: Option<VqStepMetrics>,
}

/// The next batch [B, 3, H, W] of normalised pixels, or `None` when the iterator has fewer than `b` images left.
fn next_batch(images: &mut impl Iterator<Item = RgbImage>, b: usize, factor: u32) -> Result<Option<Tensor>> {
    let pre = ImageProcessConfig::new(factor);
    let mut batch = Vec::with_capacity(b);
    for img in images.by_ref().take(b) {
        let (w, h) = img.dimensions();
        if w % factor != 0 || h % factor != 0 || w == 0 || h == 0 {
            return Err(Error::input(format!(
                "training image {w}×{h} is not a multiple of the spatial factor {factor}"
            )));
        }
        if let Some(first) = batch.first().map(|t: &Tensor| t.size()) {
            if first[2..] != [h as i64, w as i64] {
                return Err(Error::input(format!(
                    "training images of one batch differ in size: {first:?} and {w}×{h}"
                )));
            }
        }
        batch.push(imageproc::to_tensor(&img, &pre));
    }
    Ok((batch.len() == b).then(|| Tensor::cat(&batch, 0)))
}

/// Trains a tokenizer of `cfg.model` on `images` (8-bit RGB, sides multiples of the spatial factor, one size per
/// batch) and saves it in `out_dir`; `on_step` sees every step's metrics (progress bars, logs).
pub fn train_vq(
    images: impl IntoIterator<Item = RgbImage>,
    cfg: &VqTrainConfig,
    out_dir: &Path,
    mut on_step: impl FnMut(&VqStepMetrics),
) -> Result<VqTrainReport> {
    cfg.validate().map_err(Error::input)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let metrics_path = out_dir.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let store = ParamStore::init(&cfg.model, cfg.seed, cfg.device)?;
    let parameters = store.num_parameters();
    let _span = tracing::info_span!("train_vq", steps = cfg.steps, batch = cfg.batch_size, parameters).entered();
    let hp = AdamWConfig { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: cfg.weight_decay };
    let mut opt = AdamW::new(hp, store.trainable());
    let sched =
        CosineSchedule { lr: cfg.lr, min_lr: cfg.min_lr, warmup_steps: cfg.warmup_steps, total_steps: cfg.steps };
    let mut book = step::Codebook::new(cfg.model.codebook_size, cfg.seed ^ 0x5eed_c0de);
    let factor = cfg.model.spatial_factor() as u32;
    let mut images = images.into_iter();
    let (mut first, mut last) = (None, None);
    for s in 0..cfg.steps {
        let Some(x) = next_batch(&mut images, cfg.batch_size, factor)? else {
            tracing::warn!(steps = s, "the training images ran out before the last step");
            break;
        };
        let t0 = Instant::now();
        let m = guard("VQ training step", || {
            let x = x.f_to_device(cfg.device)?;
            if s == 0 {
                let model = store.model(&cfg.model)?;
                let (z, _) = tch::no_grad(|| step::latents(&model, &x))?;
                book.init_from(store.get(CODEBOOK).expect("the codebook is a parameter"), &z);
            }
            let model = store.model(&cfg.model)?; // after the codebook changed: the quantizer caches its norms
            let loss = step::forward(&model, &x, cfg.beta, cfg.recon)?;
            loss.total.backward();
            let grads: Vec<Tensor> = opt
                .params
                .iter()
                .map(|p| {
                    let g = p.master.grad();
                    if g.defined() {
                        g.to_kind(Kind::Float)
                    } else {
                        p.master.zeros_like()
                    }
                })
                .collect();
            let (lr, _) = sched.lr_at(s);
            let sm = opt.step(&grads, lr, cfg.max_grad_norm)?;
            store.zero_grads();
            book.record(&loss.codes);
            let restarted = if cfg.restart_every > 0 && (s + 1) % cfg.restart_every == 0 && s + 1 < cfg.steps {
                restart(&store, &mut opt, &mut book, &loss.latents)
            } else {
                0
            };
            let (codes_used, perplexity) = step::usage(&loss.codes, cfg.model.codebook_size);
            Ok(VqStepMetrics {
                step: s + 1,
                loss: loss.total.double_value(&[]),
                recon: loss.recon,
                codebook: loss.codebook,
                commitment: loss.commitment,
                codes_used,
                perplexity,
                restarted,
                lr,
                grad_norm: sm.grad_norm,
                secs: t0.elapsed().as_secs_f64(),
            })
        })?;
        if !m.loss.is_finite() {
            return Err(Error::Diverged(format!("VQ loss {} at step {}", m.loss, m.step)));
        }
        let line = serde_json::to_string(&m).expect("metrics serialise");
        writeln!(metrics, "{line}").map_err(|e| Error::io(&metrics_path, e))?;
        tracing::debug!(step = m.step, loss = m.loss, recon = m.recon, used = m.codes_used, "VQ step");
        on_step(&m);
        if cfg.save_every > 0 && m.step % cfg.save_every == 0 && m.step < cfg.steps {
            store.save(out_dir, &cfg.model)?;
            tracing::info!(step = m.step, "saved an intermediate vision-tokenizer checkpoint");
        }
        first.get_or_insert_with(|| m.clone());
        last = Some(m);
    }
    let weights_bytes = store.save(out_dir, &cfg.model)?;
    let steps = last.as_ref().map_or(0, |m| m.step);
    tracing::info!(dir = %out_dir.display(), steps, weights_bytes, "saved the trained vision tokenizer");
    Ok(VqTrainReport { dir: out_dir.to_path_buf(), steps, parameters, weights_bytes, first, last })
}

/// Restarts dead codebook entries and clears their AdamW moments (stale moments would drag them back).
fn restart(store: &ParamStore, opt: &mut AdamW, book: &mut step::Codebook, latents: &Tensor) -> usize {
    let emb = store.get(CODEBOOK).expect("the codebook is a parameter");
    let dead = book.restart_dead(emb, latents);
    if !dead.is_empty() {
        let rows = Tensor::from_slice(&dead).to_device(emb.device());
        if let Some(p) = opt.params.iter_mut().find(|p| p.name == CODEBOOK) {
            let _g = tch::no_grad_guard();
            let _ = p.m.index_fill_(0, &rows, 0.0);
            let _ = p.v.index_fill_(0, &rows, 0.0);
        }
    }
    dead.len()
}

/// Encodes and decodes `images` with `model` (an 8-bit round trip, as `earl encode` + `earl decode`).
pub fn reconstruct(model: &Emu3VqModel, images: &[RgbImage]) -> Result<Vec<RgbImage>> {
    let pre = ImageProcessConfig::new(model.cfg.spatial_factor() as u32);
    let mut out = Vec::with_capacity(images.len());
    for img in images {
        let x = imageproc::to_tensor(img, &pre);
        let pixels = tch::no_grad(|| model.decode(&model.encode(&x)?))?;
        out.extend(imageproc::to_rgb8(&pixels, &pre)?);
    }
    Ok(out)
}

/// Fraction of pixels whose every channel is within `tol` of the original (1.0 = all of them; images of
/// different sizes compare as 0).
pub fn pixel_accuracy(original: &RgbImage, recon: &RgbImage, tol: u8) -> f64 {
    if original.dimensions() != recon.dimensions() {
        return 0.0;
    }
    let ok = original.pixels().zip(recon.pixels()).filter(|(a, b)| (0..3).all(|c| a[c].abs_diff(b[c]) <= tol)).count();
    ok as f64 / (original.width() as f64 * original.height() as f64)
}

#[cfg(test)]
mod tests;

//! One optimizer step of SFT: forward/backward over the micro-batches of a global batch (gradient accumulation),
//! the loss normalised as configured, fp32 gradient accumulation, global-norm clipping, AdamW on fp32 master
//! weights, and the updated masters copied back into the compute model (bf16 compute with fp32 masters, or fp32
//! throughout, where model and masters share storage). Dropout is re-seeded from (seed, step, micro-batch, layer),
//! so a resumed run draws the same masks as an uninterrupted one without saving generator state, and activation
//! checkpointing re-draws exactly the masks of the forward pass.
use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::batch::Batch;
use super::divergence::{finite_or_text, NanPolicy, SkipReason};
use super::loss::{count_targets, sft_loss, LossNorm};
use super::optim::{clip_coefficient, AdamW, AdamWConfig, StepMetrics};
use super::schedule::CosineSchedule;
use crate::config::Emu3Config;
use crate::error::{guard, Error, Result};
use crate::model::{Emu3ForCausalLM, ForwardArgs};
use crate::weights::TensorSource;

/// Numerical recipe of a run (everything except data and logging).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    /// AdamW betas, epsilon and weight decay.
    pub adamw: AdamWConfig,
    /// Learning rate per optimizer step.
    pub schedule: CosineSchedule,
    /// `max_grad_norm`; ≤ 0 disables clipping.
    pub max_grad_norm: f64,
    /// What the summed token cross-entropy of a step is divided by.
    pub loss_norm: LossNorm,
    /// Seeds dropout, together with the step, micro-batch and layer.
    pub seed: u64,
    /// Activation checkpointing ([`super::recompute`]): recompute each layer in the backward pass instead of
    /// keeping its activations. Memory only; the gradients are the same.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// With checkpointing: run the head and the loss this many positions at a time (0 = all at once), so the full
    /// [B, T, V] logits never exist. Memory only; the loss changes by float summation order.
    #[serde(default)]
    pub loss_chunk_tokens: i64,
    /// What a step with a NaN or infinite loss or gradient norm does ([`NanPolicy`]).
    #[serde(default)]
    pub nan_policy: NanPolicy,
}

/// Metrics of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StepReport {
    /// Optimizer steps taken, this one included (1-based).
    pub step: u64,
    /// The loss of the step as it was back-propagated (sum over micro-batches).
    #[serde(serialize_with = "finite_or_text")]
    pub loss: f64,
    /// Mean cross-entropy per target token over the whole global batch.
    #[serde(serialize_with = "finite_or_text")]
    pub token_loss: f64,
    /// Share of target tokens the argmax predicts, over the global batch.
    pub accuracy: f64,
    /// Learning rate the step ran at (from the schedule).
    pub lr: f64,
    /// Global L2 norm of the accumulated gradients, before clipping.
    #[serde(serialize_with = "finite_or_text")]
    pub grad_norm: f64,
    /// Factor the gradients were scaled by (1 = not clipped).
    pub clip_coef: f64,
    /// Target (label) tokens in the global batch.
    pub target_tokens: i64,
    /// Real (unpadded) input tokens processed.
    pub tokens: i64,
    /// Why the step did not update the weights, if it did not (see [`SftTrainer::step`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkipReason>,
}

/// Validation metrics (`eval_*` fields of `metrics.jsonl`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EvalReport {
    /// transformers `Trainer`'s `eval_loss`: the mean over evaluation batches of each batch's mean token
    /// cross-entropy (batches without targets are skipped).
    #[serde(serialize_with = "finite_or_text")]
    pub eval_loss: f64,
    /// Mean cross-entropy per target token over the whole validation set.
    #[serde(serialize_with = "finite_or_text")]
    pub eval_token_loss: f64,
    /// Share of target tokens the argmax predicts, over the whole validation set.
    pub eval_accuracy: f64,
    /// Sequences evaluated.
    pub eval_samples: usize,
    /// Target tokens evaluated.
    pub eval_tokens: i64,
    /// Wall-clock seconds of the evaluation.
    pub eval_runtime_s: f64,
}

/// Model, fp32 masters and optimizer state.
pub struct SftTrainer {
    /// The compute model (bf16, or fp32 sharing storage with the masters); forward passes run on it.
    pub model: Emu3ForCausalLM,
    /// Handles of the compute model's parameters, in optimizer order.
    compute: Vec<Tensor>,
    /// fp32 masters and AdamW moments, in the same order as the compute parameters.
    pub opt: AdamW,
    /// The numerical recipe the steps follow.
    pub recipe: Recipe,
    /// The compute model holds the masters themselves (fp32 compute).
    shared: bool,
}

/// fp32 tensors by checkpoint name, served to `Emu3ForCausalLM::load` in another dtype (the bf16 compute copy).
struct NamedTensors {
    map: HashMap<String, Tensor>,
    kind: Kind,
    device: Device,
}

impl TensorSource for NamedTensors {
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self.map.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.into(),
            searched: "the trainer's master weights".into(),
        })?;
        if t.size() != shape {
            return Err(Error::input(format!("master `{name}` has shape {:?}, expected {shape:?}", t.size())));
        }
        Ok(t.to_kind(self.kind).to_device(self.device).detach())
    }
    fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
    fn kind(&self) -> Kind {
        self.kind
    }
    fn device(&self) -> Device {
        self.device
    }
}

impl SftTrainer {
    /// Loads fp32 master weights from `src` (which must produce f32 tensors) and a compute model of `kind`;
    /// `cfg.attention_dropout` is the training dropout.
    pub fn new(src: &dyn TensorSource, cfg: &Emu3Config, kind: Kind, recipe: Recipe) -> Result<Self> {
        if src.kind() != Kind::Float {
            return Err(Error::input(format!("master weights must load as f32, the source gives {:?}", src.kind())));
        }
        let master_model = Emu3ForCausalLM::load(src, cfg)?;
        let masters = master_model.named_parameters();
        let (model, shared) = if kind == Kind::Float {
            (master_model, true)
        } else {
            let map = masters.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
            let named = NamedTensors { map, kind, device: src.device() };
            (Emu3ForCausalLM::load(&named, cfg)?, false)
        };
        let compute: Vec<Tensor> = model.named_parameters().into_iter().map(|(_, t)| t).collect();
        for t in &compute {
            let _ = t.set_requires_grad(true);
        }
        let masters = masters.into_iter().map(|(n, t)| (n, t.detach())).collect();
        Ok(SftTrainer { model, compute, opt: AdamW::new(recipe.adamw, masters), recipe, shared })
    }

    /// How SFT back-propagates: `None` = plain autograd, `Some(chunk)` = activation checkpointing with the head run
    /// `chunk` positions at a time (0 = all at once).
    fn checkpointing(&self) -> Option<i64> {
        self.recipe.gradient_checkpointing.then_some(self.recipe.loss_chunk_tokens.max(0))
    }

    /// Optimizer steps taken.
    pub fn step_count(&self) -> u64 {
        self.opt.step
    }

    /// Loss and gradients of one micro-batch without updating anything (used by parity tests): returns the loss
    /// with `denominator` and leaves gradients in the compute parameters' `.grad()`.
    /// Dropout (when `train`) is seeded from the recipe's seed as at step 0, micro-batch 0.
    pub fn loss_and_backward(
        &self,
        batch: &Batch,
        denominator: f64,
        train: bool,
    ) -> Result<(f64, super::loss::LossMetrics)> {
        let seed = micro_seed(self.recipe.seed, 0, 0);
        sft_backward(&self.model, batch, denominator, train.then_some(seed), self.checkpointing())
    }

    /// Validation loss over `batches` in evaluation mode (no dropout, no gradients); see [`EvalReport`].
    pub fn evaluate(&self, batches: &[Batch]) -> Result<EvalReport> {
        let t0 = std::time::Instant::now();
        let _span = tracing::debug_span!("sft_eval", batches = batches.len()).entered();
        let (mut mean_sum, mut counted, mut ce_sum, mut correct, mut tokens, mut samples) =
            (0.0, 0usize, 0.0, 0.0, 0i64, 0usize);
        for b in batches {
            let m = tch::no_grad(|| -> Result<super::loss::LossMetrics> {
                let args = ForwardArgs { attention_mask: Some(&b.attention_mask), ..Default::default() };
                let logits = self.model.forward(&b.input_ids, &args, None)?; // [B, T, V]
                Ok(sft_loss(&logits, &b.labels, 1.0)?.1)
            })?;
            samples += b.input_ids.size()[0] as usize;
            if m.tokens > 0 {
                mean_sum += m.sum / m.tokens as f64;
                counted += 1;
            }
            ce_sum += m.sum;
            correct += m.accuracy * m.tokens as f64;
            tokens += m.tokens;
        }
        let per_token = |x: f64| if tokens > 0 { x / tokens as f64 } else { f64::NAN };
        Ok(EvalReport {
            eval_loss: if counted > 0 { mean_sum / counted as f64 } else { f64::NAN },
            eval_token_loss: per_token(ce_sum),
            eval_accuracy: per_token(correct),
            eval_samples: samples,
            eval_tokens: tokens,
            eval_runtime_s: t0.elapsed().as_secs_f64(),
        })
    }

    /// Gradients currently held by the compute parameters, as f32 (zeros where none), by name.
    pub fn gradients(&self) -> Vec<(String, Tensor)> {
        self.opt
            .params
            .iter()
            .zip(&self.compute)
            .map(|(p, c)| {
                let g = c.grad();
                let g = if g.defined() { g.to_kind(Kind::Float) } else { p.master.zeros_like() };
                (p.name.clone(), g)
            })
            .collect()
    }

    fn zero_grads(&self) {
        for c in &self.compute {
            let mut g = c.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// One optimizer step over `micro` (the micro-batches of one global batch).
    pub fn step(&mut self, micro: &[Batch]) -> Result<StepReport> {
        if micro.is_empty() {
            return Err(Error::input("an optimizer step needs at least one micro-batch"));
        }
        let step = self.opt.step;
        let _span = tracing::debug_span!("sft_step", step).entered();
        let targets: i64 = micro.iter().map(|b| count_targets(&b.labels)).sum();
        if targets == 0 {
            return Ok(self.skip_step(micro));
        }
        let (mut loss, mut ce_sum, mut correct, mut tokens) = (0.0, 0.0, 0.0, 0);
        let (lr, _) = self.recipe.schedule.lr_at(step);
        let (norm, seed, ckpt) = (self.recipe.loss_norm, self.recipe.seed, self.checkpointing());
        let sm = self.step_with(micro.len(), lr, |model, i| {
            let b = &micro[i];
            let denom = match norm {
                LossNorm::GlobalTokens => targets.max(1) as f64,
                LossNorm::MicroBatchMean => (count_targets(&b.labels).max(1) * micro.len() as i64) as f64,
            };
            let (l, m) = sft_backward(model, b, denom, Some(micro_seed(seed, step, i)), ckpt)?;
            loss += l;
            ce_sum += m.sum;
            correct += m.accuracy * m.tokens as f64;
            tokens += b.num_tokens();
            Ok(l)
        })?;
        Ok(StepReport {
            step: step + 1,
            loss,
            token_loss: if targets > 0 { ce_sum / targets as f64 } else { 0.0 },
            accuracy: if targets > 0 { correct / targets as f64 } else { 0.0 },
            lr,
            grad_norm: sm.grad_norm,
            clip_coef: sm.clip_coef,
            target_tokens: targets,
            tokens,
            skipped: (!sm.applied).then_some(SkipReason::NonFinite),
        })
    }

    /// A global batch whose labels are all masked has no loss to learn from, yet an AdamW step would still apply
    /// weight decay and the moments' momentum (transformers' `Trainer` takes that step; we report and skip it). The
    /// step counter advances, so the schedule and the data order stay those of the uninterrupted step numbering.
    fn skip_step(&mut self, micro: &[Batch]) -> StepReport {
        let step = self.opt.step;
        tracing::warn!(step = step + 1, "every label of the global batch is masked (-100): step skipped, not trained");
        self.opt.step += 1;
        StepReport {
            step: step + 1,
            loss: 0.0,
            token_loss: 0.0,
            accuracy: 0.0,
            lr: self.recipe.schedule.lr_at(step).0,
            grad_norm: 0.0,
            clip_coef: 1.0,
            target_tokens: 0,
            tokens: micro.iter().map(|b| b.num_tokens()).sum(),
            skipped: Some(SkipReason::AllLabelsMasked),
        }
    }

    /// One optimizer step with any loss: `backward(model, i)` runs the forward and `backward()` of micro-batch `i`
    /// (of `n_micro`); gradients are accumulated in f32 (bf16 compute), clipped at the recipe's `max_grad_norm`,
    /// and AdamW is applied at `lr` to the fp32 masters, which are then copied into the compute model. SFT and
    /// GRPO both step through here. `backward` returns the micro-batch's loss: a non-finite loss or gradient norm
    /// is handled by the recipe's [`NanPolicy`] before any weight moves ([`super::divergence`]).
    pub fn step_with(
        &mut self,
        n_micro: usize,
        lr: f64,
        mut backward: impl FnMut(&Emu3ForCausalLM, usize) -> Result<f64>,
    ) -> Result<StepMetrics> {
        if n_micro == 0 {
            return Err(Error::input("an optimizer step needs at least one micro-batch"));
        }
        // bf16 gradients are summed in f32, not in the compute dtype, one parameter at a time (no second full copy).
        let mut acc: Vec<Tensor> = Vec::new();
        self.zero_grads();
        let mut finite_loss = true;
        for i in 0..n_micro {
            finite_loss &= backward(&self.model, i)?.is_finite();
            if !self.shared {
                let _g = tch::no_grad_guard();
                for (k, (c, p)) in self.compute.iter().zip(&self.opt.params).enumerate() {
                    let g = c.grad();
                    match (acc.get_mut(k), g.defined()) {
                        (None, true) => acc.push(g.to_kind(Kind::Float)),
                        (None, false) => acc.push(p.master.zeros_like()),
                        (Some(a), true) => {
                            let _ = a.g_add_(&g);
                        }
                        (Some(_), false) => {}
                    }
                }
                self.zero_grads();
            }
        }
        let grads = if self.shared { self.gradients().into_iter().map(|(_, g)| g).collect() } else { acc };
        let max_norm = self.recipe.max_grad_norm;
        let (grad_norm, clip_coef) = guard("the gradient norm", || Ok(clip_coefficient(&grads, max_norm)))?;
        if !finite_loss || !grad_norm.is_finite() {
            self.zero_grads();
            return self.diverged(grad_norm, clip_coef, lr, finite_loss);
        }
        let sm = guard("the optimizer step", || self.opt.step_clipped(&grads, lr, grad_norm, clip_coef))?;
        if self.shared {
            // Bf16 compute had its gradients zeroed as they were accumulated; f32 compute reads them in place.
            self.zero_grads();
        }
        self.sync_compute();
        Ok(sm)
    }

    /// A step whose loss or gradient norm is not finite: an error under [`NanPolicy::Stop`]; under
    /// [`NanPolicy::SkipStep`] the step is counted and the weights and moments stay as they were.
    fn diverged(&mut self, grad_norm: f64, clip_coef: f64, lr: f64, finite_loss: bool) -> Result<StepMetrics> {
        let step = self.opt.step + 1;
        let what = if finite_loss { format!("gradient norm {grad_norm}") } else { "loss".to_string() };
        match self.recipe.nan_policy {
            NanPolicy::Stop => Err(Error::Diverged(format!(
                "non-finite {what} at step {step}: stopped before the update, so the last checkpoint holds the last \
                 good weights (nan_policy = \"skip_step\" drops such steps instead)"
            ))),
            NanPolicy::SkipStep => {
                tracing::warn!(step, "non-finite {what}: step skipped (nan_policy = \"skip_step\")");
                self.opt.step += 1;
                Ok(StepMetrics { grad_norm, clip_coef, lr, applied: false })
            }
        }
    }

    /// Copies the fp32 masters into the compute model (a no-op when they are the same tensors).
    pub fn sync_compute(&self) {
        if self.shared {
            return;
        }
        let _g = tch::no_grad_guard();
        for (c, p) in self.compute.iter().zip(&self.opt.params) {
            let mut c = c.shallow_clone();
            c.copy_(&p.master);
        }
    }
}

/// SFT loss of one micro-batch with `denominator`, back-propagated into the model's parameters. `dropout_seed`:
/// training mode with dropout seeded from it (`None` = evaluation mode); `checkpointing`: recompute the layers in
/// the backward pass instead of keeping their activations (`Some(chunk)`, see [`SftTrainer::checkpointing`]).
fn sft_backward(
    model: &Emu3ForCausalLM,
    batch: &Batch,
    denominator: f64,
    dropout_seed: Option<i64>,
    checkpointing: Option<i64>,
) -> Result<(f64, super::loss::LossMetrics)> {
    let args = ForwardArgs {
        attention_mask: Some(&batch.attention_mask),
        train: dropout_seed.is_some(),
        dropout_seed,
        ..Default::default()
    };
    let loss = |logits: &Tensor| sft_loss(logits, &batch.labels, denominator);
    match checkpointing {
        Some(0) => {
            let (value, m) = super::recompute::checkpointed_backward(model, &batch.input_ids, &args, loss)?;
            return Ok((value.double_value(&[]), m));
        }
        Some(chunk) => {
            let t = batch.input_ids.size()[1];
            let (mut sum, mut tokens, mut correct) = (0.0, 0i64, 0.0);
            let mut chunk_loss = |logits: &Tensor, start: i64| -> Result<Tensor> {
                // Logits at positions start.. predict the labels one position later.
                let targets = batch.labels.narrow(1, start + 1, logits.size()[1]);
                let (value, m) = super::loss::targets_loss(logits, &targets, denominator)?;
                (sum, tokens, correct) = (sum + m.sum, tokens + m.tokens, correct + m.accuracy * m.tokens as f64);
                Ok(value)
            };
            let value = super::recompute::checkpointed_backward_chunked(
                model,
                &batch.input_ids,
                &args,
                t - 1,
                chunk,
                &mut chunk_loss,
            )?;
            let accuracy = if tokens > 0 { correct / tokens as f64 } else { 0.0 };
            return Ok((value.double_value(&[]), super::loss::LossMetrics { sum, tokens, accuracy }));
        }
        None => {}
    }
    guard("the SFT forward/backward pass", || {
        let logits = model.forward(&batch.input_ids, &args, None)?; // [B, T, V]
        let (value, m) = loss(&logits)?;
        value.backward();
        Ok((value.double_value(&[]), m))
    })
}

/// Dropout seed of micro-batch `micro` at optimizer step `step`.
pub fn micro_seed(seed: u64, step: u64, micro: usize) -> i64 {
    dropout_seed(dropout_seed(seed, step) as u64, micro as u64)
}

/// Seed of the dropout generator at an optimizer step: a SplitMix64 mix of the run seed and the step.
pub fn dropout_seed(seed: u64, step: u64) -> i64 {
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(0xd1b5_4a32_d192_ed03);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 1) as i64
}

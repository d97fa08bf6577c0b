//! AdamW with fp32 state and gradient-norm clipping, as EARL's SFT configures them (`--adam_beta1 0.9
//! --adam_beta2 0.95 --adam_epsilon 1e-6 --weight_decay 0.1 --max_grad_norm 5.0`) and torch implements them:
//! decoupled weight decay `p ← p·(1 − lr·wd)` first, then `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`. Parameter groups follow transformers' `Trainer`: no decay for biases
//! and normalisation weights (its name patterns `bias`, `layernorm`, `rmsnorm`, a `norm` path component, `_norm`).
//! Clipping follows `torch.nn.utils.clip_grad_norm_`: one global L2 norm over all gradients, scale by
//! `max_norm / (norm + 1e-6)` when that is below 1.
//!
//! [`adamw_update`] and [`clip_coefficient`] are pure functions of tensors, tested on hand-sized inputs; the
//! [`AdamW`] struct stores the state and applies the in-place form [`adamw_update_`] (checked against the pure one)
//! to the fp32 master weights. On CUDA it applies the same formula with torch's fused multi-tensor kernel instead
//! ([`AdamWKernel::Fused`], `torch.optim.AdamW(fused=True)`): one launch per weight-decay group rather than about ten
//! per parameter, which is what a small model's step is bound by. The two agree to rounding (tested on the CPU,
//! where torch 2.11 has the fused kernel too).
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Optimizer hyper-parameters (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Decay of the first moment (`adam_beta1`).
    pub beta1: f64,
    /// Decay of the second moment (`adam_beta2`).
    pub beta2: f64,
    /// Added to the bias-corrected √v (`adam_epsilon`).
    pub eps: f64,
    /// Decoupled weight decay, applied to the decay group only.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// The paper's SFT values.
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-6, weight_decay: 0.1 }
    }
}

/// Whether transformers' `Trainer` puts a parameter in the weight-decay group (`get_decay_parameter_names`).
pub fn decays(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let norm_component = lower.split('.').any(|c| c == "norm");
    let norm_suffix = lower.split('.').any(|c| c.ends_with("_norm"));
    !(lower.contains("bias")
        || lower.contains("layernorm")
        || lower.contains("rmsnorm")
        || norm_component
        || norm_suffix)
}

/// One AdamW step on a parameter: returns the new (param, m, v). `step` is the 1-based step count used for bias
/// correction; `decay` selects the weight-decay group. All tensors f32 of one shape.
// The argument list mirrors torch's functional `adamw` one-for-one, which is what the parity tests compare with.
#[allow(clippy::too_many_arguments)]
pub fn adamw_update(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step: u64,
    lr: f64,
    hp: &AdamWConfig,
    decay: bool,
) -> (Tensor, Tensor, Tensor) {
    let p = if decay && hp.weight_decay != 0.0 { p * (1.0 - lr * hp.weight_decay) } else { p.shallow_clone() };
    let m = m * hp.beta1 + g * (1.0 - hp.beta1);
    let v = v * hp.beta2 + g.square() * (1.0 - hp.beta2);
    let bc1 = 1.0 - hp.beta1.powi(step as i32);
    let bc2 = 1.0 - hp.beta2.powi(step as i32);
    let denom = v.sqrt() / bc2.sqrt() + hp.eps;
    let p = p - (&m / denom) * (lr / bc1);
    (p, m, v)
}

/// The same step in place on `p`, `m` and `v`, with torch's single-tensor AdamW operations (`lerp_`, `addcmul_`,
/// `addcdiv_`): fewer passes over memory and no temporaries of the parameter's size beyond two. This is what
/// [`AdamW::step`] runs; it equals [`adamw_update`] up to floating-point rounding order (tested).
#[allow(clippy::too_many_arguments)]
pub fn adamw_update_(
    p: &mut Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    step: u64,
    lr: f64,
    hp: &AdamWConfig,
    decay: bool,
) {
    if decay && hp.weight_decay != 0.0 {
        let _ = p.g_mul_scalar_(1.0 - lr * hp.weight_decay);
    }
    let _ = m.lerp_(g, 1.0 - hp.beta1);
    let _ = v.g_mul_scalar_(hp.beta2);
    let _ = v.addcmul_(&(g * (1.0 - hp.beta2)), g);
    if lr == 0.0 {
        // The moments still move (as torch's); the parameter does not (the scaling below would divide by zero).
        return;
    }
    let bc1 = 1.0 - hp.beta1.powi(step as i32);
    let bc2 = 1.0 - hp.beta2.powi(step as i32);
    let mut denom = v.sqrt();
    let _ = denom.g_div_scalar_(bc2.sqrt());
    let _ = denom.g_add_scalar_(hp.eps);
    // p + m / (denom · (−bc1/lr)) = p − (lr/bc1) · m / denom, with addcdiv_'s value fixed at 1 in tch.
    let _ = denom.g_mul_scalar_(-bc1 / lr);
    let _ = p.addcdiv_(m, &denom);
}

/// Global L2 norm of `grads` and the factor `clip_grad_norm_` multiplies them by (1 when no clipping is needed or
/// `max_norm` ≤ 0, which disables clipping). As torch: the norm of the per-tensor norms, in the gradients' dtype,
/// with a single device→host read.
pub fn clip_coefficient(grads: &[Tensor], max_norm: f64) -> (f64, f64) {
    if grads.is_empty() {
        return (0.0, 1.0);
    }
    // torch's `_foreach_norm` (one launch) where it applies (one device and dtype), the per-tensor norms otherwise;
    // the two differ at most by the summation order of each tensor's squares.
    let norms: Vec<Tensor> =
        earl_torch_sys::foreach_norm(grads, 2.0).unwrap_or_else(|_| grads.iter().map(|g| g.norm()).collect());
    let norm = Tensor::stack(&norms, 0).norm().to_kind(Kind::Double).double_value(&[]);
    let coef = if max_norm > 0.0 { (max_norm / (norm + 1e-6)).min(1.0) } else { 1.0 };
    (norm, coef)
}

/// How [`AdamW`] applies its update. Both compute torch's AdamW formula in f32; they differ in rounding only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdamWKernel {
    /// [`adamw_update_`] per parameter: the reference path, and what the CPU goldens were made with.
    PerTensor,
    /// `torch._fused_adamw_` over all parameters of a weight-decay group at once.
    Fused,
}

impl AdamWKernel {
    /// Fused on CUDA, per-tensor on the CPU (whose step is not launch-bound, and whose tests pin its numbers).
    pub fn default_for(device: Device) -> Self {
        if device.is_cuda() {
            AdamWKernel::Fused
        } else {
            AdamWKernel::PerTensor
        }
    }
}

/// One trainable tensor: its fp32 master value and AdamW moments.
#[derive(Debug)]
pub struct ParamState {
    /// Checkpoint name of the parameter (`model.layers.0.self_attn.q_proj.weight`, …).
    pub name: String,
    /// fp32 master weight, updated in place (shared with the model when it computes in fp32).
    pub master: Tensor,
    /// First moment, fp32, the master's shape.
    pub m: Tensor,
    /// Second moment, fp32, the master's shape.
    pub v: Tensor,
    /// Whether weight decay applies ([`decays`] of the name).
    pub decay: bool,
}

/// AdamW over named fp32 master weights.
#[derive(Debug)]
pub struct AdamW {
    /// Hyper-parameters of every step.
    pub hp: AdamWConfig,
    /// Per-parameter state; [`AdamW::step`] takes gradients in this order.
    pub params: Vec<ParamState>,
    /// Optimizer steps taken so far (torch's per-parameter `step`, identical for all here).
    pub step: u64,
    /// Which kernel applies the update ([`AdamWKernel::default_for`] the masters' device).
    pub kernel: AdamWKernel,
    /// The fused kernel's step count: one f32 0-dim tensor on the masters' device, shared by every parameter (the
    /// kernel reads it, never advances it), set from `step` before each update.
    fused_step: Option<Tensor>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepMetrics {
    /// Global L2 norm of the gradients, before clipping.
    pub grad_norm: f64,
    /// Factor the gradients were scaled by (1 = not clipped).
    pub clip_coef: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Whether the weights were updated (false for a step skipped by the `nan_policy`).
    pub applied: bool,
}

impl AdamW {
    /// Zero moments for every (name, fp32 master) pair.
    pub fn new(hp: AdamWConfig, masters: Vec<(String, Tensor)>) -> Self {
        let device = masters.first().map_or(Device::Cpu, |(_, t)| t.device());
        let params = masters
            .into_iter()
            .map(|(name, master)| ParamState {
                decay: decays(&name),
                m: master.zeros_like(),
                v: master.zeros_like(),
                name,
                master,
            })
            .collect();
        AdamW { hp, params, step: 0, kernel: AdamWKernel::default_for(device), fused_step: None }
    }

    /// Clips `grads` (fp32, same order as the parameters) to `max_norm` and applies one AdamW step at `lr`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64, max_norm: f64) -> Result<StepMetrics> {
        let (grad_norm, clip_coef) = clip_coefficient(grads, max_norm);
        self.step_clipped(grads, lr, grad_norm, clip_coef)
    }

    /// [`Self::step`] with the norm and clip factor already computed by [`clip_coefficient`] (the trainer checks the
    /// norm is finite first). The fused kernel scales `grads` in place when clipping; the per-tensor path does not.
    pub fn step_clipped(&mut self, grads: &[Tensor], lr: f64, grad_norm: f64, clip_coef: f64) -> Result<StepMetrics> {
        if grads.len() != self.params.len() {
            return Err(Error::input(format!("{} gradients for {} parameters", grads.len(), self.params.len())));
        }
        self.step += 1;
        let _guard = tch::no_grad_guard();
        match self.kernel {
            AdamWKernel::PerTensor => {
                for (p, g) in self.params.iter_mut().zip(grads) {
                    let g = if clip_coef < 1.0 { g * clip_coef } else { g.shallow_clone() };
                    adamw_update_(&mut p.master, &g, &mut p.m, &mut p.v, self.step, lr, &self.hp, p.decay);
                }
            }
            AdamWKernel::Fused => self.fused_update(grads, lr, clip_coef)?,
        }
        Ok(StepMetrics { grad_norm, clip_coef, lr, applied: true })
    }

    /// One `_fused_adamw_` launch per weight-decay group (the kernel takes one decay for its whole list).
    fn fused_update(&mut self, grads: &[Tensor], lr: f64, clip_coef: f64) -> Result<()> {
        let sys = |e: earl_torch_sys::Error| Error::torch("the fused AdamW step", e);
        if clip_coef < 1.0 {
            earl_torch_sys::foreach_mul_scalar_(grads, clip_coef).map_err(sys)?;
        }
        let Some(first) = self.params.first() else { return Ok(()) };
        let step = self.fused_step.get_or_insert_with(|| Tensor::zeros([], (Kind::Float, first.master.device())));
        let _ = step.fill_(self.step as f64);
        for decay in [true, false] {
            let group: Vec<usize> = (0..self.params.len()).filter(|&i| self.params[i].decay == decay).collect();
            let pick = |f: &dyn Fn(usize) -> Tensor| group.iter().map(|&i| f(i)).collect::<Vec<Tensor>>();
            let (params, exp_avgs, exp_avg_sqs) = (
                pick(&|i| self.params[i].master.shallow_clone()),
                pick(&|i| self.params[i].m.shallow_clone()),
                pick(&|i| self.params[i].v.shallow_clone()),
            );
            let (grads, steps) = (pick(&|i| grads[i].shallow_clone()), pick(&|_| step.shallow_clone()));
            let tensors = earl_torch_sys::AdamWTensors {
                params: &params,
                grads: &grads,
                exp_avgs: &exp_avgs,
                exp_avg_sqs: &exp_avg_sqs,
                max_exp_avg_sqs: &[],
                state_steps: &steps,
                grad_scale: None,
                found_inf: None,
            };
            let hp = earl_torch_sys::AdamWHyper {
                lr,
                beta1: self.hp.beta1,
                beta2: self.hp.beta2,
                weight_decay: if decay { self.hp.weight_decay } else { 0.0 },
                eps: self.hp.eps,
                amsgrad: false,
                maximize: false,
            };
            earl_torch_sys::fused_adamw_(&tensors, &hp).map_err(sys)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn decay_groups_follow_the_trainer() {
        assert!(decays("model.layers.0.self_attn.q_proj.weight"));
        assert!(decays("model.embed_tokens.weight") && decays("lm_head.weight"));
        assert!(!decays("model.layers.3.input_layernorm.weight"));
        assert!(!decays("model.layers.3.post_attention_layernorm.weight"));
        assert!(!decays("model.norm.weight"));
        assert!(!decays("model.layers.0.self_attn.q_proj.bias"));
        assert!(!decays("model.layers.0.q_norm.weight"));
    }

    #[test]
    fn first_adamw_step_by_hand() {
        // Step 1: m = (1−β1)g, v = (1−β2)g², bias-corrected m̂ = g, v̂ = g² → update = lr·g/(|g| + ε).
        let hp = AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-6, weight_decay: 0.1 };
        let (p, g) = (t(&[1.0, -2.0]), t(&[0.5, -4.0]));
        let z = t(&[0.0, 0.0]);
        let (np, nm, nv) = adamw_update(&p, &g, &z, &z, 1, 0.1, &hp, true);
        let np = Vec::<f32>::try_from(np).unwrap();
        let expect0 = 1.0 * (1.0 - 0.01) - 0.1 * 0.5 / (0.5 + 1e-6);
        let expect1 = -2.0 * (1.0 - 0.01) + 0.1 * 4.0 / (4.0 + 1e-6);
        assert!((np[0] as f64 - expect0).abs() < 1e-6 && (np[1] as f64 - expect1).abs() < 1e-6, "{np:?}");
        assert!((Vec::<f32>::try_from(nm).unwrap()[1] + 0.4).abs() < 1e-7);
        assert!((Vec::<f32>::try_from(nv).unwrap()[1] - 0.8).abs() < 1e-6);
        // No-decay group leaves the weight-decay factor out.
        let (np, _, _) = adamw_update(&p, &g, &z, &z, 1, 0.1, &hp, false);
        assert!((Vec::<f32>::try_from(np).unwrap()[0] as f64 - (1.0 - 0.1 * 0.5 / (0.5 + 1e-6))).abs() < 1e-6);
    }

    #[test]
    fn second_step_uses_bias_correction() {
        let hp = AdamWConfig { beta1: 0.5, beta2: 0.5, eps: 0.0, weight_decay: 0.0 };
        let (p, g) = (t(&[0.0]), t(&[2.0]));
        let (m, v) = (t(&[1.0]), t(&[2.0])); // after step 1 with g = 2
        let (np, nm, nv) = adamw_update(&p, &g, &m, &v, 2, 1.0, &hp, true);
        // m = 0.5 + 1 = 1.5, v = 1 + 2 = 3; m̂ = 1.5/0.75 = 2, v̂ = 3/0.75 = 4 → Δ = −2/2 = −1.
        assert_eq!(Vec::<f32>::try_from(nm).unwrap(), vec![1.5]);
        assert_eq!(Vec::<f32>::try_from(nv).unwrap(), vec![3.0]);
        assert!((Vec::<f32>::try_from(np).unwrap()[0] + 1.0).abs() < 1e-6);
    }

    #[test]
    fn in_place_step_equals_the_pure_reference() {
        tch::manual_seed(3);
        let hp = AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-6, weight_decay: 0.1 };
        let p0 = Tensor::randn([64], (Kind::Float, tch::Device::Cpu));
        let (mut p, mut m, mut v) = (p0.copy(), p0.zeros_like(), p0.zeros_like());
        let (mut rp, mut rm, mut rv) = (p0.copy(), p0.zeros_like(), p0.zeros_like());
        for step in 1..=5u64 {
            let g = Tensor::randn([64], (Kind::Float, tch::Device::Cpu));
            let lr = if step == 1 { 0.0 } else { 1e-2 }; // warm-up's first step runs at lr 0
            adamw_update_(&mut p, &g, &mut m, &mut v, step, lr, &hp, step % 2 == 0);
            (rp, rm, rv) = adamw_update(&rp, &g, &rm, &rv, step, lr, &hp, step % 2 == 0);
        }
        for (a, b) in [(&p, &rp), (&m, &rm), (&v, &rv)] {
            let err = (a - b).abs().max().double_value(&[]);
            assert!(err < 1e-6, "in-place and pure AdamW differ by {err:e}");
        }
        assert!((&p - &p0).abs().max().double_value(&[]) > 1e-3, "the parameters moved");
    }

    #[test]
    fn fused_kernel_equals_the_per_tensor_path() {
        // Both decay groups, clipping on every step, lr 0 on the first (warm-up): the fused multi-tensor kernel and
        // the reference agree to f32 rounding (a few ulps of values of order 1 after five steps: 1e-6).
        // Values from sin(), not libtorch's global generator: tests run in parallel, and another test re-seeding
        // that generator mid-way would make the inputs (never the comparison) vary.
        let wave = |shape: [i64; 2], phase: f64| {
            (Tensor::arange(shape[0] * shape[1], (Kind::Float, tch::Device::Cpu)) * 1.7 + phase).sin().view(shape)
        };
        let hp = AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
        let names = ["model.layers.0.mlp.up_proj.weight", "model.norm.weight", "lm_head.weight"];
        let init: Vec<Tensor> =
            [[8, 4], [1, 4], [3, 4]].iter().enumerate().map(|(i, s)| wave(*s, i as f64) * 2.0).collect();
        let masters = |v: &[Tensor]| names.iter().zip(v).map(|(n, t)| (n.to_string(), t.copy())).collect();
        let (mut fused, mut reference) = (AdamW::new(hp, masters(&init)), AdamW::new(hp, masters(&init)));
        fused.kernel = AdamWKernel::Fused;
        assert_eq!(reference.kernel, AdamWKernel::PerTensor, "the CPU default is the reference path");
        for step in 0..5 {
            let grads: Vec<Tensor> = init
                .iter()
                .enumerate()
                .map(|(i, t)| wave([t.size()[0], t.size()[1]], (step * 3 + i) as f64) * 3.0)
                .collect();
            let copies: Vec<Tensor> = grads.iter().map(|g| g.copy()).collect();
            let lr = if step == 0 { 0.0 } else { 1e-2 };
            let a = fused.step(&grads, lr, 1.0).unwrap();
            let b = reference.step(&copies, lr, 1.0).unwrap();
            assert!(a.clip_coef < 1.0 && (a.grad_norm - b.grad_norm).abs() < 1e-9);
        }
        for (f, r) in fused.params.iter().zip(&reference.params) {
            for (x, y) in [(&f.master, &r.master), (&f.m, &r.m), (&f.v, &r.v)] {
                let err = (x - y).abs().max().double_value(&[]);
                assert!(err < 1e-6, "{}: fused and per-tensor AdamW differ by {err:e}", f.name);
            }
        }
        let moved = (&fused.params[1].master - &init[1]).abs().max().double_value(&[]);
        assert!(moved > 1e-3, "the no-decay group moved too");
    }

    #[test]
    fn clipping_uses_the_global_norm() {
        let grads = [t(&[3.0]), t(&[0.0, 4.0])];
        let (norm, coef) = clip_coefficient(&grads, 1.0);
        assert!((norm - 5.0).abs() < 1e-12);
        assert!((coef - 1.0 / (5.0 + 1e-6)).abs() < 1e-12);
        assert_eq!(clip_coefficient(&grads, 10.0).1, 1.0);
        assert_eq!(clip_coefficient(&grads, 0.0).1, 1.0);
    }

    #[test]
    fn optimizer_updates_masters_in_place() {
        let w = t(&[1.0, 1.0]);
        let shared = w.shallow_clone();
        let mut opt = AdamW::new(AdamWConfig::default(), vec![("lm_head.weight".into(), w)]);
        let m = opt.step(&[t(&[30.0, 40.0])], 0.1, 5.0).unwrap();
        assert!((m.grad_norm - 50.0).abs() < 1e-9 && m.clip_coef < 0.11);
        // The update direction is sign(g) for the first step whatever the clipping.
        let now = Vec::<f32>::try_from(shared).unwrap();
        assert!(now.iter().all(|&x| (x as f64 - (1.0 * 0.99 - 0.1)).abs() < 1e-5), "{now:?}");
        assert_eq!(opt.step, 1);
    }
}

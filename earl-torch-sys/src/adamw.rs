//! torch's fused AdamW step (`torch._fused_adamw_`, what `torch.optim.AdamW(fused=True)` calls): one kernel per
//! device and dtype group updates parameters and both moments of every tensor in the lists. It exists for CUDA and,
//! in torch 2.11, for CPU too (checked by the tests here against a hand-computed step).
//!
//! As torch.optim does, the caller increments the step counters first (e.g. `foreach_add_scalar_(steps, 1.0)`):
//! the kernel reads `state_steps` but does not advance them. Steps are float32 0-dim tensors, one per parameter,
//! on the parameter's device (torch's `fused=True` layout).
use crate::error::{check, same_len, tensor_ptrs, Error, Result};
use crate::ffi;
use tch::Tensor;
use torch_sys::C_tensor;

const OP: &str = "fused_adamw_";

/// Hyper-parameters of one step, with torch.optim.AdamW's names and meaning (weight decay is decoupled:
/// `p ← p·(1 − lr·wd)` before the Adam update).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    /// Keep the running maximum of the second moment (`max_exp_avg_sqs`) and divide by it.
    pub amsgrad: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl AdamWHyper {
    /// torch.optim.AdamW's own checks: `lr`, `eps`, `weight_decay` ≥ 0 and each β in [0, 1); NaN is rejected too.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidArgument { op: OP, message });
        for (name, v) in [("lr", self.lr), ("eps", self.eps), ("weight_decay", self.weight_decay)] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("{name} must be finite and >= 0, got {v}"));
            }
        }
        for (name, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1), got {v}"));
            }
        }
        Ok(())
    }
}

/// The tensor lists of one step, index-aligned: element `i` of each list belongs to parameter `i`.
#[derive(Debug, Clone, Copy)]
pub struct AdamWTensors<'a> {
    /// Updated in place.
    pub params: &'a [Tensor],
    pub grads: &'a [Tensor],
    /// First moments, updated in place.
    pub exp_avgs: &'a [Tensor],
    /// Second moments, updated in place.
    pub exp_avg_sqs: &'a [Tensor],
    /// Running maxima of the second moments; one per parameter with `amsgrad`, ignored without it.
    pub max_exp_avg_sqs: &'a [Tensor],
    /// Step counts (float32, 0-dim), already incremented for this step.
    pub state_steps: &'a [Tensor],
    /// Mixed-precision loss scale: gradients are divided by it.
    pub grad_scale: Option<&'a Tensor>,
    /// Non-zero (from the grad scaler's inf check) skips the whole step, on the device.
    pub found_inf: Option<&'a Tensor>,
}

/// `torch._fused_adamw_`: one AdamW step over all of `t`, in place.
pub fn fused_adamw_(t: &AdamWTensors, hp: &AdamWHyper) -> Result<()> {
    hp.validate()?;
    let n = t.params.len();
    same_len(OP, "grads", n, t.grads.len())?;
    same_len(OP, "exp_avgs", n, t.exp_avgs.len())?;
    same_len(OP, "exp_avg_sqs", n, t.exp_avg_sqs.len())?;
    same_len(OP, "state_steps", n, t.state_steps.len())?;
    if n == 0 {
        // libtorch rejects empty lists; a step over no parameters is nothing to do.
        return Ok(());
    }
    let max_exp_avg_sqs = if hp.amsgrad {
        same_len(OP, "max_exp_avg_sqs", n, t.max_exp_avg_sqs.len())?;
        t.max_exp_avg_sqs
    } else {
        &[]
    };
    let lists = [t.params, t.grads, t.exp_avgs, t.exp_avg_sqs, max_exp_avg_sqs, t.state_steps].map(tensor_ptrs);
    let optional = |o: Option<&Tensor>| o.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut C_tensor);
    let raw = ffi::EarlAdamWTensors {
        params: lists[0].as_ptr(),
        grads: lists[1].as_ptr(),
        exp_avgs: lists[2].as_ptr(),
        exp_avg_sqs: lists[3].as_ptr(),
        max_exp_avg_sqs: lists[4].as_ptr(),
        state_steps: lists[5].as_ptr(),
        n,
        n_max: lists[4].len(),
        grad_scale: optional(t.grad_scale),
        found_inf: optional(t.found_inf),
    };
    let hp = ffi::EarlAdamW {
        lr: hp.lr,
        beta1: hp.beta1,
        beta2: hp.beta2,
        weight_decay: hp.weight_decay,
        eps: hp.eps,
        amsgrad: hp.amsgrad.into(),
        maximize: hp.maximize.into(),
    };
    // SAFETY: every list is `n` (or `n_max`) live handles borrowed from `t` for the call.
    check(OP, unsafe { ffi::earl_fused_adamw_(&raw, &hp) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn hyper() -> AdamWHyper {
        AdamWHyper { lr: 0.1, beta1: 0.9, beta2: 0.95, weight_decay: 0.1, eps: 1e-6, amsgrad: false, maximize: false }
    }

    /// Per-element state of the hand computation.
    #[derive(Clone, Copy)]
    struct Elem {
        p: f64,
        m: f64,
        v: f64,
        vmax: f64,
    }

    /// AdamW written out for one element (torch's `_single_tensor_adamw` / the fused kernel's formula).
    fn by_hand(e: Elem, g: f64, step: i32, hp: &AdamWHyper) -> Elem {
        let g = if hp.maximize { -g } else { g };
        let p = e.p * (1.0 - hp.lr * hp.weight_decay);
        let m = hp.beta1 * e.m + (1.0 - hp.beta1) * g;
        let v = hp.beta2 * e.v + (1.0 - hp.beta2) * g * g;
        let vmax = e.vmax.max(v);
        let bc1 = 1.0 - hp.beta1.powi(step);
        let bc2 = 1.0 - hp.beta2.powi(step);
        let denom = if hp.amsgrad { vmax } else { v }.sqrt() / bc2.sqrt() + hp.eps;
        Elem { p: p - hp.lr / bc1 * m / denom, m, v, vmax }
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    /// Gradient size per step: large, then small, so the second moment falls and amsgrad's maximum differs from it.
    const GRAD_FACTOR: [f64; 3] = [2.0, 0.2, 1.0];

    /// Runs `steps` (≤ 3) fused steps on two small parameters, the gradients multiplied by `scale` and divided back
    /// by the kernel through `grad_scale`, and checks every element against [`by_hand`].
    fn check_against_hand(hp: &AdamWHyper, scale: Option<f64>, steps: i32, device: Device) {
        let p0 = [vec![1.0, -2.0, 0.5], vec![3.0, 0.25]];
        let grads = [vec![0.5, -1.0, 2.0], vec![-0.75, 1.5]];
        let f = |v: &Vec<f64>| Tensor::from_slice(v).to_kind(Kind::Float).to_device(device);
        let params: Vec<Tensor> = p0.iter().map(f).collect();
        let zeros = || params.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
        let (m, v, vmax) = (zeros(), zeros(), zeros());
        let steps_t: Vec<Tensor> = params.iter().map(|_| Tensor::from(0f32).to_device(device)).collect();
        let scale_t = scale.map(|s| Tensor::from(s as f32).to_device(device));
        let mut want: Vec<Vec<Elem>> =
            p0.iter().map(|ps| ps.iter().map(|&p| Elem { p, m: 0.0, v: 0.0, vmax: 0.0 }).collect()).collect();
        for step in 1..=steps {
            let factor = GRAD_FACTOR[step as usize - 1];
            let g: Vec<Tensor> = grads.iter().map(|v| f(v) * (factor * scale.unwrap_or(1.0))).collect();
            crate::foreach::foreach_add_scalar_(&steps_t, 1.0).unwrap();
            let t = AdamWTensors {
                params: &params,
                grads: &g,
                exp_avgs: &m,
                exp_avg_sqs: &v,
                max_exp_avg_sqs: &vmax,
                state_steps: &steps_t,
                grad_scale: scale_t.as_ref(),
                found_inf: None,
            };
            fused_adamw_(&t, hp).unwrap();
            for (w, gs) in want.iter_mut().zip(&grads) {
                for (e, &gv) in w.iter_mut().zip(gs) {
                    *e = by_hand(*e, gv * factor, step, hp);
                }
            }
        }
        for (i, w) in want.iter().enumerate() {
            let close = |got: Vec<f64>, f: fn(&Elem) -> f64| {
                for (gv, e) in got.iter().zip(w) {
                    assert!((gv - f(e)).abs() < 1e-5, "param {i}: {gv} vs {}", f(e));
                }
            };
            close(values(&params[i]), |e| e.p);
            close(values(&m[i]), |e| e.m);
            close(values(&v[i]), |e| e.v);
            if hp.amsgrad {
                close(values(&vmax[i]), |e| e.vmax);
            }
        }
    }

    #[test]
    fn fused_adamw_on_cpu_matches_a_hand_computed_step() {
        check_against_hand(&hyper(), None, 1, Device::Cpu);
        check_against_hand(&hyper(), None, 3, Device::Cpu);
    }

    #[test]
    fn fused_adamw_amsgrad_maximize_and_grad_scale_match_by_hand() {
        check_against_hand(&AdamWHyper { amsgrad: true, ..hyper() }, None, 3, Device::Cpu);
        check_against_hand(&AdamWHyper { maximize: true, ..hyper() }, None, 2, Device::Cpu);
        check_against_hand(&hyper(), Some(64.0), 2, Device::Cpu);
    }

    #[test]
    fn cuda_fused_adamw_matches_a_hand_computed_step() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let cuda = Device::Cuda(0);
        check_against_hand(&hyper(), None, 3, cuda);
        check_against_hand(&AdamWHyper { amsgrad: true, maximize: true, ..hyper() }, Some(64.0), 3, cuda);
    }

    #[test]
    fn found_inf_skips_the_step() {
        let params = [Tensor::from_slice(&[1.0f32, 2.0])];
        let before = params[0].copy();
        let grads = [Tensor::from_slice(&[0.5f32, -1.0])];
        let (m, v) = ([params[0].zeros_like()], [params[0].zeros_like()]);
        let steps = [Tensor::from(1f32)];
        let found_inf = Tensor::from(1f32);
        let t = AdamWTensors {
            params: &params,
            grads: &grads,
            exp_avgs: &m,
            exp_avg_sqs: &v,
            max_exp_avg_sqs: &[],
            state_steps: &steps,
            grad_scale: None,
            found_inf: Some(&found_inf),
        };
        fused_adamw_(&t, &hyper()).unwrap();
        assert!(params[0].equal(&before));
        assert_eq!(m[0].abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn bad_hyper_parameters_and_lists_are_rejected() {
        for hp in [
            AdamWHyper { lr: -0.1, ..hyper() },
            AdamWHyper { eps: f64::NAN, ..hyper() },
            AdamWHyper { weight_decay: -1.0, ..hyper() },
            AdamWHyper { beta1: 1.0, ..hyper() },
            AdamWHyper { beta2: -0.5, ..hyper() },
        ] {
            assert!(matches!(hp.validate(), Err(Error::InvalidArgument { .. })), "{hp:?}");
        }
        let one = [Tensor::from_slice(&[1.0f32])];
        let t = AdamWTensors {
            params: &one,
            grads: &one,
            exp_avgs: &one,
            exp_avg_sqs: &one,
            max_exp_avg_sqs: &[],
            state_steps: &[],
            grad_scale: None,
            found_inf: None,
        };
        let err = fused_adamw_(&t, &hyper()).unwrap_err();
        assert!(matches!(err, Error::LengthMismatch { what: "state_steps", .. }), "{err}");
        let none = AdamWTensors { params: &[], grads: &[], exp_avgs: &[], exp_avg_sqs: &[], state_steps: &[], ..t };
        fused_adamw_(&none, &hyper()).unwrap();
        let err = fused_adamw_(&AdamWTensors { state_steps: &one, ..t }, &AdamWHyper { amsgrad: true, ..hyper() });
        assert!(matches!(err, Err(Error::LengthMismatch { what: "max_exp_avg_sqs", .. })), "{err:?}");
    }
}

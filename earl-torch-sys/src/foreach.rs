//! Multi-tensor (`_foreach_*`) ops over lists of tensors, and the gradient-norm clipping they compose into.
//!
//! On CUDA each op is one or a few fused kernel launches for the whole list instead of one per tensor, which is what
//! makes an optimizer step over hundreds of parameters cheap; on CPU libtorch falls back to a per-tensor loop with the
//! same results. The in-place ops (trailing `_`) update the tensors' storage through the shared handles, as
//! torch.optim does, and like it they run without autograd recording: a parameter that requires grad can be updated.
//! An empty list is a no-op here (libtorch itself rejects empty lists: "Tensor list must have at least one tensor").
use crate::error::{check, same_len, tensor_ptrs, Error, Result};
use crate::ffi;
use tch::Tensor;
use torch_sys::C_tensor;

/// `torch._foreach_add_(tensors, scalar)`: adds `scalar` to every tensor in place.
pub fn foreach_add_scalar_(tensors: &[Tensor], scalar: f64) -> Result<()> {
    if tensors.is_empty() {
        return Ok(());
    }
    let ptrs = tensor_ptrs(tensors);
    // SAFETY: `ptrs` are live handles borrowed from `tensors` for the call.
    check("foreach_add_scalar_", unsafe { ffi::earl_foreach_add_scalar_(ptrs.as_ptr(), ptrs.len(), scalar) })
}

/// `torch._foreach_add_(tensors, others, alpha=alpha)`: `tensors[i] += alpha · others[i]` in place.
pub fn foreach_add_(tensors: &[Tensor], others: &[Tensor], alpha: f64) -> Result<()> {
    same_len("foreach_add_", "others", tensors.len(), others.len())?;
    if tensors.is_empty() {
        return Ok(());
    }
    let (a, b) = (tensor_ptrs(tensors), tensor_ptrs(others));
    // SAFETY: both lists are live handles of the same length, borrowed for the call.
    check("foreach_add_", unsafe { ffi::earl_foreach_add_list_(a.as_ptr(), b.as_ptr(), a.len(), alpha) })
}

/// `torch._foreach_mul_(tensors, scalar)`: multiplies every tensor by `scalar` in place.
pub fn foreach_mul_scalar_(tensors: &[Tensor], scalar: f64) -> Result<()> {
    if tensors.is_empty() {
        return Ok(());
    }
    let ptrs = tensor_ptrs(tensors);
    // SAFETY: `ptrs` are live handles borrowed from `tensors` for the call.
    check("foreach_mul_scalar_", unsafe { ffi::earl_foreach_mul_scalar_(ptrs.as_ptr(), ptrs.len(), scalar) })
}

/// `torch._foreach_mul_(tensors, factor)` with a 0-dim `factor` tensor: the factor stays on the device, so a
/// clipping coefficient computed there is applied with no host read.
pub fn foreach_mul_tensor_(tensors: &[Tensor], factor: &Tensor) -> Result<()> {
    if tensors.is_empty() {
        return Ok(());
    }
    let ptrs = tensor_ptrs(tensors);
    let factor = factor.as_ptr() as *mut C_tensor;
    // SAFETY: `ptrs` and `factor` are live handles borrowed for the call.
    check("foreach_mul_tensor_", unsafe { ffi::earl_foreach_mul_tensor_(ptrs.as_ptr(), ptrs.len(), factor) })
}

/// `torch._foreach_norm(tensors, ord)`: the `ord`-norm of each tensor (over all its elements), as 0-dim tensors
/// on each input's device.
pub fn foreach_norm(tensors: &[Tensor], ord: f64) -> Result<Vec<Tensor>> {
    if tensors.is_empty() {
        return Ok(Vec::new());
    }
    let ptrs = tensor_ptrs(tensors);
    let mut out: Vec<*mut C_tensor> = vec![std::ptr::null_mut(); ptrs.len()];
    // SAFETY: `ptrs` are live handles; `out` has room for one result per input.
    check("foreach_norm", unsafe { ffi::earl_foreach_norm(ptrs.as_ptr(), ptrs.len(), ord, out.as_mut_ptr()) })?;
    // SAFETY: on success the shim wrote `n` fresh heap tensors, each now owned by exactly one tch Tensor.
    Ok(out.into_iter().map(|p| unsafe { Tensor::from_ptr(p) }).collect())
}

/// `torch.nn.utils.clip_grad_norm_(grads, max_norm)` (L2, `foreach=True`): the global norm of all gradients, and
/// every gradient scaled in place by `min(1, max_norm / (norm + 1e-6))`. Returns the global norm as a 0-dim tensor
/// on the first gradient's device; nothing is read back to the host, so it can run inside a CUDA graph. An empty
/// list returns a zero norm, as torch.
pub fn clip_grad_norm_(grads: &[Tensor], max_norm: f64) -> Result<Tensor> {
    const OP: &str = "clip_grad_norm_";
    // torch does not check: a negative max_norm would flip every gradient, NaN would poison them. +inf is allowed
    // (the coefficient clamps to 1, no clipping).
    if !(max_norm > 0.0) {
        return Err(Error::InvalidArgument { op: OP, message: format!("max_norm must be > 0, got {max_norm}") });
    }
    let Some(first) = grads.first() else {
        return Ok(Tensor::from(0f32));
    };
    let torch = |e: tch::TchError| Error::Torch { op: OP, message: e.to_string() };
    let device = first.device();
    let norms = foreach_norm(grads, 2.0)?;
    // Gradients on several devices: their norms are stacked on the first one's, as torch does.
    let norms: Vec<Tensor> =
        norms.iter().map(|n| n.f_to(device)).collect::<std::result::Result<_, _>>().map_err(torch)?;
    tch::no_grad(|| {
        let total = Tensor::f_stack(&norms, 0).and_then(|s| s.f_norm()).map_err(torch)?;
        // torch: clip_coef = max_norm / (total + 1e-6), clamped at 1 (so gradients are never scaled up).
        let coef = total.f_add_scalar(1e-6).and_then(|d| d.f_reciprocal()).map_err(torch)?;
        let coef = coef.f_mul_scalar(max_norm).and_then(|c| c.f_clamp_max(1.0)).map_err(torch)?;
        foreach_mul_tensor_(grads, &coef)?;
        Ok(total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Three tensors of different shapes with distinct values.
    fn list() -> Vec<Tensor> {
        vec![
            Tensor::from_slice(&[1.0f32, -2.0, 3.0]),
            Tensor::from_slice(&[0.5f32, 4.0, -1.5, 2.0]).reshape([2, 2]),
            Tensor::from_slice(&[-7.0f32]),
        ]
    }

    fn deep_copy(ts: &[Tensor]) -> Vec<Tensor> {
        ts.iter().map(|t| t.copy()).collect()
    }

    fn assert_same(got: &[Tensor], want: &[Tensor]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.size(), w.size());
            assert!(g.allclose(w, 1e-6, 1e-6, false), "{g} vs {w}");
        }
    }

    #[test]
    fn add_scalar_matches_a_per_tensor_loop() {
        let ts = list();
        let want: Vec<Tensor> = ts.iter().map(|t| t + 2.5).collect();
        foreach_add_scalar_(&ts, 2.5).unwrap();
        assert_same(&ts, &want);
    }

    #[test]
    fn add_list_matches_a_per_tensor_loop() {
        let ts = list();
        let others: Vec<Tensor> = ts.iter().map(|t| t * 3.0 - 1.0).collect();
        let want: Vec<Tensor> = ts.iter().zip(&others).map(|(t, o)| t + o * -0.5).collect();
        foreach_add_(&ts, &others, -0.5).unwrap();
        assert_same(&ts, &want);
    }

    #[test]
    fn add_list_rejects_lists_of_different_lengths() {
        let ts = list();
        let err = foreach_add_(&ts, &ts[..2], 1.0).unwrap_err();
        assert!(matches!(err, Error::LengthMismatch { expected: 3, got: 2, .. }), "{err}");
    }

    #[test]
    fn mul_scalar_matches_a_per_tensor_loop() {
        let ts = list();
        let want: Vec<Tensor> = ts.iter().map(|t| t * -1.25).collect();
        foreach_mul_scalar_(&ts, -1.25).unwrap();
        assert_same(&ts, &want);
    }

    #[test]
    fn mul_tensor_matches_a_per_tensor_loop() {
        let ts = list();
        let factor = Tensor::from(0.75f32);
        let want: Vec<Tensor> = ts.iter().map(|t| t * &factor).collect();
        foreach_mul_tensor_(&ts, &factor).unwrap();
        assert_same(&ts, &want);
    }

    #[test]
    fn norm_matches_a_per_tensor_loop_for_several_orders() {
        let ts = list();
        for ord in [1.0, 2.0, 3.0] {
            let want: Vec<Tensor> = ts
                .iter()
                .map(|t| t.abs().pow_tensor_scalar(ord).sum(Kind::Float).pow_tensor_scalar(1.0 / ord))
                .collect();
            let got = foreach_norm(&ts, ord).unwrap();
            assert_same(&got, &want);
        }
    }

    /// On CUDA libtorch takes the fused multi-tensor kernels (the CPU runs its per-tensor fallback): the same ops
    /// must give the per-tensor loop's values there too, and clipping must run inside a CUDA graph (no host read).
    #[test]
    fn cuda_foreach_ops_match_a_per_tensor_loop_and_clip_inside_a_graph() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let cuda = tch::Device::Cuda(0);
        let on_gpu = || list().into_iter().map(|t| t.to_device(cuda)).collect::<Vec<_>>();
        let ts = on_gpu();
        let others: Vec<Tensor> = ts.iter().map(|t| t * 3.0 - 1.0).collect();
        let want: Vec<Tensor> = ts.iter().zip(&others).map(|(t, o)| ((t + o * 0.5) * -2.0 + 1.0) * 0.25).collect();
        foreach_add_(&ts, &others, 0.5).unwrap();
        foreach_mul_scalar_(&ts, -2.0).unwrap();
        foreach_add_scalar_(&ts, 1.0).unwrap();
        foreach_mul_tensor_(&ts, &Tensor::from(0.25f32).to_device(cuda)).unwrap();
        assert_same(&ts, &want);
        let norms = foreach_norm(&ts, 2.0).unwrap();
        assert_same(&norms, &ts.iter().map(|t| t.norm()).collect::<Vec<_>>());

        let grads = on_gpu();
        let side = crate::stream::CudaStream::from_pool(0, false).unwrap();
        {
            let _s = crate::stream::StreamGuard::new(side).unwrap();
            let _ = clip_grad_norm_(&deep_copy(&grads), 2.0).unwrap(); // warm-up
            side.synchronize().unwrap();
        }
        let (graph, total) = crate::graph::CudaGraph::capture(None, &side, || clip_grad_norm_(&grads, 2.0)).unwrap();
        let total = total.unwrap();
        graph.replay().unwrap();
        let norm = 85.5f64.sqrt();
        assert!((total.double_value(&[]) - norm).abs() < 1e-4);
        let want: Vec<Tensor> = on_gpu().iter().map(|t| t * (2.0 / (norm + 1e-6))).collect();
        assert_same(&grads, &want);
    }

    #[test]
    fn empty_lists_are_a_no_op() {
        assert!(foreach_norm(&[], 2.0).unwrap().is_empty());
        foreach_add_scalar_(&[], 1.0).unwrap();
        foreach_add_(&[], &[], 1.0).unwrap();
        foreach_mul_scalar_(&[], 2.0).unwrap();
        foreach_mul_tensor_(&[], &Tensor::from(2f32)).unwrap();
    }

    #[test]
    fn in_place_ops_update_parameters_that_require_grad() {
        let ts: Vec<Tensor> = list().into_iter().map(|t| t.set_requires_grad(true)).collect();
        let want: Vec<Tensor> = tch::no_grad(|| ts.iter().map(|t| t * 2.0).collect());
        foreach_mul_scalar_(&ts, 2.0).unwrap();
        assert_same(&ts, &want);
    }

    #[test]
    fn clip_grad_norm_scales_down_only_above_max_norm() {
        let grads = list();
        // ‖g‖ over all elements: 1 + 4 + 9 + 0.25 + 16 + 2.25 + 4 + 49 = 85.5.
        let norm = 85.5f64.sqrt();
        let before = deep_copy(&grads);
        let total = clip_grad_norm_(&grads, 2.0).unwrap();
        assert!((total.double_value(&[]) - norm).abs() < 1e-5);
        let coef = 2.0 / (norm + 1e-6);
        let want: Vec<Tensor> = before.iter().map(|t| t * coef).collect();
        assert_same(&grads, &want);

        let grads = list();
        let _ = clip_grad_norm_(&grads, 100.0).unwrap();
        assert_same(&grads, &list());
    }

    #[test]
    fn clip_grad_norm_of_nothing_is_zero_and_a_max_norm_not_above_zero_is_rejected() {
        assert_eq!(clip_grad_norm_(&[], 1.0).unwrap().double_value(&[]), 0.0);
        for bad in [f64::NAN, 0.0, -1.0] {
            let err = clip_grad_norm_(&list(), bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        }
        let grads = list();
        let _ = clip_grad_norm_(&grads, f64::INFINITY).unwrap();
        assert_same(&grads, &list());
    }
}

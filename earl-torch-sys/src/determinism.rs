//! The global determinism switch: `torch.use_deterministic_algorithms(on)` (with `warn_only=False`, so an op with
//! no deterministic implementation raises instead of warning) plus cuDNN's `deterministic` and `benchmark` flags,
//! the settings PyTorch's reproducibility notes list. tch 0.24 reaches only the cuDNN flags.
//!
//! One caveat torch documents: with determinism on, cuBLAS matmuls on CUDA raise unless `CUBLAS_WORKSPACE_CONFIG`
//! is `:4096:8` or `:16:8` in the environment. [`set_deterministic`] warns (tracing) when it is missing; it cannot
//! set it safely itself once other threads run.
use crate::error::{check, Result};
use crate::ffi;

/// The determinism-related flags of libtorch's global context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Determinism {
    /// `torch.are_deterministic_algorithms_enabled()`.
    pub algorithms: bool,
    /// `torch.is_deterministic_algorithms_warn_only_enabled()`.
    pub warn_only: bool,
    /// `torch.backends.cudnn.deterministic`.
    pub cudnn_deterministic: bool,
    /// `torch.backends.cudnn.benchmark` (timing-based kernel choice, off under determinism).
    pub cudnn_benchmark: bool,
}

/// Turns deterministic algorithms on (and cuDNN deterministic on, benchmark off) or off (cuDNN deterministic off;
/// benchmark is left as it is). Process-wide, for every thread.
pub fn set_deterministic(on: bool) -> Result<()> {
    if on && tch::Cuda::is_available() && std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        tracing::warn!(
            "deterministic algorithms on CUDA need CUBLAS_WORKSPACE_CONFIG=:4096:8; cuBLAS matmuls will fail"
        );
    }
    // SAFETY: plain flag setters on libtorch's global context.
    check("set_deterministic", unsafe { ffi::earl_set_deterministic(on.into()) })
}

/// The current flags.
pub fn determinism() -> Result<Determinism> {
    let (mut algorithms, mut warn_only, mut cudnn_deterministic, mut cudnn_benchmark) = (0, 0, 0, 0);
    // SAFETY: the shim writes the four flags.
    check("determinism", unsafe {
        ffi::earl_get_determinism(&mut algorithms, &mut warn_only, &mut cudnn_deterministic, &mut cudnn_benchmark)
    })?;
    Ok(Determinism {
        algorithms: algorithms != 0,
        warn_only: warn_only != 0,
        cudnn_deterministic: cudnn_deterministic != 0,
        cudnn_benchmark: cudnn_benchmark != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// One test for the whole round trip: the flags are process-wide, and parallel tests toggling them would race.
    #[test]
    fn set_deterministic_round_trips_and_is_enforced() {
        let before = determinism().unwrap();
        tch::Cuda::cudnn_set_benchmark(true);
        set_deterministic(true).unwrap();
        let on = determinism().unwrap();
        assert_eq!(
            on,
            Determinism { algorithms: true, warn_only: false, cudnn_deterministic: true, cudnn_benchmark: false }
        );
        // The switch is the one libtorch's kernels consult: `put` without accumulation has no deterministic
        // implementation on any device and now raises (warn_only is off).
        let put = || {
            let t = Tensor::zeros([4], (Kind::Float, Device::Cpu));
            t.f_put(&Tensor::from_slice(&[0i64, 1]), &Tensor::from_slice(&[1f32, 2.0]), false)
        };
        assert!(put().is_err());

        set_deterministic(false).unwrap();
        let off = determinism().unwrap();
        assert!(!off.algorithms && !off.cudnn_deterministic && !off.warn_only);
        assert!(!off.cudnn_benchmark, "turning determinism off must not re-enable benchmark");
        assert!(put().is_ok());

        set_deterministic(before.algorithms).unwrap();
        tch::Cuda::cudnn_set_benchmark(before.cudnn_benchmark);
    }
}

//! libtorch features that tch 0.24 does not expose, for the GPU engine and training: CUDA graph capture and replay
//! with shared memory pools ([`graph`]), pool and current streams ([`stream`]), the multi-tensor and fused optimizer
//! ops ([`foreach`], [`adamw`]), the global determinism switch ([`determinism`]), and the seam for c10d process
//! groups ([`process_group`]).
//!
//! One crate, two layers: [`ffi`] holds the raw `extern "C"` functions of the C++ shim (`shim/earl_torch_shim.cpp`,
//! compiled by build.rs with the `cc` crate against the torch wheel's headers), and every other module is the safe
//! API over it. The shim works on tch's own tensor handles (`Tensor::as_ptr`, an `at::Tensor*`), so there is no
//! copy and no second tensor type, and it catches every C++ exception at the boundary: errors come back as
//! [`Error`], never as a panic or an abort. CUDA entry points answer [`Error::NeedsCuda`] on a machine without a GPU.
//!
//! earl-core's graph decode engine (`generate::graph`) uses the graphs and streams; training wires in the rest.
pub mod adamw;
pub mod determinism;
pub mod error;
pub mod ffi;
pub mod foreach;
pub mod graph;
pub mod process_group;
pub mod stream;

pub use adamw::{fused_adamw_, AdamWHyper, AdamWTensors};
pub use determinism::{determinism, set_deterministic, Determinism};
pub use error::{Error, Result};
pub use foreach::{
    clip_grad_norm_, foreach_add_, foreach_add_scalar_, foreach_mul_scalar_, foreach_mul_tensor_, foreach_norm,
};
pub use graph::{CudaGraph, GraphPool, PoolId};
pub use process_group::{LocalGroup, ProcessGroup, ReduceOp};
pub use stream::{CudaStream, StreamGuard};

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::{Mutex, MutexGuard};

    static CUDA: Mutex<()> = Mutex::new(());

    /// Opens a `cuda_*` test: `None` (after a skip message) without CUDA, else a lock that serialises the CUDA
    /// tests. A capture in torch's default (global) mode forbids unsafe CUDA calls on every thread, so a test
    /// allocating on another test thread would break it.
    pub(crate) fn cuda_test() -> Option<MutexGuard<'static, ()>> {
        if !tch::Cuda::is_available() {
            eprintln!("skipped: needs CUDA");
            return None;
        }
        Some(CUDA.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

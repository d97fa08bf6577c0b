//! Raw bindings to the C++ shim (`shim/earl_torch_shim.cpp`). Every fallible function returns null on success or
//! a one-line message owned by the caller, released with [`earl_torch_free_error`]; [`crate::error::check`] does
//! that. Tensors are tch's `C_tensor` handles, i.e. `at::Tensor*`. Nothing here is safe to call directly: use the
//! safe modules of this crate.
use std::os::raw::{c_char, c_void};
use torch_sys::C_tensor;

/// Mirror of the shim's `EarlAdamW`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EarlAdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub amsgrad: i32,
    pub maximize: i32,
}

/// Mirror of the shim's `EarlAdamWTensors`: `n` tensors in each list, `n_max` in `max_exp_avg_sqs`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EarlAdamWTensors {
    pub params: *const *mut C_tensor,
    pub grads: *const *mut C_tensor,
    pub exp_avgs: *const *mut C_tensor,
    pub exp_avg_sqs: *const *mut C_tensor,
    pub max_exp_avg_sqs: *const *mut C_tensor,
    pub state_steps: *const *mut C_tensor,
    pub n: usize,
    pub n_max: usize,
    pub grad_scale: *mut C_tensor,
    pub found_inf: *mut C_tensor,
}

/// An `at::cuda::CUDAGraph*`.
pub type RawGraph = *mut c_void;
/// An `at::cuda::MemPool*` owned by a [`crate::GraphPool`].
pub type RawMemPool = *mut c_void;

extern "C" {
    pub fn earl_torch_free_error(error: *mut c_char);

    pub fn earl_foreach_add_scalar_(tensors: *const *mut C_tensor, n: usize, scalar: f64) -> *mut c_char;
    pub fn earl_foreach_add_list_(
        tensors: *const *mut C_tensor,
        others: *const *mut C_tensor,
        n: usize,
        alpha: f64,
    ) -> *mut c_char;
    pub fn earl_foreach_mul_scalar_(tensors: *const *mut C_tensor, n: usize, scalar: f64) -> *mut c_char;
    pub fn earl_foreach_mul_tensor_(tensors: *const *mut C_tensor, n: usize, factor: *mut C_tensor) -> *mut c_char;
    pub fn earl_foreach_norm(tensors: *const *mut C_tensor, n: usize, ord: f64, out: *mut *mut C_tensor)
        -> *mut c_char;
    pub fn earl_fused_adamw_(tensors: *const EarlAdamWTensors, hp: *const EarlAdamW) -> *mut c_char;

    pub fn earl_set_deterministic(on: i32) -> *mut c_char;
    pub fn earl_get_determinism(
        algorithms: *mut i32,
        warn_only: *mut i32,
        cudnn_deterministic: *mut i32,
        cudnn_benchmark: *mut i32,
    ) -> *mut c_char;

    pub fn earl_cuda_stream_from_pool(
        high_priority: i32,
        device: i32,
        id: *mut i64,
        out_device: *mut i32,
    ) -> *mut c_char;
    pub fn earl_cuda_current_stream(device: i32, id: *mut i64, out_device: *mut i32) -> *mut c_char;
    pub fn earl_cuda_default_stream(device: i32, id: *mut i64, out_device: *mut i32) -> *mut c_char;
    pub fn earl_cuda_set_current_stream(id: i64, device: i32) -> *mut c_char;
    pub fn earl_cuda_stream_synchronize(id: i64, device: i32) -> *mut c_char;

    pub fn earl_cuda_mempool_new(out: *mut RawMemPool, pool_a: *mut u64, pool_b: *mut u64) -> *mut c_char;
    pub fn earl_cuda_mempool_delete(pool: RawMemPool);
    pub fn earl_cuda_graph_new(out: *mut RawGraph) -> *mut c_char;
    pub fn earl_cuda_graph_delete(graph: RawGraph);
    pub fn earl_cuda_graph_capture_begin(graph: RawGraph, pool_a: u64, pool_b: u64, mode: i32) -> *mut c_char;
    pub fn earl_cuda_graph_capture_end(graph: RawGraph) -> *mut c_char;
    pub fn earl_cuda_graph_replay(graph: RawGraph) -> *mut c_char;
    pub fn earl_cuda_graph_reset(graph: RawGraph) -> *mut c_char;
    pub fn earl_cuda_graph_pool(graph: RawGraph, pool_a: *mut u64, pool_b: *mut u64) -> *mut c_char;
}

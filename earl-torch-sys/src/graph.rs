//! CUDA graphs (`at::cuda::CUDAGraph`, what `torch.cuda.graph` wraps): record the kernels a closure launches once,
//! then relaunch them all with one [`CudaGraph::replay`], which removes the per-kernel launch overhead that bounds
//! small-batch decoding.
//!
//! The rules are torch's: capture runs on a non-default stream (made current for the capture by [`CudaGraph::capture`]);
//! a graph reads and writes the same device addresses at every replay, so inputs are updated in place (`copy_` into
//! the tensors the capture read) and outputs are the tensors the closure returned; no host synchronisation (`.item()`,
//! a device→host copy) may happen during capture. Warm the closure up once on the side stream before capturing, as
//! torch's docs ask, so lazy initialisation (cuBLAS handles, allocator pools) does not land in the graph.
//! Graphs that are replayed in the order they were captured can share one memory [`GraphPool`]
//! (`torch.cuda.MemPool`), which is how one decode graph per batch-size bucket stays cheap in memory.
use crate::error::{check, require_cuda, Error, Result};
use crate::ffi;
use crate::stream::{CudaStream, StreamGuard};

/// A memory pool id (`MempoolId_t`): which pool a graph captured into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolId {
    a: u64,
    b: u64,
}

/// A memory pool that several captures share, alive as long as this value (an `at::cuda::MemPool`, what
/// `torch.cuda.MemPool` wraps). A bare `graph_pool_handle()` id is not enough: libtorch frees a pool when the last
/// graph captured into it is dropped and then refuses the id to the next capture with an internal assert
/// (`use_count > 0`, CUDACachingAllocator), which is what recapturing one bucket of a decode engine does.
#[derive(Debug)]
pub struct GraphPool {
    raw: ffi::RawMemPool,
    id: PoolId,
}

// SAFETY: a MemPool is an id plus a use count held in the caching allocator, which locks; it has no thread affinity.
unsafe impl Send for GraphPool {}

impl GraphPool {
    /// A fresh pool on the current CUDA device.
    pub fn new() -> Result<GraphPool> {
        const OP: &str = "cuda_mempool_new";
        require_cuda(OP)?;
        let mut raw: ffi::RawMemPool = std::ptr::null_mut();
        let (mut a, mut b) = (0u64, 0u64);
        // SAFETY: the shim writes a heap MemPool, owned by the returned value, and its id.
        check(OP, unsafe { ffi::earl_cuda_mempool_new(&mut raw, &mut a, &mut b) })?;
        Ok(GraphPool { raw, id: PoolId { a, b } })
    }

    /// The pool's id.
    pub fn id(&self) -> PoolId {
        self.id
    }
}

impl Drop for GraphPool {
    fn drop(&mut self) {
        // SAFETY: `raw` came from earl_cuda_mempool_new and is deleted once; graphs still captured into the pool
        // hold their own references, so their memory stays valid.
        unsafe { ffi::earl_cuda_mempool_delete(self.raw) }
    }
}

/// One captured CUDA graph. Dropping it releases the graph (its pool memory returns to the pool's other graphs).
#[derive(Debug)]
pub struct CudaGraph {
    raw: ffi::RawGraph,
}

// SAFETY: a CUDAGraph has no thread affinity (replay launches on the calling thread's current stream); it is not
// Sync because replay and reset take `&self`/`&mut self` without internal locking.
unsafe impl Send for CudaGraph {}

/// Ends a capture that the closure left by unwinding, so the stream is not left capturing.
struct EndOnUnwind<'a>(Option<&'a CudaGraph>);

impl Drop for EndOnUnwind<'_> {
    fn drop(&mut self) {
        if let Some(graph) = self.0 {
            // SAFETY: the graph is mid-capture; ending it is the only way to release the stream.
            let _ = check("cuda_graph_capture_end", unsafe { ffi::earl_cuda_graph_capture_end(graph.raw) });
        }
    }
}

impl CudaGraph {
    /// Captures the kernels `f` launches on `stream` (made current for the capture, restored after), in `pool` or in
    /// a private pool. Returns the graph, not yet replayed (the capture itself computed nothing), and `f`'s value,
    /// usually the output tensors that every replay overwrites.
    pub fn capture<R>(pool: Option<&GraphPool>, stream: &CudaStream, f: impl FnOnce() -> R) -> Result<(CudaGraph, R)> {
        const OP: &str = "cuda_graph_capture";
        require_cuda(OP)?;
        if stream.is_default()? {
            return Err(Error::InvalidArgument {
                op: OP,
                message: "a CUDA graph cannot be captured on the default stream; use CudaStream::from_pool".into(),
            });
        }
        let graph = CudaGraph::new()?;
        let _stream = StreamGuard::new(*stream)?;
        let (a, b) = pool.map_or((0, 0), |p| (p.id.a, p.id.b));
        // SAFETY: a fresh graph; mode 0 is cudaStreamCaptureModeGlobal, torch's default.
        check(OP, unsafe { ffi::earl_cuda_graph_capture_begin(graph.raw, a, b, 0) })?;
        let mut unwind = EndOnUnwind(Some(&graph));
        let value = f();
        unwind.0 = None;
        drop(unwind);
        // SAFETY: the capture begun above.
        check(OP, unsafe { ffi::earl_cuda_graph_capture_end(graph.raw) })?;
        Ok((graph, value))
    }

    fn new() -> Result<CudaGraph> {
        let mut raw: ffi::RawGraph = std::ptr::null_mut();
        // SAFETY: the shim checks for CUDA and writes a heap CUDAGraph, owned by the returned value.
        check("cuda_graph_new", unsafe { ffi::earl_cuda_graph_new(&mut raw) })?;
        Ok(CudaGraph { raw })
    }

    /// Relaunches the captured work on the calling thread's current stream.
    pub fn replay(&self) -> Result<()> {
        // SAFETY: a live, captured graph (reset graphs refuse inside libtorch with an error).
        check("cuda_graph_replay", unsafe { ffi::earl_cuda_graph_replay(self.raw) })
    }

    /// Frees the graph's instantiation and pool claim early; replaying afterwards is an error.
    pub fn reset(&mut self) -> Result<()> {
        // SAFETY: a live graph.
        check("cuda_graph_reset", unsafe { ffi::earl_cuda_graph_reset(self.raw) })
    }

    /// The id of the memory pool this graph captured into (`CUDAGraph::pool()`).
    pub fn pool_id(&self) -> Result<PoolId> {
        let (mut a, mut b) = (0u64, 0u64);
        // SAFETY: a live graph; the shim writes the pair.
        check("cuda_graph_pool", unsafe { ffi::earl_cuda_graph_pool(self.raw, &mut a, &mut b) })?;
        Ok(PoolId { a, b })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `raw` came from earl_cuda_graph_new and is deleted once.
        unsafe { ffi::earl_cuda_graph_delete(self.raw) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn graph_functions_fail_cleanly_without_a_gpu() {
        if tch::Cuda::is_available() {
            eprintln!("skipped: CUDA is available (the cuda_ tests cover this machine)");
            return;
        }
        assert!(matches!(GraphPool::new(), Err(Error::NeedsCuda { .. })));
        let fake = CudaStream { id: 1, device: 0 };
        let mut ran = false;
        let r = CudaGraph::capture(None, &fake, || ran = true);
        assert!(matches!(r, Err(Error::NeedsCuda { .. })), "{r:?}");
        assert!(!ran, "the closure must not run when capture cannot begin");
        // The shim's own check: reached only through the raw constructor.
        let err = CudaGraph::new().unwrap_err();
        assert!(matches!(&err, Error::Torch { message, .. } if message.contains("needs CUDA")), "{err}");
    }

    /// The step captured in the tests: y = relu(x · w + 1), a matmul and two elementwise kernels.
    fn step(x: &Tensor, w: &Tensor) -> Tensor {
        (x.matmul(w) + 1.0).relu()
    }

    #[test]
    fn cuda_graph_replay_matches_eager_with_updated_inputs() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let dev = Device::Cuda(0);
        tch::manual_seed(7);
        let w = Tensor::randn([64, 32], (Kind::Float, dev));
        let mut x = Tensor::zeros([8, 64], (Kind::Float, dev));
        let side = CudaStream::from_pool(0, false).unwrap();
        {
            let _s = StreamGuard::new(side).unwrap();
            let _ = step(&x, &w); // warm-up on the side stream
            side.synchronize().unwrap();
        }
        let pool = GraphPool::new().unwrap();
        let (graph, y) = CudaGraph::capture(Some(&pool), &side, || step(&x, &w)).unwrap();
        for i in 0..3 {
            let input = Tensor::randn([8, 64], (Kind::Float, dev)) * (i + 1) as f64;
            x.copy_(&input);
            graph.replay().unwrap();
            let eager = step(&input, &w);
            assert!(y.allclose(&eager, 1e-5, 1e-5, false), "replay {i} differs from eager");
        }
        // A second graph in the same pool, captured after the first and replayed after it, sees its output.
        let (second, z) = CudaGraph::capture(Some(&pool), &side, || &y * 2.0).unwrap();
        graph.replay().unwrap();
        second.replay().unwrap();
        assert!(z.allclose(&(&y * 2.0), 1e-6, 1e-6, false));
        assert_eq!(graph.pool_id().unwrap(), pool.id());
    }

    /// What a decode engine does when one bucket's settings change: its only graph is dropped and the step captured
    /// again into the same pool (a bare pool id fails here with libtorch's `use_count > 0` assert).
    #[test]
    fn cuda_graph_pool_outlives_its_graphs_and_takes_a_new_capture() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let x = Tensor::ones([4], (Kind::Float, Device::Cuda(0)));
        let side = CudaStream::from_pool(0, false).unwrap();
        let pool = GraphPool::new().unwrap();
        for round in 0..3 {
            let (graph, y) = CudaGraph::capture(Some(&pool), &side, || &x + f64::from(round)).unwrap();
            graph.replay().unwrap();
            tch::Cuda::synchronize(0);
            assert_eq!(y.sum(Kind::Float).double_value(&[]), 4.0 * (1.0 + f64::from(round)));
            assert_eq!(graph.pool_id().unwrap(), pool.id());
            drop(graph);
        }
    }

    #[test]
    fn cuda_graph_capture_refuses_the_default_stream_and_restores_the_stream() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let default = CudaStream::default_stream(0).unwrap();
        let err = CudaGraph::capture(None, &default, || ()).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let before = CudaStream::current(0).unwrap();
        let side = CudaStream::from_pool(0, false).unwrap();
        let x = Tensor::ones([4], (Kind::Float, Device::Cuda(0)));
        let (_g, current) = CudaGraph::capture(None, &side, || {
            let _ = &x + 1.0;
            CudaStream::current(0).unwrap()
        })
        .unwrap();
        assert_eq!(current, side);
        assert_eq!(CudaStream::current(0).unwrap(), before);
    }

    #[test]
    fn cuda_graph_capture_ends_the_capture_when_the_closure_panics() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let before = CudaStream::current(0).unwrap();
        let side = CudaStream::from_pool(0, false).unwrap();
        let x = Tensor::ones([4], (Kind::Float, Device::Cuda(0)));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            CudaGraph::capture(None, &side, || {
                let _ = &x + 1.0;
                panic!("closure failed mid-capture");
            })
        }));
        assert!(r.is_err());
        assert_eq!(CudaStream::current(0).unwrap(), before);
        // The side stream is no longer capturing: eager work on it runs and can be synchronized.
        let _s = StreamGuard::new(side).unwrap();
        let y = &x * 3.0;
        side.synchronize().unwrap();
        assert_eq!(y.sum(Kind::Float).double_value(&[]), 12.0);
    }

    #[test]
    fn cuda_graph_reset_then_replay_is_an_error() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let x = Tensor::ones([4], (Kind::Float, Device::Cuda(0)));
        let side = CudaStream::from_pool(0, false).unwrap();
        let (mut graph, y) = CudaGraph::capture(None, &side, || &x + 1.0).unwrap();
        graph.replay().unwrap();
        tch::Cuda::synchronize(0);
        assert_eq!(y.sum(Kind::Float).double_value(&[]), 8.0);
        graph.reset().unwrap();
        assert!(matches!(graph.replay(), Err(Error::Torch { .. })));
    }
}

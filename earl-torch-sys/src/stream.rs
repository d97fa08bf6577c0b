//! CUDA streams: pool streams (`c10::cuda::getStreamFromPool`), the current and default stream of a device, and
//! [`StreamGuard`], which makes a stream current for a scope and restores the previous one on drop (torch's
//! `torch.cuda.stream(s)` context manager).
//!
//! libtorch's current stream is per thread and per device, and every tch op launches on it; CUDA graph capture
//! ([`crate::graph`]) needs a non-default current stream. A [`CudaStream`] is c10's packed (stream id, device)
//! pair: copyable and non-owning, since pool and default streams live as long as the process.
use crate::error::{check, require_cuda, Error, Result};
use crate::ffi;
use std::marker::PhantomData;

/// One CUDA stream of one device, as c10 identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CudaStream {
    pub(crate) id: i64,
    pub(crate) device: i32,
}

fn device_arg(op: &'static str, device: usize) -> Result<i32> {
    require_cuda(op)?;
    i32::try_from(device).map_err(|_| Error::InvalidArgument { op, message: format!("no CUDA device {device}") })
}

/// Calls a shim function that writes one stream.
fn read_stream(
    op: &'static str,
    call: impl FnOnce(*mut i64, *mut i32) -> *mut std::os::raw::c_char,
) -> Result<CudaStream> {
    let (mut id, mut device) = (0i64, 0i32);
    check(op, call(&mut id, &mut device))?;
    Ok(CudaStream { id, device })
}

impl CudaStream {
    /// A stream from c10's per-device pool (round-robin over 32 streams per priority, as `torch.cuda.Stream()`).
    pub fn from_pool(device: usize, high_priority: bool) -> Result<CudaStream> {
        const OP: &str = "cuda_stream_from_pool";
        let d = device_arg(OP, device)?;
        // SAFETY: the shim checks the device and writes the stream.
        read_stream(OP, |id, out| unsafe { ffi::earl_cuda_stream_from_pool(high_priority.into(), d, id, out) })
    }

    /// The calling thread's current stream on `device`.
    pub fn current(device: usize) -> Result<CudaStream> {
        const OP: &str = "cuda_current_stream";
        let d = device_arg(OP, device)?;
        // SAFETY: as above.
        read_stream(OP, |id, out| unsafe { ffi::earl_cuda_current_stream(d, id, out) })
    }

    /// The default (legacy, id 0) stream of `device`.
    pub fn default_stream(device: usize) -> Result<CudaStream> {
        const OP: &str = "cuda_default_stream";
        let d = device_arg(OP, device)?;
        // SAFETY: as above.
        read_stream(OP, |id, out| unsafe { ffi::earl_cuda_default_stream(d, id, out) })
    }

    /// The device index.
    pub fn device(&self) -> usize {
        self.device as usize
    }

    /// Whether this is its device's default stream (on which CUDA graphs cannot be captured).
    pub fn is_default(&self) -> Result<bool> {
        Ok(*self == CudaStream::default_stream(self.device())?)
    }

    /// Blocks the host until all work queued on this stream is done.
    pub fn synchronize(&self) -> Result<()> {
        const OP: &str = "cuda_stream_synchronize";
        require_cuda(OP)?;
        // SAFETY: the shim unpacks and checks the stream's device.
        check(OP, unsafe { ffi::earl_cuda_stream_synchronize(self.id, self.device) })
    }

    /// Makes this stream the calling thread's current stream on its device (no restore; see [`StreamGuard`]).
    pub(crate) fn make_current(&self) -> Result<()> {
        const OP: &str = "cuda_set_current_stream";
        require_cuda(OP)?;
        // SAFETY: as above.
        check(OP, unsafe { ffi::earl_cuda_set_current_stream(self.id, self.device) })
    }
}

/// Makes a stream current on its device for the guard's lifetime; on drop the previous current stream of that
/// device is restored. Not `Send`: the current stream belongs to the thread that set it.
#[derive(Debug)]
#[must_use = "the previous stream is restored when the guard drops"]
pub struct StreamGuard {
    previous: CudaStream,
    _not_send: PhantomData<*const ()>,
}

impl StreamGuard {
    /// Makes `stream` current, remembering the stream it replaces.
    pub fn new(stream: CudaStream) -> Result<StreamGuard> {
        let previous = CudaStream::current(stream.device())?;
        stream.make_current()?;
        Ok(StreamGuard { previous, _not_send: PhantomData })
    }

    /// The stream that is restored on drop.
    pub fn previous(&self) -> CudaStream {
        self.previous
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // Restoring a stream that was current a moment ago cannot fail short of a broken CUDA context; a drop can
        // only report it.
        if let Err(e) = self.previous.make_current() {
            tracing::error!("StreamGuard could not restore the previous stream: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_functions_fail_cleanly_without_a_gpu() {
        if tch::Cuda::is_available() {
            eprintln!("skipped: CUDA is available (the cuda_ tests cover this machine)");
            return;
        }
        let needs = |r: Result<CudaStream>| assert!(matches!(r, Err(Error::NeedsCuda { .. })), "{r:?}");
        needs(CudaStream::from_pool(0, false));
        needs(CudaStream::current(0));
        needs(CudaStream::default_stream(0));
        let fake = CudaStream { id: 0, device: 0 };
        assert!(matches!(fake.synchronize(), Err(Error::NeedsCuda { .. })));
        assert!(matches!(fake.is_default(), Err(Error::NeedsCuda { .. })));
        assert!(matches!(StreamGuard::new(fake), Err(Error::NeedsCuda { .. })));
        assert_eq!(
            CudaStream::current(0).unwrap_err().to_string(),
            "cuda_current_stream needs CUDA, and no CUDA device is available"
        );
    }

    #[test]
    fn cuda_stream_guard_restores_the_previous_stream() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let before = CudaStream::current(0).unwrap();
        let side = CudaStream::from_pool(0, false).unwrap();
        assert!(!side.is_default().unwrap());
        assert!(CudaStream::default_stream(0).unwrap().is_default().unwrap());
        {
            let guard = StreamGuard::new(side).unwrap();
            assert_eq!(guard.previous(), before);
            assert_eq!(CudaStream::current(0).unwrap(), side);
            // Work queued under the guard runs on `side`; synchronizing it completes it.
            let t = tch::Tensor::ones([1024], (tch::Kind::Float, tch::Device::Cuda(0))) * 2.0;
            side.synchronize().unwrap();
            assert_eq!(t.sum(tch::Kind::Float).double_value(&[]), 2048.0);
            let nested = CudaStream::from_pool(0, true).unwrap();
            {
                let _inner = StreamGuard::new(nested).unwrap();
                assert_eq!(CudaStream::current(0).unwrap(), nested);
            }
            assert_eq!(CudaStream::current(0).unwrap(), side);
        }
        assert_eq!(CudaStream::current(0).unwrap(), before);
    }

    #[test]
    fn cuda_stream_on_a_missing_device_is_an_error() {
        let Some(_cuda) = crate::test_support::cuda_test() else { return };
        let n = tch::Cuda::device_count() as usize;
        let err = CudaStream::from_pool(n, false).unwrap_err();
        assert!(matches!(err, Error::Torch { .. }), "{err}");
    }
}

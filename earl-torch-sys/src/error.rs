//! The crate's typed error and the boundary helpers: [`check`] turns the shim's error string into
//! [`Error::Torch`], [`require_cuda`] answers [`Error::NeedsCuda`] before any CUDA entry point is reached on a
//! machine without a device, and [`tensor_ptrs`] lends tch handles to the shim.
use std::ffi::CStr;
use std::os::raw::c_char;
use tch::Tensor;
use torch_sys::C_tensor;

/// Everything that can go wrong in this crate; every message is one line naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CUDA entry point was called where no CUDA device is available.
    #[error("{op} needs CUDA, and no CUDA device is available")]
    NeedsCuda { op: &'static str },
    /// libtorch raised a C++ exception; `message` is its text without the C++ backtrace.
    #[error("{op}: libtorch error: {message}")]
    Torch { op: &'static str, message: String },
    /// Two tensor lists that must pair up element by element have different lengths.
    #[error("{op}: {what} has {got} tensors, expected {expected}")]
    LengthMismatch { op: &'static str, what: &'static str, expected: usize, got: usize },
    /// An argument is out of its domain (a negative learning rate, a β outside [0, 1), …).
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Turns the shim's return value into a result, releasing the message.
pub(crate) fn check(op: &'static str, error: *mut c_char) -> Result<()> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from the shim's dup_message, released exactly once here.
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    unsafe { crate::ffi::earl_torch_free_error(error) };
    Err(Error::Torch { op, message })
}

/// [`Error::NeedsCuda`] unless tch sees a CUDA device.
pub(crate) fn require_cuda(op: &'static str) -> Result<()> {
    if tch::Cuda::is_available() {
        Ok(())
    } else {
        Err(Error::NeedsCuda { op })
    }
}

/// The `at::Tensor*` handles of `tensors`, valid while `tensors` is borrowed. The shim copies each `at::Tensor`
/// (a reference-count bump) before use and never frees them.
pub(crate) fn tensor_ptrs(tensors: &[Tensor]) -> Vec<*mut C_tensor> {
    tensors.iter().map(|t| t.as_ptr() as *mut C_tensor).collect()
}

/// [`Error::LengthMismatch`] unless `got == expected`.
pub(crate) fn same_len(op: &'static str, what: &'static str, expected: usize, got: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch { op, what, expected, got })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_errors_become_typed_one_line_errors() {
        // Paired tensors of different shapes: libtorch's own check throws, and the shim must catch it.
        let a = [Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu))];
        let b = [Tensor::zeros([3], (tch::Kind::Float, tch::Device::Cpu))];
        let err = crate::foreach::foreach_add_(&a, &b, 1.0).unwrap_err();
        let Error::Torch { op, message } = &err else { panic!("expected a libtorch error, got {err:?}") };
        assert_eq!(*op, "foreach_add_");
        assert!(!message.is_empty() && !message.contains('\n'), "{message:?}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn length_mismatch_is_reported_before_the_shim() {
        assert!(same_len("op", "others", 2, 2).is_ok());
        let err = same_len("op", "others", 2, 3).unwrap_err();
        assert_eq!(err.to_string(), "op: others has 3 tensors, expected 2");
    }
}

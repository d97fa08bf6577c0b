//! Parsing of user-facing device and dtype names (`cpu`, `cuda`, `cuda:1`; `f32`, `bf16`, `f16`), and the one
//! process-wide numerics switch: whether cuDNN convolutions may use TF32. libtorch lets cuDNN convolutions run f32
//! inputs through TF32 tensor cores by default (`torch.backends.cudnn.allow_tf32 = True`), which rounds their
//! operands to 10 mantissa bits: the vision tokenizer in "f32" on a GPU then differs from the f32 reference by
//! ~1e-3 and flips codes. Here f32 means f32: TF32 is off unless the user asks for it (`--allow-tf32`). f32 matmuls
//! already stay out of TF32 in libtorch (`torch.backends.cuda.matmul.allow_tf32 = False`), so only convolutions read
//! this switch. It is global, like torch's own flag, because it describes the process's numerics, not a model.
use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Device, Kind};

use crate::error::{Error, Result};

/// `cpu`, `cuda` (first GPU), `cuda:N`, or `auto`: the first GPU when libtorch sees one, else the CPU (the default
/// of every command). A GPU that is named but not present is an error, not a silent CPU fallback.
pub fn parse_device(s: &str) -> Result<Device> {
    // Before libtorch is first asked about CUDA, which it answers once for the life of the process.
    crate::torch_cuda::load();
    let d = match s.trim().to_ascii_lowercase().as_str() {
        "auto" if tch::Cuda::is_available() => Device::Cuda(0),
        "auto" | "cpu" => Device::Cpu,
        "cuda" | "gpu" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => return Err(Error::input(format!("unknown device {s:?} (use auto, cpu, cuda or cuda:N)"))),
        },
    };
    if let Device::Cuda(i) = d {
        let n = tch::Cuda::device_count() as usize;
        if i >= n {
            return Err(Error::input(format!("device {s:?} requested but {n} CUDA device(s) are available")));
        }
    }
    Ok(d)
}

/// `f32`/`float32`, `bf16`/`bfloat16`, `f16`/`float16`.
pub fn parse_dtype(s: &str) -> Result<Kind> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "float" => Kind::Float,
        "bf16" | "bfloat16" => Kind::BFloat16,
        "f16" | "float16" | "half" => Kind::Half,
        _ => return Err(Error::input(format!("unknown dtype {s:?} (use f32, bf16 or f16)"))),
    })
}

static ALLOW_TF32: AtomicBool = AtomicBool::new(false);

/// Lets (or stops) cuDNN convolutions use TF32 for f32 inputs. Off by default; no effect on the CPU or on bf16/f16.
pub fn set_allow_tf32(on: bool) {
    ALLOW_TF32.store(on, Ordering::Relaxed);
}

/// Whether cuDNN convolutions may use TF32 (see [`set_allow_tf32`]).
pub fn allow_tf32() -> bool {
    ALLOW_TF32.load(Ordering::Relaxed)
}

/// Display name of a device, as `--device` writes it (`cpu`, `cuda:0`).
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// The compute dtype a command runs in without `--dtype`: bf16 on a GPU, f32 on the CPU.
pub fn default_dtype(d: Device) -> Kind {
    if d.is_cuda() {
        Kind::BFloat16
    } else {
        Kind::Float
    }
}

/// Short name of a floating-point kind, the inverse of [`parse_dtype`].
pub fn dtype_name(k: Kind) -> &'static str {
    match k {
        Kind::Float => "f32",
        Kind::BFloat16 => "bf16",
        Kind::Half => "f16",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_round_trip() {
        for s in ["f32", "bf16", "f16"] {
            assert_eq!(dtype_name(parse_dtype(s).unwrap()), s);
        }
        assert!(parse_dtype("int8").is_err());
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:99").is_err());
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto.is_cuda(), tch::Cuda::is_available());
        assert_eq!(device_name(auto), if auto.is_cuda() { "cuda:0" } else { "cpu" });
    }
}

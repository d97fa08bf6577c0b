//! Parsing of user-facing device and dtype names (`cpu`, `cuda`, `cuda:1`; `f32`, `bf16`, `f16`).
use tch::{Device, Kind};

use crate::error::{Error, Result};

/// `cpu`, `cuda` (first GPU) or `cuda:N`; a GPU that is not present is an error, not a silent CPU fallback.
pub fn parse_device(s: &str) -> Result<Device> {
    let d = match s.trim().to_ascii_lowercase().as_str() {
        "cpu" => Device::Cpu,
        "cuda" | "gpu" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => return Err(Error::input(format!("unknown device {s:?} (use cpu, cuda or cuda:N)"))),
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
    }
}

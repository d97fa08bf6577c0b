//! One convention for what a command runs on and what it writes. `--device` defaults to `auto` in every command:
//! the first GPU when libtorch sees one (`tch::Cuda::is_available()`), else the CPU. `--dtype` of the language
//! model defaults to bf16 on a GPU and f32 on the CPU; the vision tokenizer and `earl parity` stay f32 by default
//! (EARL runs the tokenizer in f32; parity compares with f32 references). `--out` names a command's output (a file,
//! or a run directory for `earl sft` and `earl rl`). Every command says what it chose in one `earl <command>: …`
//! line on stderr, so that stdout carries only its result.
use std::path::Path;

use anyhow::Result;
use earl_core::device::{default_dtype, device_name, dtype_name, parse_device, parse_dtype};
use tch::{Device, Kind};

/// `--device` and an optional `--dtype` (default bf16 on a GPU, f32 on the CPU).
pub fn device_and_dtype(device: &str, dtype: Option<&str>) -> Result<(Device, Kind)> {
    let device = parse_device(device)?;
    let kind = match dtype {
        Some(d) => parse_dtype(d)?,
        None => default_dtype(device),
    };
    Ok((device, kind))
}

/// The stderr line of what `command` runs on and writes.
pub fn announce(command: &str, device: Device, kind: Option<Kind>, out: Option<&Path>) {
    let mut parts = vec![format!("device {}", device_name(device))];
    if let Some(k) = kind {
        parts.push(format!("dtype {}", dtype_name(k)));
    }
    if let Some(o) = out {
        parts.push(format!("out {}", o.display()));
    }
    eprintln!("earl {command}: {}", parts.join(", "));
}

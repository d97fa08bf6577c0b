//! `earl doctor`: what libtorch this binary really loaded, whether CUDA and cuDNN are usable, which GPUs there
//! are, and where models are looked for.
use std::path::{Path, PathBuf};

use anyhow::Result;

/// Directories searched for models by name, in order.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("EARL_MODELS") {
        v.extend(std::env::split_paths(&d));
    }
    if let Some(home) = std::env::var_os("HOME") {
        v.push(Path::new(&home).join(".cache/earl/models"));
    }
    v.push(PathBuf::from("fixtures"));
    v
}

/// Paths of loaded shared objects whose file name starts with `prefix` (from /proc/self/maps).
fn loaded_libs(prefix: &str) -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut v: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(PathBuf::from)
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn torch_version(lib_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib_dir.parent()?.join("version.py")).ok()?;
    let line = text.lines().find(|l| l.starts_with("__version__"))?;
    Some(line.split(['\'', '"']).nth(1)?.to_string())
}

/// `index, name, memory` of each visible NVIDIA GPU (empty without a driver).
pub fn gpu_names() -> Vec<String> {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn run() -> Result<i32> {
    // Touch libtorch so that its libraries are mapped before we look.
    let n_cuda = tch::Cuda::device_count();
    let torch_cpu = loaded_libs("libtorch_cpu");
    let lib_dir = torch_cpu.first().and_then(|p| p.parent()).map(Path::to_path_buf);
    println!("earl {}", env!("CARGO_PKG_VERSION"));
    match &lib_dir {
        Some(d) => println!(
            "libtorch:       {} ({})",
            torch_version(d).unwrap_or_else(|| "unknown version".into()),
            d.display()
        ),
        None => println!("libtorch:       not found among loaded libraries"),
    }
    let cuda_linked = !loaded_libs("libtorch_cuda").is_empty();
    println!("libtorch_cuda:  {}", if cuda_linked { "linked" } else { "NOT linked (CUDA unusable)" });
    println!("CUDA available: {} ({} device(s))", tch::Cuda::is_available(), n_cuda);
    println!(
        "cuDNN:          {}",
        if tch::Cuda::cudnn_is_available() {
            format!("available (version {})", tch::utils::version_cudnn())
        } else {
            "not available".into()
        }
    );
    let gpus = gpu_names();
    if gpus.is_empty() {
        println!("GPUs:           none visible");
    }
    for g in gpus {
        println!("GPU:            {g}");
    }
    println!("CPU threads:    {}", tch::get_num_threads());
    match crate::default_model::find() {
        Ok(d) => println!("default model:  {} (EARL_MODEL, else models/earl-mini beside the binary)", d.display()),
        Err(e) => println!("default model:  none ({e})"),
    }
    println!("model search path (EARL_MODELS, then defaults):");
    for d in model_dirs() {
        println!("  {} {}", d.display(), if d.is_dir() { "" } else { "(missing)" });
    }
    Ok(0)
}

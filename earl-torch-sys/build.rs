//! Build script: compiles the C++ shim (`shim/earl_torch_shim.cpp`) against the torch wheel's headers and links
//! the CUDA halves of libtorch it calls (`libtorch_cuda.so`, `libc10_cuda.so`).
//!
//! Everything is found from the libtorch directory that torch-sys reports (`DEP_TCH_LIBTORCH_LIB`, i.e.
//! `site-packages/torch/lib` with `LIBTORCH_USE_PYTORCH=1`), so a CPU-only machine builds with no manual step:
//! - torch's headers are `torch/include` and `torch/include/torch/csrc/api/include`;
//! - the CUDA runtime headers (`cuda_runtime_api.h`, needed by `c10/cuda/CUDAStream.h` and `ATen/cuda/CUDAGraph.h`)
//!   come from `nvidia-cuda-runtime`, which the Linux torch 2.11 wheel already depends on (through
//!   `cuda-toolkit[cudart]`), at `site-packages/nvidia/cu13/include`; `cuda_runtime.h` also needs
//!   `crt/host_config.h`, which CUDA 13 ships apart in `nvidia-cuda-crt`: scripts/requirements.txt pins
//!   `cuda-toolkit[crt]==13.0.2` (torch's own cuda-toolkit version) for it. `EARL_CUDA_INCLUDE`, `CUDA_HOME` and
//!   `/usr/local/cuda` are the alternatives (a machine with a full CUDA toolkit).
//! - the wheel is cu130, so `libtorch_cuda.so` and `libc10_cuda.so` exist even where no GPU does; the shim checks
//!   for a device at run time instead.
//!
//! As in `build/torch_link.rs`, the package's own test binaries get an rpath to torch/lib so they run without
//! `LD_LIBRARY_PATH`.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=shim/earl_torch_shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=EARL_CUDA_INCLUDE");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)"),
    );
    let torch = lib.parent().expect("libtorch lib directory has a parent").to_path_buf();
    let include = torch.join("include");
    let cuda_include = cuda_include(&torch);

    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(&cuda_include)
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("shim/earl_torch_shim.cpp")
        .compile("earl_torch_shim");

    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cuda");
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}

/// The first directory holding both `cuda_runtime_api.h` and `crt/host_config.h`: `EARL_CUDA_INCLUDE`, the wheels'
/// `nvidia/cu13/include` (a sibling of `torch/`), `$CUDA_HOME/include`, `/usr/local/cuda/include`.
fn cuda_include(torch: &Path) -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("EARL_CUDA_INCLUDE") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(site) = torch.parent() {
        candidates.push(site.join("nvidia/cu13/include"));
    }
    if let Ok(home) = std::env::var("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    match candidates.iter().find(|d| d.join("cuda_runtime_api.h").exists() && d.join("crt/host_config.h").exists()) {
        Some(dir) => dir.clone(),
        None => panic!(
            "earl-torch-sys: no cuda_runtime_api.h with crt/host_config.h in {candidates:?}; run scripts/setup.sh \
             (it installs torch's nvidia-cuda-runtime and cuda-toolkit[crt]) or set EARL_CUDA_INCLUDE"
        ),
    }
}

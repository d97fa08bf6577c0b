//! Shared build script of every package that links an executable against libtorch (binaries, tests, benches).
//!
//! Two classic tch pitfalls are handled here once:
//! 1. rustc links with `--as-needed`, so `libtorch_cuda.so` — which nothing references by symbol — is dropped and
//!    CUDA is silently unavailable at run time. We re-add it between `--no-as-needed` / `--as-needed`.
//! 2. The PyPI wheel's `torch/lib` is not on the loader path; we record it as an rpath so binaries and tests run
//!    without `LD_LIBRARY_PATH` (on another machine, e.g. the GPU box, `LD_LIBRARY_PATH` still overrides it).
//!
//! torch-sys (`links = "tch"`) exports its library directory to direct dependents as `DEP_TCH_LIBTORCH_LIB`.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=../build/torch_link.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report its libtorch directory; no rpath set");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let cuda = Path::new(&lib).join("libtorch_cuda.so");
    if cuda.exists() {
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rustc-env=EARL_LIBTORCH_LIB={lib}");
}

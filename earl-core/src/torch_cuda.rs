//! Makes libtorch's CUDA backend present in the process, for every program that uses earl-core — not only the
//! workspace's own binaries. libtorch keeps its CUDA kernels and the hooks that register them in `libtorch_cuda.so`,
//! a library nothing references by symbol: rustc links with `--as-needed`, so the linker drops it and CUDA is
//! silently unavailable. The workspace's build script (`build/torch_link.rs`) re-adds it with `--no-as-needed`, but
//! Cargo passes link arguments to no dependent crate, so a program that merely depends on earl-core never gets it.
//! Instead, earl-core loads it here, on its first call that needs a device ([`crate::device::parse_device`],
//! `Emu3ForCausalLM::from_dir`, `SafetensorsStore::open`), whatever the device and whether a GPU exists: the
//! library's static initialisers register the CUDA hooks and kernels with the already-loaded `libtorch_cpu.so`.
//!
//! libtorch looks its CUDA hooks up once and caches the answer, so this must run before anything asks libtorch about
//! CUDA (`tch::Cuda::is_available()` included): a program that queries tch first calls [`load`] itself.
//!
//! Where it looks: already in the process (the workspace's binaries link it); next to the loaded `libtorch_cpu.so`
//! (found with `dl_iterate_phdr`; a PyPI wheel and a libtorch zip both keep the two side by side); `$LIBTORCH/lib` and
//! `$LIBTORCH_LIB/lib` (torch-sys's variables); then the dynamic loader's own search (`LD_LIBRARY_PATH`, ld.so.cache).
//! A CPU-only libtorch has no `libtorch_cuda.so` anywhere: that is quietly fine. A library that exists but does not
//! load (a missing CUDA runtime, say) is a warning, since CUDA would then be unavailable without an obvious reason.
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const CUDA_LIB: &str = "libtorch_cuda.so";

/// What [`load`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorchCuda {
    /// Already in the process when first asked: the executable links it (as the workspace's binaries do).
    Linked(PathBuf),
    /// Loaded by [`load`] from this path.
    Loaded(PathBuf),
    /// No `libtorch_cuda.so` anywhere looked: a CPU-only libtorch (or a platform without it).
    Absent,
    /// A `libtorch_cuda.so` exists but would not load; the loader's message.
    Failed {
        /// The library that failed to load.
        path: PathBuf,
        /// The dynamic loader's message.
        error: String,
    },
}

impl TorchCuda {
    /// Whether libtorch's CUDA backend is in the process (a GPU may still be absent).
    pub fn is_present(&self) -> bool {
        matches!(self, TorchCuda::Linked(_) | TorchCuda::Loaded(_))
    }
}

static STATE: OnceLock<TorchCuda> = OnceLock::new();

/// Loads `libtorch_cuda.so` into the process once (see the module header); later calls return the first answer.
pub fn load() -> &'static TorchCuda {
    STATE.get_or_init(|| {
        let state = find_and_load();
        match &state {
            TorchCuda::Linked(p) => tracing::debug!(path = %p.display(), "libtorch_cuda already linked"),
            TorchCuda::Loaded(p) => tracing::debug!(path = %p.display(), "loaded libtorch_cuda"),
            TorchCuda::Absent => tracing::debug!("no libtorch_cuda found: CPU-only libtorch"),
            TorchCuda::Failed { path, error } => {
                tracing::warn!(path = %path.display(), %error, "libtorch_cuda is present but did not load; CUDA is unavailable")
            }
        }
        state
    })
}

fn find_and_load() -> TorchCuda {
    let loaded = loaded_objects();
    if let Some(p) = loaded.iter().find(|p| p.file_name().is_some_and(|n| n == CUDA_LIB)) {
        return TorchCuda::Linked(p.clone());
    }
    let mut dirs: Vec<PathBuf> = loaded
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "libtorch_cpu.so"))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    for var in ["LIBTORCH", "LIBTORCH_LIB"] {
        if let Some(root) = std::env::var_os(var) {
            dirs.push(PathBuf::from(root).join("lib"));
        }
    }
    // The first one that exists decides: a broken library there is reported, not skipped for another copy.
    if let Some(path) = dirs.iter().map(|d| d.join(CUDA_LIB)).find(|p| p.is_file()) {
        return match dlopen(path.as_os_str().as_encoded_bytes()) {
            Ok(()) => TorchCuda::Loaded(path),
            Err(error) => TorchCuda::Failed { path, error },
        };
    }
    // Last, the loader's own search path; here a failure only means "not found", unless it found a broken one.
    match dlopen(CUDA_LIB.as_bytes()) {
        Ok(()) => {
            TorchCuda::Loaded(loaded_objects().into_iter().find(|p| p.ends_with(CUDA_LIB)).unwrap_or(CUDA_LIB.into()))
        }
        Err(error) if error.contains("cannot open shared object file") => TorchCuda::Absent,
        Err(error) => TorchCuda::Failed { path: CUDA_LIB.into(), error },
    }
}

/// `dlopen(name, RTLD_NOW | RTLD_GLOBAL)`: global, so that libtorch's later lookups see the library's symbols. The
/// handle is never closed: the library stays for the life of the process, as a linked one would.
#[cfg(target_os = "linux")]
fn dlopen(name: &[u8]) -> std::result::Result<(), String> {
    let c = CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: a valid NUL-terminated path; dlerror's string is copied before any other dl* call.
    unsafe {
        if libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL).is_null() {
            let e = libc::dlerror();
            return Err(if e.is_null() {
                "dlopen failed".into()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            });
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn dlopen(_name: &[u8]) -> std::result::Result<(), String> {
    Err("cannot open shared object file: libtorch_cuda is Linux-only".into())
}

/// Paths of the shared objects loaded in the process (those with a name).
#[cfg(target_os = "linux")]
fn loaded_objects() -> Vec<PathBuf> {
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: dl_iterate_phdr hands a valid info struct; `data` is the Vec passed below.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<PathBuf>)) };
        if !info.dlpi_name.is_null() {
            let name = unsafe { CStr::from_ptr(info.dlpi_name) };
            if !name.is_empty() {
                use std::os::unix::ffi::OsStrExt;
                out.push(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())));
            }
        }
        0
    }
    let mut out: Vec<PathBuf> = Vec::new();
    // SAFETY: the callback only reads the info it is given and pushes to `out`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut out as *mut Vec<PathBuf> as *mut libc::c_void) };
    out
}

#[cfg(not(target_os = "linux"))]
fn loaded_objects() -> Vec<PathBuf> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// earl-core's own test binary links libtorch_cuda (build/torch_link.rs) when the libtorch has one; either way
    /// `load` reports it present exactly when the library sits next to libtorch_cpu, and answers the same twice.
    #[test]
    fn finds_the_cuda_library_beside_libtorch_cpu() {
        let cpu = loaded_objects().into_iter().find(|p| p.ends_with("libtorch_cpu.so")).expect("libtorch_cpu loaded");
        let beside = cpu.parent().unwrap().join(CUDA_LIB).is_file();
        let state = load();
        assert_eq!(state.is_present(), beside, "{state:?}");
        assert_eq!(load(), state);
    }
}

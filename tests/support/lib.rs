//! Shared helpers of the cross-crate integration tests in `tests/`: fixture locations and devices to run on.
use std::path::PathBuf;

/// The repository's `fixtures/` directory (`EARL_FIXTURES` overrides it, for test binaries run on another machine).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("EARL_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
    }
}

/// libtorch's random generators are process-global, and all tests of this package run in one process (one test
/// binary, tests/integration/main.rs), concurrently: a test whose numbers depend on the generator's stream (dropout)
/// holds this lock so that no other test draws from or re-seeds it meanwhile.
pub static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The tiny language-model checkpoints written by `fixtures/make_fixtures.py`.
pub const LM_FIXTURES: [&str; 3] = ["lm-tiny-gqa", "lm-tiny-mha", "lm-tiny-orig"];

/// Every device a test body should run on: the CPU, and the first GPU when there is one.
pub fn test_devices() -> Vec<tch::Device> {
    let mut v = vec![tch::Device::Cpu];
    if tch::Cuda::is_available() {
        v.push(tch::Device::Cuda(0));
    }
    v
}

/// Copies a fixture checkpoint into a fresh temporary directory that a test may damage.
pub fn scratch_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(fixtures_dir().join(name)).expect("fixture dir") {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, dir.path().join(p.file_name().expect("file name"))).expect("copy");
    }
    dir
}

/// The tiny vision tokenizers written by `fixtures/gen_vq.py` (transformers and original BAAI layouts).
pub const VQ_FIXTURES: [&str; 3] = ["vq-tiny", "vq-tiny-orig", "vq-tiny-wide"];

/// Tolerances of the suite, derived from floating-point arithmetic rather than from what one CPU produced.
///
/// Two evaluations of one quantity may legitimately differ when the hardware or libtorch picks another summation
/// order: another CPU's vector width, another BLAS kernel for another shape, chunked instead of whole reductions, a
/// GPU. For a computation whose longest chain of dependent roundings is `n` operations over terms of total magnitude
/// `mass` (Σ|xᵢ| for a sum), the error is at most γₙ·mass ≈ n·u·mass (Higham, *Accuracy and Stability of Numerical
/// Algorithms*, §3.1, §4.2), whatever the order; in practice it is nearer √n·u·mass. The suite uses the worst case,
/// so no test passes or fails by which x86 CPU runs it. Where the code promises bitwise equality (same path, device
/// and thread count: reruns, resume, recompute under activation checkpointing on the CPU), tests compare exactly.
pub mod tol {
    /// Unit roundoff of f32, 2⁻²⁴ (24 significant bits).
    pub const F32_U: f64 = 5.960_464_477_539_063e-8;
    /// Unit roundoff of TF32 (cuDNN's tensor-core inputs), 2⁻¹¹ (11 significant bits).
    pub const TF32_U: f64 = 4.882_812_5e-4;
    /// Unit roundoff of bf16, 2⁻⁸ (8 significant bits).
    pub const BF16_U: f64 = 3.906_25e-3;

    /// Worst-case bound on the f32 error of a computation with `n` dependent roundings over terms of magnitude `mass`.
    pub fn f32_worst(n: usize, mass: f64) -> f64 {
        n as f64 * F32_U * mass
    }

    /// Longest chain of dependent roundings through a forward pass of a decoder LM: per layer the attention and MLP
    /// dot products (`hidden` and `intermediate` terms) and the attention sums over `seq` positions, then the head's
    /// dot product and the log-sum-exp over `vocab` logits.
    pub fn lm_chain(layers: usize, hidden: usize, intermediate: usize, seq: usize, vocab: usize) -> usize {
        layers * (2 * hidden + intermediate + seq) + hidden + vocab
    }
}

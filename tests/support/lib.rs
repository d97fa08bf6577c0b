//! Shared helpers of the cross-crate integration tests in `tests/`: fixture locations and devices to run on.
use std::path::PathBuf;

/// The repository's `fixtures/` directory (`EARL_FIXTURES` overrides it, for test binaries run on another machine).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("EARL_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
    }
}

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
pub const VQ_FIXTURES: [&str; 2] = ["vq-tiny", "vq-tiny-orig"];

//! The workspace's cross-crate integration tests (root package earl-tests), as one test binary. Every test binary links libtorch (~30 MB
//! each with line tables) and costs a link step, so the files of this directory are modules of one crate
//! (`autotests = false` and one `[[test]]` in Cargo.toml) rather than a crate each.
//! One file's tests: `cargo test -p earl-tests --test integration FILE::`.
mod bundle_generate;
mod generation;
mod grpo_parity;
mod image_golden;
mod lm_parity;
mod load_errors;
mod rl_run;
mod sft_parity;
mod sft_run;
mod vq_parity;

//! Earl-cli's integration tests (the `earl` binary, run as a subprocess), as one test binary. Every test binary links libtorch (~30 MB
//! each with line tables) and costs a link step, so the files of this directory are modules of one crate
//! (`autotests = false` and one `[[test]]` in Cargo.toml) rather than a crate each.
//! One file's tests: `cargo test -p earl-cli --test integration FILE::`.
mod cli;
mod common;
mod crash_safety;
mod data_tokenize;
mod edit_cli;
mod eval_cli;
mod mini_cli;
mod mini_grid;
mod sft_cli;
mod vq_cli;

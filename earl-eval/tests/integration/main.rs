//! Earl-eval's integration tests, as one test binary. Every test binary links libtorch (~30 MB
//! each with line tables) and costs a link step, so the files of this directory are modules of one crate
//! (`autotests = false` and one `[[test]]` in Cargo.toml) rather than a crate each.
//! One file's tests: `cargo test -p earl-eval --test integration FILE::`.
mod bench;
mod eval_run;
mod judge_prompts;
mod loopback;
mod mini_eval;
mod rl_experiments;
mod verifier_loopback;
mod viescore_judge;

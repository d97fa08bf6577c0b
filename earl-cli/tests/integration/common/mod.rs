//! Helpers shared by the CLI tests: the repository root (where `earl` runs, so fixture paths are relative) and a
//! runner returning (exit code, stdout, stderr). `RUST_BACKTRACE` is removed: it asks `earl` for the full detail
//! behind its one-line errors, which the tests check.
#![allow(dead_code)]
use std::path::PathBuf;
use std::process::Command;

/// `earl edit` on the random fixture bundle (the default model is the shipped EARL-mini; these tests exercise the
/// pipeline on the fixture, so they name it).
pub const FIXTURE_EDIT: [&str; 5] = ["edit", "--model", "fixtures/bundle-tiny", "--vq", "fixtures/vq-tiny"];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn earl(args: &[&str]) -> (i32, String, String) {
    output(Command::new(env!("CARGO_BIN_EXE_earl")).args(args).current_dir(root()).env_remove("RUST_BACKTRACE"))
}

pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

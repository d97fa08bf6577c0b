//! Where `earl edit` finds its model when no `--model` is given, by one documented rule (docs/mini.md, "The
//! default model"): the first of these that holds a model bundle (`earl-bundle.toml`, earl_core::bundle):
//!
//! 1. `$EARL_MODEL`, when set (then it must be a bundle: a set variable that points nowhere is an error, never
//!    silently passed over);
//! 2. `models/earl-mini` in the directory of the `earl` executable or any directory above it (a clone's
//!    `target/release/earl` finds the clone's bundle, an install's `bin/earl` finds `../models/earl-mini`);
//! 3. `models/earl-mini` of the source tree the binary was built from.
//!
//! So the binary finds its bundle from any working directory.
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use earl_core::bundle::BUNDLE_FILE;

/// The shipped bundle's place in a checkout or an install prefix.
pub const BUNDLE_DIR: &str = "models/earl-mini";

fn is_bundle(dir: &Path) -> bool {
    dir.join(BUNDLE_FILE).is_file()
}

/// The places of rules 2 and 3, in order.
pub fn candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        let exe = exe.canonicalize().unwrap_or(exe);
        v.extend(exe.ancestors().skip(1).map(|d| d.join(BUNDLE_DIR)));
    }
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(BUNDLE_DIR));
    v
}

/// The default model bundle by the rule above.
pub fn find() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("EARL_MODEL").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !is_bundle(&dir) {
            bail!("EARL_MODEL={} holds no {BUNDLE_FILE} (unset it, or point it at a model bundle)", dir.display());
        }
        return Ok(dir);
    }
    match candidates().into_iter().find(|d| is_bundle(d)) {
        Some(d) => Ok(d.canonicalize().unwrap_or(d)),
        None => bail!(
            "no --model given and no default bundle found: set EARL_MODEL or pass --model (looked for \
             {BUNDLE_DIR} beside the executable and in the source tree)"
        ),
    }
}

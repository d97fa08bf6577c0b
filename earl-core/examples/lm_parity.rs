//! Checks the language model against a reference file written by the Python reference (transformers): a full
//! forward and cached token-by-token decoding, compared with [`earl_core::parity`]. Defaults to the tiny GQA
//! fixture; `cargo run -p earl-core --example lm_parity -- [MODEL_DIR [REFERENCE.safetensors]]`.
use std::path::{Path, PathBuf};

use earl_core::parity::check_lm_reference;
use earl_core::{Emu3ForCausalLM, SafetensorsStore};
use tch::{Device, Kind};

/// The f32 parity bound of the fixtures (relative L2, max |Δ|): what `earl parity` and the test suite use.
const REL_L2: f64 = 1e-5;
const MAX_ABS: f64 = 1e-4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/lm-tiny-gqa"));
    let reference = args.get(1).map(PathBuf::from).unwrap_or_else(|| model_dir.join("reference.safetensors"));

    let model = Emu3ForCausalLM::from_dir(&model_dir, Kind::Float, Device::Cpu)?;
    let reference = SafetensorsStore::open(&reference, Kind::Float, Device::Cpu)?;
    let mut ok = true;
    for check in check_lm_reference(&model, &reference)? {
        let pass = check.report.within(REL_L2, MAX_ABS);
        ok &= pass;
        println!("{:<14} {}  {}", check.name, if pass { "ok  " } else { "FAIL" }, check.report);
    }
    if !ok {
        return Err(format!("{} differs from its reference", model_dir.display()).into());
    }
    Ok(())
}

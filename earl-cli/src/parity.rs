//! `earl parity`: load a checkpoint, run it on the inputs of a reference file written by the Python reference
//! (fixtures/make_fixtures.py `--model DIR --out FILE`), and report errors. The last line is `parity ok: …`
//! (exit 0) or `parity FAILED: …` (exit 1).
use std::path::PathBuf;

use anyhow::{Context, Result};
use earl_core::device::{dtype_name, parse_device, parse_dtype};
use earl_core::parity::check_lm_reference;
use earl_core::{Emu3ForCausalLM, SafetensorsStore};
use tch::{Device, Kind};

#[derive(clap::Args)]
pub struct ParityArgs {
    /// Checkpoint directory (language model or vision tokenizer, detected from config.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Reference outputs (.safetensors) computed by the Python model.
    #[arg(long)]
    reference: PathBuf,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Maximum relative L2 error; default 1e-5 for f32, 2e-2 for bf16/f16.
    #[arg(long)]
    tol: Option<f64>,
    /// Maximum absolute error; default 1e-4 for f32, unbounded otherwise (low precision is judged relatively).
    #[arg(long)]
    abs_tol: Option<f64>,
    /// Vision tokenizers only: minimum fraction of codes equal to the reference; default 1.0 for f32, 0.99 else.
    #[arg(long)]
    pub min_code_agreement: Option<f64>,
}

pub fn run(a: &ParityArgs) -> Result<i32> {
    let device = parse_device(&a.device)?;
    let kind = parse_dtype(&a.dtype)?;
    let f32 = kind == Kind::Float;
    let tol = a.tol.unwrap_or(if f32 { 1e-5 } else { 2e-2 });
    let abs_tol = a.abs_tol.unwrap_or(if f32 { 1e-4 } else { f64::INFINITY });
    let reference = SafetensorsStore::open(&a.reference, Kind::Float, Device::Cpu)
        .with_context(|| format!("reading reference {}", a.reference.display()))?;
    if earl_core::vq::is_vq_checkpoint(&a.model)? {
        return crate::vq_parity::run(a, &reference, kind, device, tol, abs_tol);
    }
    let t0 = std::time::Instant::now();
    let model =
        Emu3ForCausalLM::from_dir(&a.model, kind, device).with_context(|| format!("loading {}", a.model.display()))?;
    println!(
        "model {} ({} layers, {} params) as {} on {:?}, loaded in {:.2}s",
        a.model.display(),
        model.cfg.num_layers,
        model.cfg.num_parameters(),
        dtype_name(kind),
        device,
        t0.elapsed().as_secs_f64()
    );
    crate::choice::announce("parity", device, Some(kind), None);
    let checks = check_lm_reference(&model, &reference)?;
    let mut worst = 0f64;
    let mut failed = Vec::new();
    for c in &checks {
        let ok = c.report.within(tol, abs_tol);
        println!("{:<14} {}  {}", c.name, c.report, if ok { "ok" } else { "FAILED" });
        worst = worst.max(c.report.rel_l2);
        if !ok {
            failed.push(c.name);
        }
    }
    let bounds = if abs_tol.is_finite() {
        format!("rel L2 ≤ {tol:.1e}, max |Δ| ≤ {abs_tol:.1e}")
    } else {
        format!("rel L2 ≤ {tol:.1e}")
    };
    if failed.is_empty() {
        println!("parity ok: {} checks, worst rel L2 {worst:.3e} ({bounds}, {})", checks.len(), dtype_name(kind));
        Ok(0)
    } else {
        println!("parity FAILED: {} outside {bounds} ({})", failed.join(", "), dtype_name(kind));
        Ok(1)
    }
}

//! `earl parity` for vision-tokenizer checkpoints: encode the reference `pixel_values`, decode the reference `codes`,
//! report code agreement and pixel errors; the last line is `parity ok: …` (exit 0) or `parity FAILED: …` (exit 1).
use anyhow::{Context, Result};
use earl_core::device::dtype_name;
use earl_core::parity::check_vq_reference;
use earl_core::{Emu3VqModel, SafetensorsStore};
use tch::{Device, Kind};

use crate::parity::ParityArgs;

pub fn run(a: &ParityArgs, reference: &SafetensorsStore, kind: Kind, device: Device, tol: f64, abs_tol: f64) -> Result<i32> {
    let min_agree = a.min_code_agreement.unwrap_or(if kind == Kind::Float { 1.0 } else { 0.99 });
    let t0 = std::time::Instant::now();
    let model = Emu3VqModel::from_dir(&a.model, kind, device).with_context(|| format!("loading {}", a.model.display()))?;
    println!(
        "vision tokenizer {} ({:?} layout, codebook {}, factor {}) as {} on {:?}, loaded in {:.2}s",
        a.model.display(),
        model.cfg.layout,
        model.cfg.codebook_size,
        model.cfg.spatial_factor(),
        dtype_name(kind),
        device,
        t0.elapsed().as_secs_f64()
    );
    let p = tch::no_grad(|| check_vq_reference(&model, reference))?;
    let agree = p.code_agreement();
    let codes_ok = agree >= min_agree;
    let pixels_ok = p.decoded.within(tol, abs_tol);
    println!(
        "codes    {}/{} equal ({:.2}%)  {}",
        p.codes_equal,
        p.codes_total,
        agree * 100.0,
        if codes_ok { "ok" } else { "FAILED" }
    );
    println!("decoded  {}  {}", p.decoded, if pixels_ok { "ok" } else { "FAILED" });
    let bounds = if abs_tol.is_finite() {
        format!("codes ≥ {:.2}%, rel L2 ≤ {tol:.1e}, max |Δ| ≤ {abs_tol:.1e}", min_agree * 100.0)
    } else {
        format!("codes ≥ {:.2}%, rel L2 ≤ {tol:.1e}", min_agree * 100.0)
    };
    if codes_ok && pixels_ok {
        println!(
            "parity ok: codes {:.2}% equal, decoded rel L2 {:.3e} ({bounds}, {})",
            agree * 100.0,
            p.decoded.rel_l2,
            dtype_name(kind)
        );
        Ok(0)
    } else {
        let what: Vec<&str> = [(!codes_ok, "codes"), (!pixels_ok, "decoded")].iter().filter(|x| x.0).map(|x| x.1).collect();
        println!("parity FAILED: {} outside {bounds} ({})", what.join(", "), dtype_name(kind));
        Ok(1)
    }
}

//! `earl parity` for vision-tokenizer checkpoints: encode the reference `pixel_values`, decode the reference `codes`,
//! report code agreement and pixel errors; the last line is `parity ok: …` (exit 0) or `parity FAILED: …` (exit 1).
use anyhow::{Context, Result};
use earl_core::device::dtype_name;
use earl_core::parity::{check_vq_reference, F32_CODE_GAP};
use earl_core::{Emu3VqModel, SafetensorsStore};
use tch::{Device, Kind};

use crate::parity::ParityArgs;

pub fn run(
    a: &ParityArgs,
    reference: &SafetensorsStore,
    kind: Kind,
    device: Device,
    tol: f64,
    abs_tol: f64,
) -> Result<i32> {
    let min_agree = a.min_code_agreement.unwrap_or(if kind == Kind::Float { 1.0 } else { 0.99 });
    let t0 = std::time::Instant::now();
    let model =
        Emu3VqModel::from_dir(&a.model, kind, device).with_context(|| format!("loading {}", a.model.display()))?;
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
    // In f32, with the reference's nearest-code gaps: a code may differ only at a near-tie that f32 rounding
    // explains. Otherwise (bf16, no gaps in the file, or an explicit --min-code-agreement): a share of codes.
    let tie_rule = kind == Kind::Float && a.min_code_agreement.is_none();
    let codes_ok = match p.codes_flipped_beyond_gap {
        Some(beyond) if tie_rule => beyond == 0,
        _ => agree >= min_agree,
    };
    let pixels_ok = p.decoded.within(tol, abs_tol);
    let ties = match p.codes_flipped_beyond_gap {
        Some(beyond) => format!(
            ", {} at near-ties (gap ≤ {F32_CODE_GAP:.0e}), {beyond} beyond",
            p.codes_total - p.codes_equal - beyond
        ),
        None => String::new(),
    };
    println!(
        "codes    {}/{} equal ({:.2}%){ties}  {}",
        p.codes_equal,
        p.codes_total,
        agree * 100.0,
        if codes_ok { "ok" } else { "FAILED" }
    );
    println!("decoded  {}  {}", p.decoded, if pixels_ok { "ok" } else { "FAILED" });
    let code_bound = if tie_rule && p.codes_flipped_beyond_gap.is_some() {
        format!("codes equal but at near-ties (gap ≤ {F32_CODE_GAP:.0e})")
    } else {
        format!("codes ≥ {:.2}%", min_agree * 100.0)
    };
    let bounds = if abs_tol.is_finite() {
        format!("{code_bound}, rel L2 ≤ {tol:.1e}, max |Δ| ≤ {abs_tol:.1e}")
    } else {
        format!("{code_bound}, rel L2 ≤ {tol:.1e}")
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
        let what: Vec<&str> =
            [(!codes_ok, "codes"), (!pixels_ok, "decoded")].iter().filter(|x| x.0).map(|x| x.1).collect();
        println!("parity FAILED: {} outside {bounds} ({})", what.join(", "), dtype_name(kind));
        Ok(1)
    }
}

//! `earl edit`: edit an image from a text instruction, end to end (VQ encode → EARL prompt → grid-constrained
//! seeded sampling → VQ decode). Writes OUT.png (and OUT-1.png … for more samples) with a JSON sidecar next to each.
//! Both are written atomically, and the sidecar is removed before its image is replaced and rewritten after, so a
//! sidecar on disk always describes the image beside it, whenever the command is killed.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use earl_core::bundle::Bundle;
use earl_core::device::{dtype_name, parse_dtype};
use earl_core::edit::{EditInput, EditOptions, Editor};
use earl_core::generate::{Engine, SamplingParams, TopK};
use earl_core::imageproc::{self, LoadLimits};
use earl_core::prompt::Prefill;

#[derive(clap::Args)]
pub struct EditArgs {
    #[arg(long)]
    image: PathBuf,
    #[arg(long)]
    instruction: String,
    /// Output image; more samples are written as OUT-1.png, OUT-2.png, …
    #[arg(long)]
    out: PathBuf,
    /// Language-model checkpoint or bundle (default: the shipped EARL-mini bundle, found by the rule of
    /// `earl doctor`: $EARL_MODEL, else models/earl-mini beside the binary). A bundle's earl-bundle.toml gives the
    /// defaults of --vq, --tokenizer, --mode, --area and the sampling flags.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Vision-tokenizer checkpoint (default: the bundle's; required for a plain checkpoint).
    #[arg(long)]
    vq: Option<PathBuf>,
    /// Text-tokenizer directory (default: the bundle's, else the model directory).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Assistant prefill: E, E-legacy, CE, mixed, or text:<literal> ({h}/{w} = source grid size). Default: the
    /// bundle's, else E.
    #[arg(long)]
    mode: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Default: 3000, the reference evaluation's budget (room for reasoning), less when the model's
    /// max_position_embeddings leaves less room after the prompt.
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Sampling (default: the bundle's, else EARL's evaluation defaults: temperature 1.0, top-k 2048, top-p 1.0;
    /// temperature 0 = greedy).
    #[arg(long)]
    temperature: Option<f64>,
    /// `off` (or −1) or k ≥ 1.
    #[arg(long)]
    top_k: Option<TopK>,
    #[arg(long)]
    top_p: Option<f64>,
    /// Target pixel area of the source image before encoding (default: the bundle's, else 256×256).
    #[arg(long)]
    area: Option<u64>,
    /// Disable the grid constraint.
    #[arg(long)]
    no_constraint: bool,
    /// Let --max-new-tokens run past the model's max_position_embeddings (an error otherwise).
    #[arg(long)]
    allow_overlong: bool,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Language-model dtype. Default: bf16 on CUDA, f32 on CPU.
    #[arg(long)]
    dtype: Option<String>,
    /// Vision-tokenizer dtype (EARL encodes and decodes in f32 whatever the LM runs in).
    #[arg(long, default_value = "f32")]
    vq_dtype: String,
    /// eager or graph (the decode step replayed from CUDA graphs; CUDA only). Default: graph on CUDA, else eager.
    #[arg(long)]
    engine: Option<Engine>,
}

fn sample_path(out: &Path, i: usize) -> PathBuf {
    if i == 0 {
        return out.to_path_buf();
    }
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("edit");
    let ext = out.extension().and_then(|s| s.to_str()).unwrap_or("png");
    out.with_file_name(format!("{stem}-{i}.{ext}"))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// What the edit runs with: flags, else the bundle's defaults, else EARL's.
struct Resolved {
    model: PathBuf,
    vq: PathBuf,
    tokenizer: PathBuf,
    bundle: Option<Bundle>,
    prefill: Prefill,
    sampling: SamplingParams,
    area: u64,
}

fn resolve(a: &EditArgs) -> Result<Resolved> {
    let model = match &a.model {
        Some(m) => m.clone(),
        None => crate::default_model::find()?,
    };
    let bundle = Bundle::open(&model).with_context(|| format!("reading {}", model.display()))?;
    let vq = match (&a.vq, &bundle) {
        (Some(v), _) => v.clone(),
        (None, Some(b)) => b.vq.clone(),
        (None, None) => bail!("{} is a plain checkpoint (no earl-bundle.toml): pass --vq", model.display()),
    };
    let tokenizer =
        a.tokenizer.clone().or_else(|| bundle.as_ref().map(|b| b.tokenizer.clone())).unwrap_or(model.clone());
    let prefill: Prefill = match (&a.mode, &bundle) {
        (Some(m), _) => m.parse()?,
        (None, Some(b)) => b.prefill.clone(),
        (None, None) => Prefill::E,
    };
    let base = bundle.as_ref().map(|b| b.sampling).unwrap_or(SamplingParams {
        temperature: 1.0,
        top_k: TopK::K(2048),
        top_p: 1.0,
    });
    let sampling = SamplingParams {
        temperature: a.temperature.unwrap_or(base.temperature),
        top_k: a.top_k.unwrap_or(base.top_k),
        top_p: a.top_p.unwrap_or(base.top_p),
    };
    let area = a.area.or(bundle.as_ref().map(|b| b.area)).unwrap_or(256 * 256);
    Ok(Resolved { model, vq, tokenizer, bundle, prefill, sampling, area })
}

pub fn run(a: &EditArgs) -> Result<i32> {
    // The output is checked before any model is loaded or token generated.
    imageproc::check_output(&a.out)?;
    let (device, kind) = crate::choice::device_and_dtype(&a.device, a.dtype.as_deref())?;
    let engine = a.engine.unwrap_or(Engine::default_for(device));
    engine.check_device(device)?;
    let Resolved { model, vq, tokenizer, bundle, prefill, sampling, area } = resolve(a)?;
    let t_load = std::time::Instant::now();
    let vq_kind = parse_dtype(&a.vq_dtype)?;
    let mut editor = Editor::load(&model, &vq, &tokenizer, kind, vq_kind, device)
        .with_context(|| format!("loading {} / {} / {}", model.display(), vq.display(), tokenizer.display()))?;
    editor.codec.image_cfg.area = area;
    let load_s = t_load.elapsed().as_secs_f64();

    let img = imageproc::load_rgb(&a.image, &LoadLimits::default())?;
    let t_enc = std::time::Instant::now();
    let source = editor.encode_image(&img).with_context(|| format!("encoding {}", a.image.display()))?;
    let encode_s = t_enc.elapsed().as_secs_f64();
    let opts = EditOptions {
        prefill: prefill.clone(),
        samples: a.samples,
        max_new_tokens: a.max_new_tokens,
        sampling,
        seed: a.seed,
        constrain: !a.no_constraint,
        allow_overlong: a.allow_overlong,
        context_size: None,
        engine,
    };
    let bar = indicatif::ProgressBar::new(((source.w() + 1) * source.h() + 3) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} generating {pos}/{len} tokens [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let input = EditInput { source: source.clone(), instruction: a.instruction.clone() };
    let (outputs, timings) = editor.edit(&[input], &opts, &mut |step, live| {
        bar.set_position(step as u64);
        bar.set_message(format!("{live} live"));
    })?;
    bar.finish_and_clear();
    // Said once the inputs are known to be good, so that a refused edit stays a one-line error.
    crate::choice::announce("edit", device, Some(kind), Some(&a.out));
    if let (None, Some(b)) = (&a.model, &bundle) {
        eprintln!("model: the default bundle {} ({})", b.name, model.display());
    }

    let mut written = 0;
    for o in &outputs {
        let png = sample_path(&a.out, o.sample);
        let json_path = png.with_extension("json");
        remove_if_present(&json_path)?;
        let t_dec = std::time::Instant::now();
        let (image_status, decode_s) = match &o.grid {
            Ok(grid) => {
                let edited = editor.decode_grid(grid)?;
                imageproc::save(&edited, &png).with_context(|| format!("writing {}", png.display()))?;
                written += 1;
                (format!("{}×{} codes → {}", grid.w(), grid.h(), png.display()), t_dec.elapsed().as_secs_f64())
            }
            Err(why) => {
                // The sidecar will say there is no image: an earlier run's image of that name must not stay beside it.
                remove_if_present(&png)?;
                (format!("no image: {why}"), 0.0)
            }
        };
        let sidecar = serde_json::json!({
            "instruction": a.instruction,
            "mode": prefill.to_string(),
            "seed": a.seed,
            "sample": o.sample,
            "sampling": {"temperature": sampling.temperature, "top_k": sampling.top_k, "top_p": sampling.top_p},
            "bundle": bundle.as_ref().map(|b| b.name.clone()), "area": area,
            "max_new_tokens": timings.max_new_tokens,
            "model": model, "vq": vq, "tokenizer": tokenizer,
            "source_image": a.image,
            "source_grid": [source.h(), source.w()],
            "dtype": dtype_name(kind), "vq_dtype": dtype_name(vq_kind), "device": format!("{device:?}"),
            "engine": engine.as_str(),
            "prompt_ids": o.prompt_ids,
            "token_ids": o.tokens,
            "reasoning": o.reasoning,
            "finish_reason": o.finish.as_str(),
            "image": o.grid.as_ref().ok().map(|_| png.display().to_string()),
            "invalid_image_reason": o.grid.as_ref().err(),
            "timings_s": {"load": load_s, "encode": encode_s, "generate": timings.generate_s, "decode": decode_s},
        });
        earl_core::fsio::write_atomic(&json_path, (serde_json::to_string_pretty(&sidecar)? + "\n").as_bytes())?;
        println!("sample {}: {} tokens, finish {}, {image_status}", o.sample, o.tokens.len(), o.finish.as_str());
    }
    println!(
        "source {}×{} codes; generated {} tokens in {:.2}s ({:.1} tokens/s, {} steps), {} on {:?}",
        source.w(),
        source.h(),
        timings.new_tokens,
        timings.generate_s,
        timings.new_tokens as f64 / timings.generate_s.max(1e-9),
        timings.steps,
        dtype_name(kind),
        device
    );
    if written == 0 {
        bail!("no sample produced a valid image (see the JSON sidecar for the generated tokens)");
    }
    Ok(0)
}

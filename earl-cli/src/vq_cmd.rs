//! `earl encode`, `earl decode` and `earl bench vq`: the vision tokenizer from the command line. Encoding loads an
//! image, preprocesses it as EARL does (area resize, snap to the spatial factor, normalise) and writes `codes.json`;
//! decoding reads a grid and writes an 8-bit image. The benchmark times encode and decode on random weights of the
//! real Emu3 tokenizer shape, created on the device, and prints JSON lines comparable with bench/vq_baseline.py.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use earl_core::device::{dtype_name, parse_device, parse_dtype};
use earl_core::imageproc::{self, ImageProcessConfig, LoadLimits};
use earl_core::CodeGrid;
use earl_core::{Emu3VqModel, VqConfig, VqRandomSource};
use tch::{Device, Kind, Tensor};

/// Where and in which precision the tokenizer runs.
#[derive(clap::Args)]
pub struct DeviceArgs {
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value = "f32")]
    dtype: String,
}

#[derive(clap::Args)]
pub struct EncodeArgs {
    /// Vision-tokenizer directory (config.json + safetensors; either checkpoint layout).
    #[arg(long)]
    vq: PathBuf,
    /// Input image (PNG, JPEG or WebP).
    #[arg(long)]
    image: PathBuf,
    /// Target pixel area of the aspect-preserving resize (EARL's data preparation).
    #[arg(long, default_value_t = 256 * 256)]
    area: u64,
    /// Bounds on the area-resized size, an error outside them (default: one code … 4096×4096).
    #[arg(long)]
    min_pixels: Option<u64>,
    #[arg(long)]
    max_pixels: Option<u64>,
    /// Output grid (JSON: {"height", "width", "codes"}).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    on: DeviceArgs,
}

#[derive(clap::Args)]
pub struct DecodeArgs {
    #[arg(long)]
    vq: PathBuf,
    /// Grid written by `earl encode` (or by generation).
    #[arg(long)]
    codes: PathBuf,
    /// Output image; the format follows the extension (png, jpg, webp).
    #[arg(long)]
    out: PathBuf,
    /// Largest decoded image, in pixels (default: the vision tokenizer's `max_pixels`).
    #[arg(long)]
    max_pixels: Option<u64>,
    #[command(flatten)]
    on: DeviceArgs,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// `emu3` (the released tokenizer's shape) or `tiny` (for a CPU smoke test).
    #[arg(long, default_value = "emu3")]
    config: String,
    #[arg(long, default_value_t = 16)]
    batch: i64,
    /// Image side in pixels (square images).
    #[arg(long, default_value_t = 256)]
    size: i64,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value = "bf16")]
    dtype: String,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    iters: usize,
}

fn load(dir: &std::path::Path, on: &DeviceArgs) -> Result<Emu3VqModel> {
    let device = parse_device(&on.device)?;
    let kind = parse_dtype(&on.dtype)?;
    Emu3VqModel::from_dir(dir, kind, device).with_context(|| format!("loading {}", dir.display()))
}

pub fn encode(a: &EncodeArgs) -> Result<i32> {
    let model = load(&a.vq, &a.on)?;
    let factor = model.cfg.spatial_factor() as u32;
    let mut cfg = ImageProcessConfig::from_dir(&a.vq, factor)?;
    cfg.area = a.area;
    cfg.min_pixels = a.min_pixels.unwrap_or(cfg.min_pixels);
    cfg.max_pixels = a.max_pixels.unwrap_or(cfg.max_pixels);
    let img = imageproc::load_rgb(&a.image, &LoadLimits::default())?;
    let pixels = imageproc::preprocess(&img, &cfg).with_context(|| format!("preprocessing {}", a.image.display()))?;
    let t0 = Instant::now();
    let codes = tch::no_grad(|| model.encode(&pixels))?;
    let grid = CodeGrid::from_tensor(&codes.get(0))?;
    crate::choice::announce("encode", model.device(), Some(model.kind()), Some(&a.out));
    earl_core::fsio::write_atomic(&a.out, (grid.to_json() + "\n").as_bytes())?;
    let s = pixels.size();
    println!(
        "{} ({}×{}) → resized {}×{} → {}×{} codes in {:.1} ms → {}",
        a.image.display(),
        img.width(),
        img.height(),
        s[3],
        s[2],
        grid.w(),
        grid.h(),
        t0.elapsed().as_secs_f64() * 1e3,
        a.out.display()
    );
    Ok(0)
}

pub fn decode(a: &DecodeArgs) -> Result<i32> {
    let text = std::fs::read_to_string(&a.codes).with_context(|| format!("reading {}", a.codes.display()))?;
    let grid = CodeGrid::from_json(&text, &a.codes.display().to_string())?;
    imageproc::check_output(&a.out)?;
    let model = load(&a.vq, &a.on)?;
    let factor = model.cfg.spatial_factor() as u32;
    let cfg = ImageProcessConfig::from_dir(&a.vq, factor)?;
    let max_pixels = a.max_pixels.unwrap_or(cfg.max_pixels);
    imageproc::check_decode_size(grid.h() as u32, grid.w() as u32, factor, max_pixels)
        .with_context(|| format!("decoding {}", a.codes.display()))?;
    let t0 = Instant::now();
    let pixels = tch::no_grad(|| model.decode(&grid.to_tensor()))?;
    let img = imageproc::to_rgb8(&pixels, &cfg)?.remove(0);
    crate::choice::announce("decode", model.device(), Some(model.kind()), Some(&a.out));
    imageproc::save(&img, &a.out)?;
    println!(
        "{}×{} codes → {}×{} image in {:.1} ms → {}",
        grid.w(),
        grid.h(),
        img.width(),
        img.height(),
        t0.elapsed().as_secs_f64() * 1e3,
        a.out.display()
    );
    Ok(0)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Mean milliseconds of `f` over `iters` runs after `warmup` runs.
fn time(device: Device, warmup: usize, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    sync(device);
    let t0 = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    sync(device);
    Ok(t0.elapsed().as_secs_f64() * 1e3 / iters.max(1) as f64)
}

pub fn bench(a: &BenchArgs) -> Result<i32> {
    let device = parse_device(&a.device)?;
    let kind = parse_dtype(&a.dtype)?;
    let cfg = match a.config.as_str() {
        "emu3" => VqConfig::emu3(),
        "tiny" => VqConfig::tiny(),
        other => anyhow::bail!("--config {other:?}: use emu3 or tiny"),
    };
    let model = Emu3VqModel::load(&VqRandomSource::new(0, kind, device), cfg)?;
    tch::manual_seed(0);
    let images = Tensor::rand([a.batch, 3, a.size, a.size], (Kind::Float, device)) * 2.0 - 1.0;
    let _guard = tch::no_grad_guard();
    let codes = model.encode(&images)?;
    let device_name = match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    };
    for (op, ms) in [
        ("encode", time(device, a.warmup, a.iters, || model.encode(&images).map(drop).map_err(Into::into))?),
        ("decode", time(device, a.warmup, a.iters, || model.decode(&codes).map(drop).map_err(Into::into))?),
    ] {
        let line = serde_json::json!({
            "impl": "earl-rs", "op": op, "config": a.config, "batch": a.batch, "size": a.size,
            "dtype": dtype_name(kind), "device": device_name, "iters": a.iters,
            "ms_per_batch": (ms * 1e3).round() / 1e3, "images_per_s": (a.batch as f64 * 1e3 / ms * 10.0).round() / 10.0,
        });
        println!("{line}");
    }
    Ok(0)
}

//! `earl vq train` and `earl tokenizer train`: train the two tokenizers of a small Emu3 model from files — a
//! vision tokenizer on the PNG/JPEG/WebP images of a directory (cycled in a seeded shuffled order, one epoch after
//! another), a BPE text tokenizer on a text file (one text per line, `\n` escapes for line breaks inside a text).
//! Thin wrappers of `earl_core::vq::train::train_vq` and `earl_core::tokenizer::train::train_bpe`.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use earl_core::device::parse_device;
use earl_core::imageproc::{self, LoadLimits, RgbImage};
use earl_core::tokenizer::train::{train_bpe, BpeTrainConfig};
use earl_core::vq::train::{train_vq, RawVqTrainConfig, ReconLoss};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Subcommand)]
pub enum VqCommand {
    /// Train a vision tokenizer (transformers `Emu3VQVAE` layout) on a directory of images.
    Train(VqTrainArgs),
}

#[derive(clap::Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE text tokenizer with Emu3's special and visual tokens (writes tokenizer.json).
    Train(TokTrainArgs),
}

#[derive(clap::Args)]
pub struct VqTrainArgs {
    /// Directory of training images (sides multiples of 8, one size throughout).
    #[arg(long, required_unless_present = "world", conflicts_with = "world")]
    images: Option<PathBuf>,
    /// Train on the EARL-mini world instead: an endless stream of the training splits' source and target images
    /// under this seed (`earl_mini::corpus::training_images`).
    #[arg(long)]
    world: Option<u64>,
    /// Output directory: config.json, model.safetensors, preprocessor_config.json, metrics.jsonl.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1024)]
    codebook: i64,
    /// Latent and code dimension.
    #[arg(long, default_value_t = 8)]
    embed_dim: i64,
    /// Channels of the first level (levels 32·[1, 2, 2, 4] by default).
    #[arg(long, default_value_t = 32)]
    base_channels: i64,
    /// Reconstruction loss: l1 or l2.
    #[arg(long, default_value = "l1")]
    recon: String,
    /// Restart unused codebook entries every N steps (0: never).
    #[arg(long, default_value_t = 50)]
    restart_every: u64,
    /// Also save every N steps (0: only at the end).
    #[arg(long, default_value_t = 0)]
    save_every: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
pub struct TokTrainArgs {
    /// Training texts, one per line (`\n` inside a line stands for a line break).
    #[arg(long, required_unless_present = "world", conflicts_with = "world")]
    texts: Option<PathBuf>,
    /// Train on the EARL-mini world's texts instead: instructions and CoT of the training splits' samples
    /// `0..--world-count` under this seed (`earl_mini::corpus::training_texts`).
    #[arg(long)]
    world: Option<u64>,
    #[arg(long, default_value_t = 20_000)]
    world_count: u64,
    /// Visual tokens to append (the vision tokenizer's codebook size).
    #[arg(long)]
    codebook: u32,
    /// Output directory (tokenizer.json).
    #[arg(long)]
    out: PathBuf,
    /// BPE merges on top of the 256 byte symbols.
    #[arg(long, default_value_t = 1024)]
    merges: usize,
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
}

fn read_images(dir: &Path) -> Result<Vec<RgbImage>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "webp")
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no PNG, JPEG or WebP images in {}", dir.display());
    }
    let limits = LoadLimits::default();
    paths.iter().map(|p| imageproc::load_rgb(p, &limits).with_context(|| format!("loading {}", p.display()))).collect()
}

/// Every image once per epoch, in an order shuffled per epoch from `seed` (a splitmix64 stream).
fn epochs(images: Vec<RgbImage>, seed: u64) -> impl Iterator<Item = RgbImage> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let n = images.len();
    (0..)
        .flat_map(move |_| {
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                order.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            order
        })
        .map(move |i| images[i].clone())
}

pub fn vq_train(a: &VqTrainArgs) -> Result<i32> {
    let device = parse_device(&a.device)?;
    let recon = match a.recon.as_str() {
        "l1" => ReconLoss::L1,
        "l2" => ReconLoss::L2,
        other => bail!("--recon must be l1 or l2, got {other:?}"),
    };
    let raw = RawVqTrainConfig {
        codebook_size: Some(a.codebook),
        embed_dim: Some(a.embed_dim),
        base_channels: Some(a.base_channels),
        steps: Some(a.steps),
        batch_size: Some(a.batch),
        lr: Some(a.lr),
        recon: Some(recon),
        restart_every: Some(a.restart_every),
        save_every: Some(a.save_every),
        seed: Some(a.seed),
        ..Default::default()
    };
    let cfg = raw.into_config(device)?;
    let images: Box<dyn Iterator<Item = RgbImage>> = match (&a.images, a.world) {
        (_, Some(seed)) => {
            eprintln!("training a vision tokenizer on EARL-mini world images (seed {seed}, {device:?})");
            Box::new(earl_mini::corpus::training_images(seed))
        }
        (Some(dir), None) => {
            let images = read_images(dir)?;
            eprintln!("training a vision tokenizer on {} images from {} ({device:?})", images.len(), dir.display());
            Box::new(epochs(images, a.seed))
        }
        (None, None) => bail!("give --images DIR or --world SEED"),
    };
    let bar = ProgressBar::new(cfg.steps);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let r = train_vq(images, &cfg, &a.out, |m| {
        bar.set_position(m.step);
        bar.set_message(format!("recon {:.4} codes {} ppl {:.0}", m.recon, m.codes_used, m.perplexity));
    })?;
    bar.finish_and_clear();
    let last = r.last.as_ref().map(|m| format!("recon {:.4}, {} codes in the last batch", m.recon, m.codes_used));
    println!(
        "saved {} ({} parameters, {:.1} MB of weights, {} steps{})",
        r.dir.display(),
        r.parameters,
        r.weights_bytes as f64 / 1e6,
        r.steps,
        last.map(|l| format!(", {l}")).unwrap_or_default()
    );
    Ok(0)
}

pub fn tokenizer_train(a: &TokTrainArgs) -> Result<i32> {
    let texts: Vec<String> = match (&a.texts, a.world) {
        (_, Some(seed)) => earl_mini::corpus::training_texts(seed, a.world_count),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            text.lines().filter(|l| !l.is_empty()).map(|l| l.replace("\\n", "\n")).collect()
        }
        (None, None) => bail!("give --texts FILE or --world SEED"),
    };
    let cfg = BpeTrainConfig { merges: a.merges, min_frequency: a.min_frequency, codebook: a.codebook };
    let r = train_bpe(texts, &cfg, &a.out)?;
    println!(
        "saved {} ({} texts; {} BPE ids, {} in all, visual tokens from id {})",
        r.path.display(),
        r.texts,
        r.bpe_vocab,
        r.vocab_size,
        r.first_visual_id
    );
    Ok(0)
}

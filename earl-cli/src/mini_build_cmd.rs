//! `earl mini init` and `earl mini bundle`: the two ends of training EARL-mini's language model. `init` writes a
//! fresh Emu3-config decoder sized for the world, its vocabulary and role ids taken from a trained text tokenizer
//! (`earl tokenizer train --world`), so `earl sft` can start from it. `bundle` packs a trained checkpoint with its
//! tokenizers, an example sample and `earl-bundle.toml` (the defaults `earl edit` uses) into one directory, the
//! language model converted to bf16 so the whole bundle stays small enough to commit (docs/mini.md).
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use earl_core::bundle::{Bundle, BUNDLE_FILE};
use earl_core::config::Emu3Config;
use earl_core::model::init::{write_initial_checkpoint, InitConfig};
use earl_core::tokenizer::Emu3Tokenizer;
use earl_mini::{sample_dir, Sample, Split, WORLD_SIZE};
use tch::Kind;

#[derive(clap::Args)]
pub struct InitArgs {
    /// Directory of the text tokenizer (tokenizer.json); copied into the output.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Output directory: config.json, model.safetensors (f32), tokenizer.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 256)]
    hidden: i64,
    #[arg(long, default_value_t = 8)]
    layers: i64,
    #[arg(long, default_value_t = 8)]
    heads: i64,
    #[arg(long, default_value_t = 4)]
    kv_heads: i64,
    /// Width of the SwiGLU MLP.
    #[arg(long, default_value_t = 704)]
    intermediate: i64,
    /// Longest sequence: a world edit with its CoT is about 1000 tokens.
    #[arg(long, default_value_t = 1280)]
    max_positions: i64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Standard deviation of the initial matrices.
    #[arg(long, default_value_t = 0.02)]
    std: f64,
}

#[derive(clap::Args)]
pub struct BundleArgs {
    /// The trained checkpoint (config.json + model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// The text tokenizer directory (default: the checkpoint's own).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The vision tokenizer directory; copied to OUT/vq.
    #[arg(long)]
    vq: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Assistant prefill the bundle declares.
    #[arg(long, default_value = "E")]
    mode: String,
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// `-1` = off.
    #[arg(long, default_value_t = 64)]
    top_k: i64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// The example sample written to OUT/example: split, seed and index.
    #[arg(long, default_value = "s-test")]
    example_split: String,
    #[arg(long, default_value_t = 7)]
    example_seed: u64,
    #[arg(long, default_value_t = 0)]
    example_index: u64,
    /// One line about the bundle (where it came from).
    #[arg(long, default_value = "")]
    description: String,
}

/// The decoder config of a world model over `tok`'s vocabulary.
fn world_config(a: &InitArgs, tok: &Emu3Tokenizer) -> Emu3Config {
    let sp = tok.special();
    Emu3Config {
        vocab_size: tok.vocab_size() as i64,
        hidden_size: a.hidden,
        intermediate_size: a.intermediate,
        num_layers: a.layers,
        num_heads: a.heads,
        num_kv_heads: a.kv_heads,
        head_dim: if a.heads > 0 { a.hidden / a.heads } else { 0 },
        max_position_embeddings: a.max_positions,
        pad_token_id: i64::from(sp.pad),
        bos_token_id: i64::from(sp.bos),
        eos_token_ids: vec![i64::from(sp.eos)],
        // No dropout: the world is small and fully procedural, the data never repeats exactly.
        attention_dropout: 0.0,
        ..Emu3Config::emu3_8b()
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    earl_core::fsio::write_atomic(to, &bytes).with_context(|| format!("writing {}", to.display()))
}

pub fn init(a: &InitArgs) -> Result<i32> {
    let tok = Emu3Tokenizer::from_dir(&a.tokenizer).with_context(|| format!("loading {}", a.tokenizer.display()))?;
    let cfg = world_config(a, &tok);
    cfg.validate().map_err(|e| anyhow::anyhow!("the model shape: {e}"))?;
    let n = write_initial_checkpoint(&cfg, InitConfig { seed: a.seed, std: a.std }, Kind::Float, &a.out)?;
    copy(&a.tokenizer.join("tokenizer.json"), &a.out.join("tokenizer.json"))?;
    println!(
        "wrote {} ({:.2}M parameters: {} layers × {} wide, {} heads / {} kv, vocab {})",
        a.out.display(),
        n as f64 / 1e6,
        cfg.num_layers,
        cfg.hidden_size,
        cfg.num_heads,
        cfg.num_kv_heads,
        cfg.vocab_size
    );
    Ok(0)
}

fn bundle_toml(a: &BundleArgs, example: &Sample) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "# Defaults of this bundle, used by `earl edit` unless flags say otherwise (earl_core::bundle).\n\
         name = {name}\ndescription = {desc}\nvq = \"vq\"\narea = {area}\nmode = {mode}\n\
         temperature = {t:?}\ntop_k = {k}\ntop_p = {p:?}\n\n[example]\nimage = \"example/source.png\"\n\
         instruction = {ins}\n",
        name = q(&a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        desc = q(&a.description),
        area = WORLD_SIZE * WORLD_SIZE,
        mode = q(&a.mode),
        t = a.temperature,
        k = a.top_k,
        p = a.top_p,
        ins = q(&example.instruction),
    )
}

pub fn bundle(a: &BundleArgs) -> Result<i32> {
    let tok_dir = a.tokenizer.clone().unwrap_or_else(|| a.model.clone());
    let cfg = Emu3Config::from_dir(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let lm = earl_core::Emu3ForCausalLM::from_dir(&a.model, Kind::Float, tch::Device::Cpu)
        .with_context(|| format!("loading {}", a.model.display()))?;
    std::fs::create_dir_all(a.out.join("vq")).with_context(|| format!("creating {}", a.out.display()))?;
    earl_core::train::checkpoint::write_safetensors(
        &a.out.join("model.safetensors"),
        &lm.named_parameters(),
        Kind::BFloat16,
    )?;
    let config = earl_core::train::checkpoint::hf_config_json(&cfg, Kind::BFloat16);
    earl_core::fsio::write_atomic(
        &a.out.join("config.json"),
        (serde_json::to_string_pretty(&config)? + "\n").as_bytes(),
    )?;
    copy(&tok_dir.join("tokenizer.json"), &a.out.join("tokenizer.json"))?;
    for f in ["config.json", "model.safetensors", "preprocessor_config.json"] {
        copy(&a.vq.join(f), &a.out.join("vq").join(f))?;
    }
    let split = Split::parse(&a.example_split).context("--example-split")?;
    let example = Sample::generate(split, a.example_seed, a.example_index);
    sample_dir::write(&example, &a.out.join("example")).context("writing the example")?;
    earl_core::fsio::write_atomic(&a.out.join(BUNDLE_FILE), bundle_toml(a, &example).as_bytes())?;
    // The bundle must load as a bundle: a mistake here is caught now, not by the first user.
    let Some(b) = Bundle::open(&a.out)? else { bail!("{} was not written", BUNDLE_FILE) };
    earl_core::Editor::load(&a.out, &b.vq, &b.tokenizer, Kind::Float, Kind::Float, tch::Device::Cpu)
        .with_context(|| format!("loading the written bundle {}", a.out.display()))?;
    let bytes: u64 = walk_bytes(&a.out)?;
    println!("wrote {} ({:.1} MB in all)", a.out.display(), bytes as f64 / 1e6);
    Ok(0)
}

fn walk_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() { walk_bytes(&e.path())? } else { m.len() };
    }
    Ok(total)
}

#[derive(clap::Args)]
pub struct RoundtripArgs {
    /// The vision tokenizer directory.
    #[arg(long)]
    vq: PathBuf,
    #[arg(long, default_value = "s-test")]
    split: String,
    /// Default: the evaluation seed of the mini benchmarks.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Also write the first few originals and reconstructions here (side by side).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The verifier's mean scores of VQ round trips: each sample's target (which should score 10) and its unchanged
/// source (which should score low), encoded and decoded by the VQ — the ceiling any LM working through it can
/// reach, and the acceptance check of a trained vision tokenizer (docs/mini.md).
pub fn roundtrip(a: &RoundtripArgs) -> Result<i32> {
    let split = Split::parse(&a.split).context("--split")?;
    let seed = a.seed.unwrap_or(earl_eval::mini::MINI_EVAL_SEED);
    let device = earl_core::device::parse_device(&a.device)?;
    let mut codec = earl_core::edit::ImageCodec::from_dir(&a.vq, Kind::Float, device)
        .with_context(|| format!("loading {}", a.vq.display()))?;
    codec.image_cfg.area = u64::from(WORLD_SIZE * WORLD_SIZE);
    let (mut target, mut source, mut worst) = (0.0, 0.0, f64::INFINITY);
    for i in 0..a.count {
        let s = Sample::generate(split, seed, i);
        let imgs = [earl_mini::render::render(&s.target), earl_mini::render::render(&s.source)];
        let grids = codec.encode_images(&imgs)?;
        let recon: Vec<_> = grids.iter().map(|g| codec.decode_grid(g)).collect::<earl_core::Result<_>>()?;
        let task = s.task();
        let t = earl_mini::Verifier.score(&task, &recon[0]).overall;
        source += earl_mini::Verifier.score(&task, &recon[1]).overall;
        target += t;
        worst = worst.min(t);
        if let Some(dir) = a.out.as_ref().filter(|_| i < 16) {
            std::fs::create_dir_all(dir)?;
            earl_core::imageproc::save(&imgs[0], &dir.join(format!("{i}-target.png")))?;
            earl_core::imageproc::save(&recon[0], &dir.join(format!("{i}-target-vq.png")))?;
        }
    }
    let n = a.count.max(1) as f64;
    let summary = serde_json::json!({
        "split": split.name(), "seed": seed, "count": a.count,
        "target_roundtrip_overall": target / n, "target_roundtrip_worst": worst,
        "source_roundtrip_overall": source / n,
    });
    println!("{summary}");
    Ok(0)
}

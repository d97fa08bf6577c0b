//! `earl mini …`: the EARL-mini world on the command line (docs/mini.md). `sample` writes samples of a split as
//! directories (images, instruction, CoT, scene graphs); `score` judges an edited image against a sample with the
//! exact verifier, printing one JSON object on stdout and diagnostics on stderr; `data` writes a split as a
//! training dataset (the `edits` shard format) through the vision tokenizer, by the same pipeline as `earl data
//! tokenize` (`earl_core::data::tokenize::tokenize_stream`). Everything else is earl-mini.
use std::path::PathBuf;

use anyhow::{Context, Result};
use earl_core::data::tokenize::{self, ImageData, RawPair, TokenizeOptions};
use earl_core::edit::ImageCodec;
use earl_core::imageproc::{self, LoadLimits};
use earl_mini::render::render;
use earl_mini::{sample_dir, Sample, Split, Verifier, WORLD_SIZE};

#[derive(clap::Subcommand)]
pub enum MiniCommand {
    /// Write samples of a split: DIR/<i>/{source.png,target.png,instruction.txt,cot.txt,scene.json}.
    Sample {
        /// s-train, c-train, s-test, c-test or ood-test.
        #[arg(long)]
        split: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 10)]
        count: u64,
        /// Index of the first sample.
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write samples `0..count` of a split as an `edits` dataset (VQ codes at 128×128, i.e. 16×16 codes at
    /// factor 8); resumable like `earl data tokenize`.
    Data {
        /// s-train, c-train, s-test, c-test or ood-test.
        #[arg(long)]
        split: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        count: u64,
        /// The vision tokenizer directory.
        #[arg(long)]
        vq: PathBuf,
        /// Keep each sample's CoT (grounding and plan), for think-SFT; without it the records have none.
        #[arg(long)]
        cot: bool,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        shard_records: u64,
        /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// A fresh (untrained) Emu3-config language model for the world, sized by flags, over a trained tokenizer.
    Init(crate::mini_build_cmd::InitArgs),
    /// Verifier scores of VQ round trips of a split's targets and sources (the vision tokenizer's check).
    Roundtrip(crate::mini_build_cmd::RoundtripArgs),
    /// Pack a trained checkpoint, its tokenizers and an example into a bundle with its own defaults.
    Bundle(crate::mini_build_cmd::BundleArgs),
    /// Score an edited image against a sample directory with the exact verifier (JSON on stdout).
    Score {
        /// A sample directory written by `earl mini sample`.
        #[arg(long)]
        sample: PathBuf,
        /// The edited image; another size is resized (nearest neighbour) to the world's 128×128 first.
        #[arg(long)]
        image: PathBuf,
    },
}

pub fn run(cmd: &MiniCommand) -> Result<i32> {
    match cmd {
        MiniCommand::Sample { split, seed, count, start, out } => {
            let split = Split::parse(split).context("--split")?;
            for i in *start..start + count {
                let s = Sample::generate(split, *seed, i);
                let dir = out.join(i.to_string());
                sample_dir::write(&s, &dir).with_context(|| format!("writing sample {i}"))?;
            }
            println!("wrote {count} samples of {} (seed {seed}) to {}", split.name(), out.display());
            Ok(0)
        }
        MiniCommand::Data { split, seed, count, vq, cot, out, shard_records, device, dtype } => {
            let split = Split::parse(split).context("--split")?;
            let device = earl_core::device::parse_device(device)?;
            let kind = earl_core::device::parse_dtype(dtype)?;
            let mut codec =
                ImageCodec::from_dir(vq, kind, device).with_context(|| format!("loading {}", vq.display()))?;
            codec.image_cfg.area = u64::from(WORLD_SIZE * WORLD_SIZE);
            // World boxes are already in the 128×128 frame, which the area keeps: nothing to rescale.
            // World images are generated in memory and encoded 256 at a time (one size throughout).
            let opts =
                TokenizeOptions { seed: *seed, shard_records: *shard_records, rescale_cot_boxes: false, batch: 256 };
            let pairs = (0..*count).map(|i| pair(split, *seed, i, *cot));
            let mut meta = serde_json::Map::new();
            meta.insert(
                "mini".into(),
                serde_json::json!({"split": split.name(), "seed": seed, "count": count, "cot": cot}),
            );
            let m = tokenize::tokenize_stream(&codec, pairs, *count as usize, out, &opts, meta, &mut |_, _| {})?;
            crate::choice::announce("mini data", device, Some(kind), Some(out));
            println!("{}: {} records in {} shards", out.display(), m.records, m.shards.len());
            Ok(0)
        }
        MiniCommand::Init(a) => crate::mini_build_cmd::init(a),
        MiniCommand::Bundle(a) => crate::mini_build_cmd::bundle(a),
        MiniCommand::Roundtrip(a) => crate::mini_build_cmd::roundtrip(a),
        MiniCommand::Score { sample, image } => {
            let s = sample_dir::read(sample).context("reading the sample")?;
            let img = imageproc::load_rgb(image, &LoadLimits::default())?;
            if img.dimensions() != (WORLD_SIZE, WORLD_SIZE) {
                eprintln!(
                    "{}: {}×{} resized to {WORLD_SIZE}×{WORLD_SIZE} (nearest)",
                    image.display(),
                    img.width(),
                    img.height()
                );
            }
            let score = Verifier.score(&s.task(), &img);
            eprintln!(
                "{}: found {} of {} objects, background {}, {} noise pixels",
                s.instruction,
                score.objects_found,
                score.objects_expected,
                score.background.map(|b| b.name()).unwrap_or("none"),
                score.noise_pixels
            );
            println!("{}", serde_json::to_string(&score)?);
            Ok(0)
        }
    }
}

/// Sample `index` as a raw pair: both images rendered in memory, the CoT kept when `cot`.
fn pair(split: Split, seed: u64, index: u64, cot: bool) -> earl_core::Result<RawPair> {
    let s = Sample::generate(split, seed, index);
    let meta = [("split", split.name().to_string()), ("seed", seed.to_string()), ("index", index.to_string())]
        .into_iter()
        .chain([("edit", s.edit.kind().to_string())])
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Ok(RawPair {
        id: format!("{}-{seed}-{index}", split.name()),
        source: ImageData::Decoded(render(&s.source)),
        target: ImageData::Decoded(render(&s.target)),
        instruction: s.instruction.clone(),
        cot: if cot { s.cot.clone() } else { Default::default() },
        meta,
    })
}

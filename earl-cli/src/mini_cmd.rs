//! `earl mini …`: the EARL-mini world on the command line (docs/mini.md). `sample` writes samples of a split as
//! directories (images, instruction, CoT, scene graphs); `score` judges an edited image against a sample with the
//! exact verifier, printing one JSON object on stdout and diagnostics on stderr. Everything else is earl-mini.
use std::path::PathBuf;

use anyhow::{Context, Result};
use earl_core::imageproc::{self, LoadLimits};
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

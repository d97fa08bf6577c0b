//! `earl data …`: dataset tools. `import-earl` converts the reference's tokenized lists (`tokenized_datalist.json` +
//! one `torch.save` file per sample) into the sharded format through `scripts/earl_pth_to_jsonl.py` (pickle never
//! enters this process); rerunning it resumes, skipping ids already written. `verify` re-checks a dataset's manifest,
//! record counts and checksums.
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use earl_core::data::{CodeGrid, EditRecord, ShardReader, ShardWriter};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Import EARL's tokenized data (`tokenized_datalist.json` lists) into an `edits` dataset directory.
    ImportEarl {
        /// One or more tokenized_datalist.json files.
        #[arg(required = true)]
        lists: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Records per shard.
        #[arg(long, default_value_t = 10_000)]
        shard_records: u64,
        /// Python with torch installed (default: $EARL_PYTHON, else .venv/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
    },
    /// Check a dataset directory: manifest, record counts, SHA-256 of every shard, and that every record parses.
    Verify { dir: PathBuf },
    /// Tokenize raw image pairs through the vision tokenizer: a JSONL list with `source`, `target` (or `edited`),
    /// `instruction`, optional `id`, `cot` and `meta` per line (paths relative to the list). Resumable.
    Tokenize {
        list: PathBuf,
        #[arg(long)]
        vq: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Target pixel area of every image (EARL: 256×256).
        #[arg(long, default_value_t = 256 * 256)]
        area: u64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 10_000)]
        shard_records: u64,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
}

#[derive(serde::Deserialize)]
struct Imported {
    id: String,
    instruction: String,
    source: Vec<Vec<i64>>,
    edited: Vec<Vec<i64>>,
    #[serde(default)]
    cot: BTreeMap<String, String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
}

fn grid(rows: &[Vec<i64>], what: &str, id: &str) -> Result<CodeGrid> {
    let (h, w) = (rows.len(), rows.first().map_or(0, |r| r.len()));
    let mut codes = Vec::with_capacity(h * w);
    for r in rows {
        if r.len() != w {
            bail!("sample {id}: {what} rows have different lengths");
        }
        for &c in r {
            codes.push(u16::try_from(c).with_context(|| format!("sample {id}: {what} code {c} is not in 0..65536"))?);
        }
    }
    CodeGrid::new(h, w, codes).map_err(|e| anyhow::anyhow!("sample {id}: {what}: {e}"))
}

fn python(explicit: &Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p.clone();
    }
    if let Ok(p) = std::env::var("EARL_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(".venv/bin/python");
    if venv.exists() { venv } else { "python3".into() }
}

pub fn run(cmd: &DataCommand) -> Result<i32> {
    match cmd {
        DataCommand::Tokenize { list, vq, out, area, seed, shard_records, device, dtype } => {
            let device = earl_core::device::parse_device(device)?;
            let kind = earl_core::device::parse_dtype(dtype)?;
            let model = earl_core::Emu3VqModel::from_dir(vq, kind, device).with_context(|| format!("loading {}", vq.display()))?;
            let mut cfg = earl_core::imageproc::ImageProcessConfig::from_dir(vq, model.cfg.spatial_factor() as u32)?;
            cfg.area = *area;
            let pairs = earl_core::data::tokenize::read_pairs(list)?;
            let bar = ProgressBar::new(pairs.len() as u64);
            bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} pairs [{elapsed_precise}<{eta_precise}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()));
            let m = earl_core::data::tokenize::tokenize_pairs(&model, &cfg, pairs, out, *seed, *shard_records, &mut |d, _| {
                bar.set_position(d as u64)
            })?;
            bar.finish_and_clear();
            println!("{}: {} records in {} shards", out.display(), m.records, m.shards.len());
            Ok(0)
        }
        DataCommand::ImportEarl { lists, out, shard_records, python: py } => {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/earl_pth_to_jsonl.py");
            let mut writer = ShardWriter::create_or_resume(out, "edits", *shard_records)?;
            writer.meta_mut().insert("imported_from".into(), serde_json::json!(lists));
            let before = writer.records();
            let mut child = Command::new(python(py))
                .arg(&script)
                .args(lists)
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {}", script.display()))?;
            let stdout = child.stdout.take().context("converter stdout")?;
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {pos} samples ({per_sec}) {msg}")?);
            let (mut skipped, mut added) = (0u64, 0u64);
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.context("reading the converter's output")?;
                let r: Imported = serde_json::from_str(&line).context("malformed converter output line")?;
                bar.inc(1);
                if writer.is_done(&r.id) {
                    skipped += 1;
                    continue;
                }
                let rec = EditRecord {
                    source: grid(&r.source, "original_image", &r.id)?,
                    edited: grid(&r.edited, "edited_image", &r.id)?,
                    id: r.id,
                    instruction: r.instruction,
                    cot: r.cot,
                    meta: r.meta,
                };
                writer.push(Some(&rec.id), &rec)?;
                added += 1;
            }
            let status = child.wait()?;
            // Keep what was converted even when the converter failed part-way: a rerun resumes after it.
            let manifest = writer.finish()?;
            bar.finish_and_clear();
            if !status.success() {
                bail!("the converter failed ({status}); {added} samples were written, rerun to resume");
            }
            println!(
                "imported {added} samples ({skipped} already present, {before} before) into {}: {} records in {} shards",
                out.display(),
                manifest.records,
                manifest.shards.len()
            );
            Ok(0)
        }
        DataCommand::Verify { dir } => {
            let r = ShardReader::open(dir)?;
            r.verify()?;
            for i in 0..r.len() {
                match r.manifest.kind.as_str() {
                    "edits" => drop(r.get::<EditRecord>(i)?),
                    _ => drop(r.get::<earl_core::train::Sequence>(i)?),
                }
            }
            println!("{}: {} {} records in {} shards, checksums ok", dir.display(), r.len(), r.manifest.kind, r.manifest.shards.len());
            Ok(0)
        }
    }
}

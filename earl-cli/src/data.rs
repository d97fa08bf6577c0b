//! `earl data …`: dataset tools. `tokenize` encodes raw image pairs (JSONL + image files, or HF parquet files with
//! named columns) through the vision tokenizer. `import-earl` converts the reference's tokenized lists (`tokenized_datalist.json` +
//! one `torch.save` file per sample) into the sharded format through `scripts/earl_pth_to_jsonl.py` (pickle never
//! enters this process); rerunning it resumes, skipping ids already written. `verify` re-checks a dataset's manifest,
//! record counts and checksums.
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use earl_core::data::parquet::{find_parquet_files, ParquetColumns, ParquetPairs};
use earl_core::data::tokenize::{self, TokenizeOptions};
use earl_core::data::{EditRecord, ShardReader, ShardWriter};
use earl_core::edit::ImageCodec;
use earl_core::CodeGrid;
use indicatif::{ProgressBar, ProgressStyle};

// Parsed once per process; boxing the big variant would only obscure the clap derive.
#[allow(clippy::large_enum_variant)]
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
    Verify {
        dir: PathBuf,
        /// Also check token ids and labels against this model's vocabulary (its `config.json`).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Tokenize raw image pairs through the vision tokenizer, from a JSONL list with `source`, `target` (or
    /// `edited`), `instruction`, optional `id`, `cot` and `meta` per line (paths relative to the list), or from
    /// Hugging Face parquet files with the columns named (`--parquet`). Seeded order; resumable (ids already in
    /// `--out` are skipped).
    Tokenize {
        /// JSONL list of pairs (omit with --parquet).
        #[arg(required_unless_present = "parquet", conflicts_with = "parquet")]
        list: Option<PathBuf>,
        /// Parquet files or directories (searched recursively, like the reference's `**/*{split}*.parquet`).
        #[arg(long, num_args = 1..)]
        parquet: Vec<PathBuf>,
        /// Only parquet files whose name contains this (e.g. `train`).
        #[arg(long, requires = "parquet")]
        split: Option<String>,
        /// Column of the original image (reference: `--original-image-key`).
        #[arg(long, alias = "original-image-key", default_value = "original_image")]
        source_column: String,
        /// Column of the edited image (reference: `--edited-image`).
        #[arg(long, alias = "edited-image", default_value = "edited_image")]
        edited_column: String,
        /// Column of the instruction (reference: `--edit-instruction`).
        #[arg(long, alias = "edit-instruction", default_value = "instruction")]
        instruction_column: String,
        /// Column of the row ids (reference: `--id-key`); default: the row index over all files.
        #[arg(long, alias = "id-key")]
        id_column: Option<String>,
        /// Chain-of-thought columns (reference: `--CoT-keys`).
        #[arg(long, alias = "CoT-keys", num_args = 1..)]
        cot_columns: Vec<String>,
        /// Columns copied into each record's metadata (edit type, …).
        #[arg(long, num_args = 1..)]
        meta_columns: Vec<String>,
        /// Keep CoT bounding boxes as written instead of rescaling them to the resized image (the reference rescales).
        #[arg(long)]
        keep_cot_boxes: bool,
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
        /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
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
            codes.push(
                u32::try_from(c).with_context(|| format!("sample {id}: {what} code {c} is negative or too large"))?,
            );
        }
    }
    CodeGrid::new(h, w, codes).with_context(|| format!("sample {id}: {what}"))
}

fn python(explicit: &Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p.clone();
    }
    if let Ok(p) = std::env::var("EARL_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

pub fn run(cmd: &DataCommand) -> Result<i32> {
    match cmd {
        DataCommand::Tokenize {
            list,
            parquet,
            split,
            source_column,
            edited_column,
            instruction_column,
            id_column,
            cot_columns,
            meta_columns,
            keep_cot_boxes,
            vq,
            out,
            area,
            seed,
            shard_records,
            device,
            dtype,
        } => {
            let device = earl_core::device::parse_device(device)?;
            let kind = earl_core::device::parse_dtype(dtype)?;
            let mut codec =
                ImageCodec::from_dir(vq, kind, device).with_context(|| format!("loading {}", vq.display()))?;
            codec.image_cfg.area = *area;
            let opts = TokenizeOptions {
                seed: *seed,
                shard_records: *shard_records,
                rescale_cot_boxes: !keep_cot_boxes,
                batch: 1,
            };
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} pairs [{elapsed_precise}<{eta_precise}]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let mut progress = |d: usize, n: usize| {
                bar.set_length(n as u64);
                bar.set_position(d as u64)
            };
            let m = match list {
                Some(list) => {
                    let pairs = tokenize::read_pairs(list)?;
                    tokenize::tokenize_pairs(&codec, pairs, out, &opts, &mut progress)?
                }
                None => {
                    let files = find_parquet_files(parquet, split.as_deref())?;
                    let columns = ParquetColumns {
                        source: source_column.clone(),
                        edited: edited_column.clone(),
                        instruction: instruction_column.clone(),
                        id: id_column.clone(),
                        cot: cot_columns.clone(),
                        meta: meta_columns.clone(),
                    };
                    let pairs = ParquetPairs::open(&files, columns, *seed)?;
                    let total = pairs.len();
                    let mut meta = serde_json::Map::new();
                    meta.insert("parquet_files".into(), serde_json::json!(files));
                    tokenize::tokenize_stream(&codec, pairs, total, out, &opts, meta, &mut progress)?
                }
            };
            bar.finish_and_clear();
            crate::choice::announce("data tokenize", device, Some(kind), Some(out));
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
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {}", script.display()))?;
            let stdout = child.stdout.take().context("converter stdout")?;
            // Python's diagnostics are collected, not streamed: a failure is then one line (the exception), with
            // the whole traceback in a log file and on stderr under RUST_BACKTRACE=1.
            let mut stderr = child.stderr.take().context("converter stderr")?;
            let diagnostics = std::thread::spawn(move || {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
                text
            });
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
            let diagnostics = diagnostics.join().unwrap_or_default();
            // Keep what was converted even when the converter failed part-way: a rerun resumes after it.
            let manifest = writer.finish()?;
            bar.finish_and_clear();
            if !status.success() {
                let log = std::env::temp_dir().join(format!("earl-import-earl-{}.log", std::process::id()));
                let _ = std::fs::write(&log, &diagnostics);
                if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                    eprint!("{diagnostics}");
                }
                let last = diagnostics.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
                bail!(
                    "the converter failed ({status}): {}; {added} samples were written, rerun to resume (Python's \
                     output: {})",
                    last.trim(),
                    log.display()
                );
            }
            eprint!("{diagnostics}");
            println!(
                "imported {added} samples ({skipped} already present, {before} before) into {}: {} records in {} shards",
                out.display(),
                manifest.records,
                manifest.shards.len()
            );
            Ok(0)
        }
        DataCommand::Verify { dir, model } => {
            let r = ShardReader::open(dir)?;
            r.verify()?;
            let vocab = model.as_deref().map(earl_core::Emu3Config::from_dir).transpose()?.map(|c| c.vocab_size);
            for i in 0..r.len() {
                match r.manifest.kind.as_str() {
                    "edits" => drop(r.get::<EditRecord>(i)?),
                    _ => {
                        let s: earl_core::train::Sequence = r.get(i)?;
                        s.check(vocab).map_err(|e| r.record_error(i, e))?;
                    }
                }
            }
            println!(
                "{}: {} {} records in {} shards, checksums ok",
                dir.display(),
                r.len(),
                r.manifest.kind,
                r.manifest.shards.len()
            );
            Ok(0)
        }
    }
}

/// Checks every shard of every dataset against its manifest's SHA-256 (once per shard per run, before training), so
/// a same-length corruption is an error naming the shard instead of silently training. `--no-verify` skips it.
pub fn verify_datasets<'a>(dirs: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
    let t0 = std::time::Instant::now();
    let mut shards = 0;
    for dir in dirs {
        let reader = ShardReader::open(dir).with_context(|| format!("opening dataset {}", dir.display()))?;
        reader.verify().with_context(|| format!("verifying dataset {} (--no-verify skips this)", dir.display()))?;
        shards += reader.manifest.shards.len();
    }
    eprintln!("verified {shards} shard checksums in {:.2}s", t0.elapsed().as_secs_f64());
    Ok(())
}

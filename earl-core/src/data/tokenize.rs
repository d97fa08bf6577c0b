//! Raw editing data → tokenized [`EditRecord`]s through the vision tokenizer, as EARL's data preparation does it:
//! each source and edited image is resized to the target pixel area (aspect kept, snapped to the spatial factor,
//! bicubic), normalised and VQ-encoded by the edit pipeline's encode step ([`ImageCodec::encode_image`]);
//! chain-of-thought boxes are rescaled to the resized image ([`super::cot`]).
//! The input is a JSONL list of pairs (paths relative to the list) or Hugging Face parquet files
//! ([`super::parquet`]); the order is shuffled with the run seed, ids already present in the output are skipped
//! (resume), and records stream into a sharded dataset.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::record::EditRecord;
use super::rng::DataRng;
use super::shards::{Manifest, ShardWriter};
use crate::edit::ImageCodec;
use crate::error::{Error, Result};
use crate::imageproc::{self, LoadLimits};

/// One line of the input list.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PairLine {
    /// Defaults to the line number.
    #[serde(default)]
    pub id: Option<String>,
    /// The source image (a relative path is resolved against the list's directory).
    pub source: PathBuf,
    /// The edited image (`target` and `edited` are accepted).
    #[serde(alias = "edited")]
    pub target: PathBuf,
    /// The edit instruction.
    pub instruction: String,
    /// Chain of thought, key → text (`cot` and `CoT` are accepted; default empty).
    #[serde(default, alias = "CoT")]
    pub cot: BTreeMap<String, String>,
    /// Free-form metadata kept in the record (default empty).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// Reads a JSONL list; paths are resolved against the list's directory. Errors name the file and line.
pub fn read_pairs(list: &Path) -> Result<Vec<(String, PairLine)>> {
    let text = std::fs::read_to_string(list).map_err(|e| Error::io(list, e))?;
    let base = list.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    let mut first_line: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut p: PairLine = serde_json::from_str(line).map_err(|e| Error::Json {
            path: list.to_path_buf(),
            line: i + 1,
            column: e.column(),
            msg: e.to_string(),
        })?;
        p.source = base.join(&p.source);
        p.target = base.join(&p.target);
        let id = p.id.clone().unwrap_or_else(|| format!("{i:08}"));
        // Checked before any image is encoded: a repeated id would otherwise be skipped as "already done".
        if let Some(first) = first_line.insert(id.clone(), i + 1) {
            return Err(Error::Data {
                path: list.to_path_buf(),
                msg: format!("line {}: id `{id}` repeats line {first} (ids must be unique)", i + 1),
            });
        }
        out.push((id, p));
    }
    Ok(out)
}

/// Where an image of a raw pair comes from.
#[derive(Debug, Clone)]
pub enum ImageData {
    /// An image file.
    Path(PathBuf),
    /// Encoded image bytes (PNG, JPEG, …) with a description for errors (file, row, column).
    Bytes {
        /// The encoded image.
        bytes: Vec<u8>,
        /// Where the bytes came from, for error messages.
        origin: String,
    },
    /// An image already decoded (a generated one: EARL-mini renders its samples).
    Decoded(image::RgbImage),
}

impl ImageData {
    /// Decodes the image to RGB (default load limits); errors name the file, or the bytes' origin.
    pub fn load(&self) -> Result<image::RgbImage> {
        match self {
            ImageData::Path(p) => imageproc::load_rgb(p, &LoadLimits::default()),
            ImageData::Bytes { bytes, origin } => {
                imageproc::decode_rgb(bytes, &LoadLimits::default()).map_err(|e| Error::input(format!("{origin}: {e}")))
            }
            ImageData::Decoded(img) => Ok(img.clone()),
        }
    }
}

/// One raw editing example, from any input format.
#[derive(Debug, Clone)]
pub struct RawPair {
    /// Record id, unique within the dataset.
    pub id: String,
    /// The source image.
    pub source: ImageData,
    /// The edited image.
    pub target: ImageData,
    /// The edit instruction.
    pub instruction: String,
    /// Chain of thought, key → text, with boxes in the original image's pixels.
    pub cot: BTreeMap<String, String>,
    /// Free-form metadata kept in the record.
    pub meta: BTreeMap<String, String>,
}

impl From<(String, PairLine)> for RawPair {
    fn from((id, p): (String, PairLine)) -> Self {
        RawPair {
            id,
            source: ImageData::Path(p.source),
            target: ImageData::Path(p.target),
            instruction: p.instruction,
            cot: p.cot,
            meta: p.meta,
        }
    }
}

/// Settings of a tokenization run.
#[derive(Debug, Clone, Copy)]
pub struct TokenizeOptions {
    /// Seed of the input order, recorded in the manifest.
    pub seed: u64,
    /// Records per shard file.
    pub shard_records: u64,
    /// Rescale CoT bounding boxes to the resized source image, as the reference's data preparation does.
    pub rescale_cot_boxes: bool,
    /// Pairs encoded together: their images of one size go through the VQ as one batch (≥ 1; the codes are the
    /// per-image ones up to float summation order).
    pub batch: usize,
}

/// The records of a chunk of pairs: every image decoded, all of them VQ-encoded in batches.
fn encode_chunk(codec: &ImageCodec, chunk: Vec<RawPair>, rescale: bool) -> Result<Vec<(String, EditRecord)>> {
    let mut images = Vec::with_capacity(chunk.len() * 2);
    for p in &chunk {
        images.push(p.source.load()?);
        images.push(p.target.load()?);
    }
    let grids = codec.encode_images(&images)?;
    let mut out = Vec::with_capacity(chunk.len());
    let mut grids = grids.into_iter();
    for (k, p) in chunk.into_iter().enumerate() {
        let (source, edited) = (grids.next(), grids.next());
        let (Some(source), Some(edited)) = (source, edited) else {
            return Err(Error::input("the VQ returned fewer grids than images"));
        };
        // Boxes follow the source image into EARL's resized frame (before the snap to the spatial factor).
        let (ow, oh) = images[2 * k].dimensions();
        let (rh, rw) = imageproc::area_size(oh, ow, codec.image_cfg.area);
        let cot = super::cot::prepare_cot(p.cot, (ow as f64, oh as f64), (rw, rh), rescale);
        let rec = EditRecord { source, edited, id: p.id.clone(), instruction: p.instruction, cot, meta: p.meta };
        out.push((p.id, rec));
    }
    Ok(out)
}

/// Tokenizes `pairs` (already in the order wanted) into the dataset at `out`, skipping ids already there (resume);
/// `on_record(done, total)` after each. `meta` is added to the dataset manifest. Returns the final manifest.
pub fn tokenize_stream(
    codec: &ImageCodec,
    pairs: impl Iterator<Item = Result<RawPair>>,
    total: usize,
    out: &Path,
    opts: &TokenizeOptions,
    meta: serde_json::Map<String, serde_json::Value>,
    on_record: &mut dyn FnMut(usize, usize),
) -> Result<Manifest> {
    let cfg = &codec.image_cfg;
    let mut w = ShardWriter::create_or_resume(out, "edits", opts.shard_records)?;
    w.meta_mut().insert("image_area".into(), serde_json::json!(cfg.area));
    w.meta_mut().insert("seed".into(), serde_json::json!(opts.seed));
    w.meta_mut().extend(meta);
    let mut seen = std::collections::HashSet::new();
    let mut chunk = Vec::new();
    let mut done = 0;
    let batch = opts.batch.max(1);
    let mut pairs = pairs.peekable();
    while let Some(p) = pairs.next() {
        let p = p?;
        // An id met twice in one input is an error, never a silent drop (the second would look "already done").
        if !seen.insert(p.id.clone()) {
            return Err(Error::input(format!("id `{}` appears twice in the input (ids must be unique)", p.id)));
        }
        done += 1;
        if !w.is_done(&p.id) {
            chunk.push(p);
        }
        if chunk.len() >= batch || pairs.peek().is_none() {
            for (id, rec) in encode_chunk(codec, std::mem::take(&mut chunk), opts.rescale_cot_boxes)? {
                w.push(Some(&id), &rec)?;
            }
            on_record(done, total);
        }
    }
    w.finish()
}

/// Tokenizes the JSONL `pairs` (shuffled with the seed) into the dataset at `out`; see [`tokenize_stream`].
pub fn tokenize_pairs(
    codec: &ImageCodec,
    mut pairs: Vec<(String, PairLine)>,
    out: &Path,
    opts: &TokenizeOptions,
    on_record: &mut dyn FnMut(usize, usize),
) -> Result<Manifest> {
    DataRng::derive(opts.seed, "tokenize-order", 0).shuffle(&mut pairs);
    let total = pairs.len();
    let items = pairs.into_iter().map(|p| Ok(RawPair::from(p)));
    tokenize_stream(codec, items, total, out, opts, serde_json::Map::new(), on_record)
}

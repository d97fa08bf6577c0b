//! Raw editing data → tokenized [`EditRecord`]s through the vision tokenizer, as EARL's data preparation does it:
//! each source and edited image is resized to the target pixel area (aspect kept, snapped to the spatial factor,
//! bicubic), normalised and VQ-encoded. The input is a JSONL list of pairs (paths relative to the list); the order
//! is shuffled with the run seed, ids already present in the output are skipped (resume), and records stream into a
//! sharded dataset.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::record::{CodeGrid, EditRecord};
use super::rng::DataRng;
use super::shards::{Manifest, ShardWriter};
use crate::error::{Error, Result};
use crate::imageproc::{self, ImageProcessConfig, LoadLimits};
use crate::vq::Emu3VqModel;

/// One line of the input list.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PairLine {
    /// Defaults to the line number.
    #[serde(default)]
    pub id: Option<String>,
    pub source: PathBuf,
    /// The edited image (`target` and `edited` are accepted).
    #[serde(alias = "edited")]
    pub target: PathBuf,
    pub instruction: String,
    #[serde(default, alias = "CoT")]
    pub cot: BTreeMap<String, String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// Reads a JSONL list; paths are resolved against the list's directory. Errors name the file and line.
pub fn read_pairs(list: &Path) -> Result<Vec<(String, PairLine)>> {
    let text = std::fs::read_to_string(list).map_err(|e| Error::io(list, e))?;
    let base = list.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
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
        out.push((id, p));
    }
    Ok(out)
}

fn encode(vq: &Emu3VqModel, cfg: &ImageProcessConfig, path: &Path) -> Result<CodeGrid> {
    let img = imageproc::load_rgb(path, &LoadLimits::default())?;
    let px = imageproc::preprocess(&img, cfg)?; // [1, 3, H, W]
    let codes = tch::no_grad(|| vq.encode(&px))?.get(0); // [h, w]
    let (h, w) = (codes.size()[0] as usize, codes.size()[1] as usize);
    let v = Vec::<i64>::try_from(codes.flatten(0, -1).to_device(tch::Device::Cpu))?;
    CodeGrid::new(h, w, v.into_iter().map(|c| c as u16).collect())
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))
}

/// Tokenizes `pairs` (shuffled with `seed`) into the dataset at `out`, skipping ids already there;
/// `on_record(done, total)` after each. Returns the final manifest.
pub fn tokenize_pairs(
    vq: &Emu3VqModel,
    cfg: &ImageProcessConfig,
    mut pairs: Vec<(String, PairLine)>,
    out: &Path,
    seed: u64,
    shard_records: u64,
    on_record: &mut dyn FnMut(usize, usize),
) -> Result<Manifest> {
    DataRng::derive(seed, "tokenize-order", 0).shuffle(&mut pairs);
    let mut w = ShardWriter::create_or_resume(out, "edits", shard_records)?;
    w.meta_mut().insert("image_area".into(), serde_json::json!(cfg.area));
    w.meta_mut().insert("seed".into(), serde_json::json!(seed));
    let total = pairs.len();
    for (k, (id, p)) in pairs.into_iter().enumerate() {
        if !w.is_done(&id) {
            let rec = EditRecord {
                source: encode(vq, cfg, &p.source)?,
                edited: encode(vq, cfg, &p.target)?,
                id: id.clone(),
                instruction: p.instruction,
                cot: p.cot,
                meta: p.meta,
            };
            w.push(Some(&id), &rec)?;
        }
        on_record(k + 1, total);
    }
    w.finish()
}

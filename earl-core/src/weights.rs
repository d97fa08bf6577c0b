//! Tensor sources for model loading. [`SafetensorsStore`] memory-maps a checkpoint (one file, or shards listed in
//! `model.safetensors.index.json`), validates every header against the file size up front, and materialises one
//! tensor at a time straight into the requested dtype and device — an 8B bf16 checkpoint never exists as an f32 copy.
//! [`RandomSource`] makes deterministic random weights of the same names and shapes (speed benchmarks of 8.5B-shaped
//! models without real weights). Modules only ever see the [`TensorSource`] trait. With weight checking on
//! ([`set_check_weights`], `--check-weights`; `earl parity` turns it on), every loaded floating-point tensor is
//! checked for NaN and Inf, so a damaged checkpoint is an error naming the tensor instead of NaN logits later.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::Mmap;
use safetensors::tensor::{Dtype as StDtype, Metadata};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Where modules get their parameters from. `shape` is the shape the module expects; a source must fail with a
/// clear error (naming tensor and file) when the stored one differs.
pub trait TensorSource {
    /// The tensor `name`, of exactly `shape`, converted to [`Self::kind`] on [`Self::device`].
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor>;
    /// Whether the source has a tensor `name` (used to detect optional tensors and checkpoint layouts).
    fn contains(&self, name: &str) -> bool;
    /// The dtype tensors are returned in.
    fn kind(&self) -> Kind;
    /// The device tensors are returned on.
    fn device(&self) -> Device;
    /// Whether [`Self::contains`] answers from a fixed set of stored tensors (a checkpoint), so that a tensor the
    /// config does not ask for is worth reporting. A generator that can make any parameter says `false`.
    fn is_stored(&self) -> bool {
        true
    }
}

struct MappedFile {
    path: PathBuf,
    mmap: Mmap,
    /// Byte offset of the data section: 8 (header length) + header length.
    data_start: usize,
    metadata: Metadata,
}

/// A memory-mapped safetensors checkpoint.
pub struct SafetensorsStore {
    files: Vec<MappedFile>,
    /// tensor name → index into `files`
    index: HashMap<String, usize>,
    kind: Kind,
    device: Device,
    check_finite: bool,
}

const INDEX_FILE: &str = "model.safetensors.index.json";

static CHECK_WEIGHTS: AtomicBool = AtomicBool::new(false);

/// Whether stores opened from now on check every floating-point tensor they load for NaN and Inf (one reduction
/// per tensor, on its device). Off by default: it reads every weight once more. Process-wide, like `--allow-tf32`,
/// so it reaches the stores that `from_dir` loaders open for themselves.
pub fn set_check_weights(on: bool) {
    CHECK_WEIGHTS.store(on, Ordering::Relaxed);
}

impl SafetensorsStore {
    /// Opens a checkpoint directory (`model.safetensors.index.json` if present, else `model.safetensors`, else every
    /// `*.safetensors` in it) or a single `.safetensors` file. Tensors come out as `kind` on `device`.
    pub fn open(path: &Path, kind: Kind, device: Device) -> Result<Self> {
        crate::torch_cuda::load();
        let files = if path.is_dir() { checkpoint_files(path)? } else { vec![path.to_path_buf()] };
        let check_finite = CHECK_WEIGHTS.load(Ordering::Relaxed);
        let mut store = SafetensorsStore { files: Vec::new(), index: HashMap::new(), kind, device, check_finite };
        for f in files {
            store.add_file(f)?;
        }
        Ok(store)
    }

    fn add_file(&mut self, path: PathBuf) -> Result<()> {
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: the map is read-only; a checkpoint modified while we read it is outside what we can defend.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        let bad = |msg: String| Error::Safetensors { path: path.clone(), msg };
        let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&mmap)
            .map_err(|e| bad(truncation_detail(&mmap).unwrap_or_else(|| format!("{e:?}"))))?;
        let data_start = 8 + header_len;
        let data_len = mmap.len().saturating_sub(data_start);
        let file_idx = self.files.len();
        for (name, info) in metadata.tensors() {
            let (_, end) = info.data_offsets;
            if end > data_len {
                return Err(bad(format!(
                    "truncated: tensor `{name}` ends at byte {end} of the data section but it has only {data_len}"
                )));
            }
            self.index.insert(name, file_idx);
        }
        self.files.push(MappedFile { path, mmap, data_start, metadata });
        Ok(())
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether the store holds a tensor of that name.
    pub fn contains_name(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The stored shape of a tensor.
    pub fn shape(&self, name: &str) -> Option<Vec<i64>> {
        let f = &self.files[*self.index.get(name)?];
        let info = f.metadata.info(name)?;
        Some(info.shape.iter().map(|&d| d as i64).collect())
    }

    /// Loads a tensor with its stored dtype preserved for integer tensors and converted to the store's kind for
    /// floating-point ones (reference files mix both).
    pub fn tensor_any(&self, name: &str) -> Result<Tensor> {
        let shape = self.shape(name).ok_or_else(|| self.missing(name))?;
        self.load(name, &shape, None)
    }

    fn missing(&self, name: &str) -> Error {
        let searched = match self.files.len() {
            0 => "no files".to_string(),
            1 => self.files[0].path.display().to_string(),
            n => format!("{n} files under {}", self.files[0].path.parent().unwrap_or(Path::new(".")).display()),
        };
        Error::MissingTensor { name: name.to_string(), searched }
    }

    fn load(&self, name: &str, expected: &[i64], force_kind: Option<Kind>) -> Result<Tensor> {
        let f = &self.files[*self.index.get(name).ok_or_else(|| self.missing(name))?];
        let info = f.metadata.info(name).ok_or_else(|| self.missing(name))?;
        let found: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        if found != expected {
            return Err(Error::Shape { name: name.into(), path: f.path.clone(), expected: expected.into(), found });
        }
        let stored = st_kind(info.dtype).ok_or_else(|| Error::Dtype {
            name: name.into(),
            path: f.path.clone(),
            dtype: format!("{:?}", info.dtype),
        })?;
        let (start, end) = info.data_offsets;
        let bytes = &f.mmap[f.data_start + start..f.data_start + end];
        let numel: i64 = found.iter().product();
        if bytes.len() as i64 != numel * stored.elt_size_in_bytes() as i64 {
            return Err(Error::Safetensors {
                path: f.path.clone(),
                msg: format!("tensor `{name}` has {} bytes for {numel} elements of {stored:?}", bytes.len()),
            });
        }
        // A weight stored as integers where a float is expected is a wrong or corrupted checkpoint: casting it would
        // load silent garbage (transformers refuses it too, on the dtype check of `load_state_dict`).
        if force_kind.is_some_and(is_float) && !is_float(stored) {
            return Err(Error::Dtype {
                name: name.into(),
                path: f.path.clone(),
                dtype: format!("{stored:?} (integer) where float weights are expected; it would be cast silently"),
            });
        }
        let target = force_kind.unwrap_or(if is_float(stored) { self.kind } else { stored });
        crate::error::guard(&format!("loading `{name}` from {}", f.path.display()), || {
            // Copy in the stored dtype, move, then convert on the device: one tensor at a time, no f32 blow-up.
            let t = Tensor::f_from_data_size(bytes, &found, stored)?;
            let t = if self.device == Device::Cpu { t } else { t.f_to_device(self.device)? };
            if self.check_finite && is_float(stored) {
                let bad = t.f_isfinite()?.f_logical_not()?.f_sum(Kind::Int64)?.int64_value(&[]);
                if bad > 0 {
                    return Err(Error::Safetensors {
                        path: f.path.clone(),
                        msg: format!("tensor `{name}` has {bad} non-finite values (NaN or Inf) of {numel}"),
                    });
                }
            }
            Ok(if t.kind() == target { t } else { t.f_to_kind(target)? })
        })
    }
}

impl TensorSource for SafetensorsStore {
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        self.load(name, shape, Some(self.kind))
    }
    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
    fn kind(&self) -> Kind {
        self.kind
    }
    fn device(&self) -> Device {
        self.device
    }
}

/// For a file whose header is readable but whose data section is short, names the first tensor that does not fit.
fn truncation_detail(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let data_len = bytes.len() - 8 - n;
    let (name, end) = header
        .iter()
        .filter_map(|(k, v)| Some((k, v.get("data_offsets")?.get(1)?.as_u64()? as usize)))
        .filter(|&(_, end)| end > data_len)
        .min_by_key(|&(_, end)| end)?;
    Some(format!("truncated: tensor `{name}` ends at byte {end} of the data section, which has only {data_len}"))
}

fn is_float(k: Kind) -> bool {
    matches!(k, Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double)
}

fn st_kind(d: StDtype) -> Option<Kind> {
    Some(match d {
        StDtype::F32 => Kind::Float,
        StDtype::F16 => Kind::Half,
        StDtype::BF16 => Kind::BFloat16,
        StDtype::F64 => Kind::Double,
        StDtype::I64 => Kind::Int64,
        StDtype::I32 => Kind::Int,
        StDtype::I16 => Kind::Int16,
        StDtype::I8 => Kind::Int8,
        StDtype::U8 => Kind::Uint8,
        StDtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// The weight files of a checkpoint directory, in a stable order.
fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(INDEX_FILE);
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let parsed: Index = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: index.clone(),
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        })?;
        let mut shards: Vec<String> = parsed.weight_map.into_values().collect();
        shards.sort();
        shards.dedup();
        return Ok(shards.into_iter().map(|s| dir.join(s)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .filter(|p| p.file_name().is_some_and(|n| n != "reference.safetensors"))
        .collect();
    all.sort();
    if all.is_empty() {
        return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "no .safetensors weights")));
    }
    Ok(all)
}

/// Deterministic random weights: each tensor is drawn from its own generator seeded by (seed, name), so shapes and
/// values do not depend on load order. Norm weights are drawn around 1, everything else N(0, std²). Used to measure
/// speed on 8.5B-shaped models created directly on the GPU.
pub struct RandomSource {
    /// Combined with each tensor's name to seed its generator.
    pub seed: u64,
    /// Standard deviation of the non-norm tensors.
    pub std: f64,
    /// dtype of the created tensors.
    pub kind: Kind,
    /// Device the tensors are created on.
    pub device: Device,
}

impl TensorSource for RandomSource {
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        crate::error::guard(&format!("creating random `{name}`"), || {
            let h = name
                .bytes()
                .fold(self.seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
            tch::manual_seed((h >> 1) as i64);
            let t = Tensor::f_randn(shape, (self.kind, self.device))?;
            Ok(if name.ends_with("norm.weight") { t * 0.1 + 1.0 } else { t * self.std })
        })
    }
    fn contains(&self, name: &str) -> bool {
        // Random sources provide every parameter except optional biases (absent in Emu3 checkpoints).
        !name.ends_with(".bias")
    }
    fn is_stored(&self) -> bool {
        false
    }
    fn kind(&self) -> Kind {
        self.kind
    }
    fn device(&self) -> Device {
        self.device
    }
}

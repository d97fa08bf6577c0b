//! Raw editing pairs from the parquet files Hugging Face datasets publish (OmniEdit, MagicBrush, AURORA, …), with the
//! user naming the columns as EARL's `prepare_data.py` does (`--original-image-key`, `--edit-instruction`,
//! `--edited-image`, `--CoT-keys`, `--id-key`). Files are found like the reference (`**/*{split}*.parquet` under a
//! directory, sorted) and read as one concatenated table: without an id column a row's id is its index in that
//! table, as the reference's `idx`.
//!
//! Images are `datasets.Image` structs (`bytes`, `path`; a path-only image is read relative to its parquet file)
//! or plain binary columns; text columns are strings, and a list of strings gives its first element. Only the named
//! columns are decoded. Order: the reference shuffles the whole table (`Dataset.shuffle`), which needs random
//! access to rows; parquet is read a row group at a time, so here the row groups are shuffled with the seed and the
//! rows within each group too — a partial run still covers a random subset of the groups. Memory holds one row group.
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::Type;

use super::rng::DataRng;
use super::tokenize::{ImageData, RawPair};
use crate::error::{Error, Result};

/// Which columns hold what.
#[derive(Debug, Clone, Default)]
pub struct ParquetColumns {
    /// The original image (`--original-image-key`).
    pub source: String,
    /// The edited image (`--edited-image`).
    pub edited: String,
    /// The instruction (`--edit-instruction`).
    pub instruction: String,
    /// Row ids (`--id-key`); the row index of the concatenated table when absent.
    pub id: Option<String>,
    /// Chain-of-thought columns, stored under their column names (`--CoT-keys`).
    pub cot: Vec<String>,
    /// Columns copied into each record's metadata (edit type, source dataset, …).
    pub meta: Vec<String>,
}

impl ParquetColumns {
    fn all(&self) -> Vec<&str> {
        let mut v = vec![self.source.as_str(), self.edited.as_str(), self.instruction.as_str()];
        v.extend(self.id.as_deref());
        v.extend(self.cot.iter().map(String::as_str));
        v.extend(self.meta.iter().map(String::as_str));
        v
    }
}

/// The parquet files of `inputs`: files as given, directories searched recursively for `*.parquet` whose file name
/// contains `split` (when given), all sorted by path like the reference.
pub fn find_parquet_files(inputs: &[PathBuf], split: Option<&str>) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, split: Option<&str>, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let p = entry.map_err(|e| Error::io(dir, e))?.path();
            if p.is_dir() {
                walk(&p, split, out)?;
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                if name.ends_with(".parquet") && split.is_none_or(|s| name.contains(s)) {
                    out.push(p);
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, split, &mut out)?;
        } else if input.exists() {
            out.push(input.clone());
        } else {
            return Err(Error::input(format!("{}: no such file or directory", input.display())));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        let what = split.map_or(String::new(), |s| format!(" matching split {s:?}"));
        return Err(Error::input(format!("no parquet files{what} in {inputs:?}")));
    }
    Ok(out)
}

/// One row group of one file, with the table index of its first row.
#[derive(Debug, Clone, Copy)]
struct Group {
    file: usize,
    group: usize,
    first_row: u64,
}

struct OpenFile {
    path: PathBuf,
    reader: SerializedFileReader<File>,
    /// The file's schema narrowed to the named columns.
    projection: Type,
    /// Table index of the file's first row.
    first_row: u64,
}

/// Streams [`RawPair`]s out of parquet files in the seeded order described in the module header.
pub struct ParquetPairs {
    files: Vec<OpenFile>,
    columns: ParquetColumns,
    plan: Vec<Group>,
    next_group: usize,
    pending: VecDeque<RawPair>,
    seed: u64,
    rows: usize,
}

impl ParquetPairs {
    /// Opens every file, checks that each names all the `columns`, and plans the seeded read order.
    pub fn open(files: &[PathBuf], columns: ParquetColumns, seed: u64) -> Result<Self> {
        let mut opened = Vec::with_capacity(files.len());
        let mut plan = Vec::new();
        let mut first_row = 0u64;
        for (fi, path) in files.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let reader = SerializedFileReader::new(file)
                .map_err(|e| Error::input(format!("{}: not a readable parquet file: {e}", path.display())))?;
            let schema = reader.metadata().file_metadata().schema();
            let mut fields = Vec::new();
            for name in columns.all() {
                let f = schema.get_fields().iter().find(|f| f.name() == name).ok_or_else(|| {
                    let have: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
                    Error::input(format!("{}: no column {name:?} (columns: {})", path.display(), have.join(", ")))
                })?;
                if !fields.iter().any(|g: &Arc<Type>| g.name() == name) {
                    fields.push(f.clone());
                }
            }
            let projection = Type::group_type_builder(schema.name())
                .with_fields(fields)
                .build()
                .map_err(|e| Error::input(format!("{}: column projection: {e}", path.display())))?;
            let file_first_row = first_row;
            for g in 0..reader.num_row_groups() {
                plan.push(Group { file: fi, group: g, first_row });
                first_row += reader.metadata().row_group(g).num_rows().max(0) as u64;
            }
            opened.push(OpenFile { path: path.clone(), reader, projection, first_row: file_first_row });
        }
        DataRng::derive(seed, "parquet-group-order", 0).shuffle(&mut plan);
        Ok(ParquetPairs {
            files: opened,
            columns,
            plan,
            next_group: 0,
            pending: VecDeque::new(),
            seed,
            rows: first_row as usize,
        })
    }

    /// Rows in all files together.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the files hold no row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    fn load_group(&mut self, k: usize) -> Result<()> {
        let g = self.plan[k];
        let f = &self.files[g.file];
        let err = |e: parquet::errors::ParquetError| {
            Error::input(format!("{}: row group {}: {e}", f.path.display(), g.group))
        };
        let group = f.reader.get_row_group(g.group).map_err(err)?;
        let mut rows = Vec::new();
        for (i, row) in group.get_row_iter(Some(f.projection.clone())).map_err(err)?.enumerate() {
            let index = g.first_row + i as u64;
            let where_ = format!("{} row {}", f.path.display(), index - f.first_row);
            rows.push(row_to_pair(&row.map_err(err)?, &self.columns, index, &f.path, &where_)?);
        }
        DataRng::derive(self.seed, "parquet-row-order", k as u64).shuffle(&mut rows);
        self.pending.extend(rows);
        Ok(())
    }
}

impl Iterator for ParquetPairs {
    type Item = Result<RawPair>;

    fn next(&mut self) -> Option<Result<RawPair>> {
        while self.pending.is_empty() {
            if self.next_group >= self.plan.len() {
                return None;
            }
            let k = self.next_group;
            self.next_group += 1;
            if let Err(e) = self.load_group(k) {
                // Stop after an error: the caller reports it and a rerun resumes.
                self.next_group = self.plan.len();
                return Some(Err(e));
            }
        }
        self.pending.pop_front().map(Ok)
    }
}

/// The field named `name` of `row` (a top-level column, or a member of a struct such as a `datasets.Image`).
pub fn column<'r>(row: &'r Row, name: &str) -> Option<&'r Field> {
    row.get_column_iter().find(|(n, _)| n.as_str() == name).map(|(_, f)| f)
}

/// Text of a scalar field; a list gives its first element; null gives `None`.
pub fn text(f: &Field) -> Option<String> {
    match f {
        Field::Null => None,
        Field::Str(s) => Some(s.clone()),
        Field::Bytes(b) => Some(String::from_utf8_lossy(b.data()).into_owned()),
        Field::ListInternal(l) => l.elements().first().and_then(text),
        Field::Byte(v) => Some(v.to_string()),
        Field::Short(v) => Some(v.to_string()),
        Field::Int(v) => Some(v.to_string()),
        Field::Long(v) => Some(v.to_string()),
        Field::UByte(v) => Some(v.to_string()),
        Field::UShort(v) => Some(v.to_string()),
        Field::UInt(v) => Some(v.to_string()),
        Field::ULong(v) => Some(v.to_string()),
        other => Some(other.to_string()),
    }
}

/// The image a field holds: binary bytes, or a `datasets.Image` struct's `bytes` or else its `path` (relative to
/// the parquet file). `origin` names the file, row and column in errors.
pub fn image(f: &Field, parquet_path: &Path, origin: String) -> Result<ImageData> {
    match f {
        Field::Bytes(b) => Ok(ImageData::Bytes { bytes: b.data().to_vec(), origin }),
        Field::Group(g) => {
            if let Some(Field::Bytes(b)) = column(g, "bytes") {
                return Ok(ImageData::Bytes { bytes: b.data().to_vec(), origin });
            }
            match column(g, "path") {
                Some(Field::Str(p)) if !p.is_empty() => {
                    let base = parquet_path.parent().unwrap_or(Path::new("."));
                    Ok(ImageData::Path(base.join(p)))
                }
                _ => Err(Error::input(format!("{origin}: image has neither bytes nor a path"))),
            }
        }
        Field::Null => Err(Error::input(format!("{origin}: image is null"))),
        other => Err(Error::input(format!("{origin}: not an image column (found {other})"))),
    }
}

fn row_to_pair(row: &Row, c: &ParquetColumns, index: u64, path: &Path, where_: &str) -> Result<RawPair> {
    let get = |name: &str| column(row, name).ok_or_else(|| Error::input(format!("{where_}: column {name:?} missing")));
    let id = match &c.id {
        Some(col) => text(get(col)?).ok_or_else(|| Error::input(format!("{where_}: id column {col:?} is null")))?,
        None => index.to_string(),
    };
    let instruction = text(get(&c.instruction)?)
        .ok_or_else(|| Error::input(format!("{where_}: instruction column {:?} is null", c.instruction)))?;
    let mut cot = BTreeMap::new();
    for k in &c.cot {
        if let Some(t) = text(get(k)?) {
            cot.insert(k.clone(), t);
        }
    }
    let mut meta = BTreeMap::new();
    for k in &c.meta {
        if let Some(t) = text(get(k)?) {
            meta.insert(k.clone(), t);
        }
    }
    Ok(RawPair {
        source: image(get(&c.source)?, path, format!("{where_}, column {:?}", c.source))?,
        target: image(get(&c.edited)?, path, format!("{where_}, column {:?}", c.edited))?,
        id,
        instruction,
        cot,
        meta,
    })
}

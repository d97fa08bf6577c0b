//! Random access to the rows of a benchmark's data files, concatenated in file order: parquet (as Hugging Face
//! publishes datasets) or JSONL (the generic adapter). Parquet is read a row group at a time, only the columns the
//! benchmark uses, and the last group read is kept, so memory holds one row group whatever the dataset's size; the
//! shuffled selections of EmuEdit and I2EBench jump between groups, which costs a group decode per jump, not memory.
//! JSONL files are small text (images are paths) and are parsed once.
//!
//! Cells are read as `earl_core::data::parquet` reads training data: images are `datasets.Image` structs (`bytes`,
//! or a `path` relative to the data file) or plain binary; a text column holding a list gives its first element.
//! A missing column is found when the table is opened; an unreadable cell is an error of that row alone.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use image::RgbImage;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::Type;

use earl_core::data::parquet as pq;
use earl_core::data::tokenize::ImageData;
use earl_core::{Error, Result};

/// The concatenated rows of a benchmark's files.
pub struct Table {
    files: Vec<PathBuf>,
    /// Columns of the first file, for error messages and the manifest.
    columns: Vec<String>,
    rows: Rows,
}

enum Rows {
    Parquet { files: Vec<ParquetFile>, groups: Vec<Group>, cache: Mutex<Option<Cached>>, len: usize },
    Jsonl(Vec<(usize, usize, serde_json::Map<String, serde_json::Value>)>),
}

struct ParquetFile {
    reader: SerializedFileReader<File>,
    projection: Type,
    first_row: usize,
}

/// One row group: its file, its index in the file and the dataset index of its first row.
#[derive(Clone, Copy)]
struct Group {
    file: usize,
    group: usize,
    first_row: usize,
}

struct Cached {
    group: usize,
    rows: Vec<Row>,
}

/// One row's cells, with where it came from for error messages.
pub struct TableRow {
    /// "FILE row N" (N counted within the file), for error messages.
    pub origin: String,
    /// The index of the row's file in [`Table::files`].
    pub file_index: usize,
    /// The data file, for `path`-only images.
    file: PathBuf,
    cells: Cells,
}

enum Cells {
    Parquet(Row),
    Json(serde_json::Map<String, serde_json::Value>),
}

fn missing_column(where_: &str, col: &str, have: &[String]) -> Error {
    Error::Input(format!("{where_}: no column {col:?} (columns: {})", have.join(", ")))
}

impl Table {
    /// Opens `files` (all parquet, or all JSONL by their extension), checking that every file has each of the
    /// `required` columns; `optional` columns are read where present.
    pub fn open(files: Vec<PathBuf>, required: &[&str], optional: &[&str]) -> Result<Table> {
        let is_jsonl = |f: &PathBuf| f.extension().is_some_and(|e| e == "jsonl");
        let jsonl = files.iter().filter(|f| is_jsonl(f)).count();
        if jsonl > 0 && jsonl < files.len() {
            let dir = files[0].parent().unwrap_or(Path::new(".")).display().to_string();
            return Err(Error::Input(format!("{dir}: both parquet and JSONL files; point --data at one of them")));
        }
        if jsonl > 0 {
            Self::open_jsonl(files, required)
        } else {
            Self::open_parquet(files, required, optional)
        }
    }

    fn open_parquet(files: Vec<PathBuf>, required: &[&str], optional: &[&str]) -> Result<Table> {
        let mut opened = Vec::with_capacity(files.len());
        let mut groups = Vec::new();
        let mut columns = Vec::new();
        let mut len = 0usize;
        for (fi, path) in files.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
            let reader = SerializedFileReader::new(file)
                .map_err(|e| Error::Input(format!("{}: not a readable parquet file: {e}", path.display())))?;
            let schema = reader.metadata().file_metadata().schema();
            let have: Vec<String> = schema.get_fields().iter().map(|f| f.name().to_string()).collect();
            let mut fields: Vec<Arc<Type>> = Vec::new();
            for col in required.iter().chain(optional) {
                match schema.get_fields().iter().find(|f| f.name() == *col) {
                    Some(f) if !fields.iter().any(|g| g.name() == *col) => fields.push(f.clone()),
                    Some(_) => {}
                    None if required.contains(col) => {
                        return Err(missing_column(&path.display().to_string(), col, &have))
                    }
                    None => {}
                }
            }
            let projection = Type::group_type_builder(schema.name())
                .with_fields(fields)
                .build()
                .map_err(|e| Error::Input(format!("{}: column projection: {e}", path.display())))?;
            let first_row = len;
            for g in 0..reader.num_row_groups() {
                groups.push(Group { file: fi, group: g, first_row: len });
                len += reader.metadata().row_group(g).num_rows().max(0) as usize;
            }
            if fi == 0 {
                columns = have;
            }
            opened.push(ParquetFile { reader, projection, first_row });
        }
        let rows = Rows::Parquet { files: opened, groups, cache: Mutex::new(None), len };
        Ok(Table { files, columns, rows })
    }

    fn open_jsonl(files: Vec<PathBuf>, required: &[&str]) -> Result<Table> {
        let mut rows = Vec::new();
        let mut columns = Vec::new();
        for (fi, path) in files.iter().enumerate() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
            let mut in_file = 0usize;
            for (ln, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |e: &dyn std::fmt::Display| Error::Input(format!("{} line {}: {e}", path.display(), ln + 1));
                let obj: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(line).map_err(|e| bad(&format!("not a JSON object: {e}")))?;
                if let Some(col) = required.iter().find(|c| !obj.contains_key(**c)) {
                    let have: Vec<String> = obj.keys().cloned().collect();
                    return Err(missing_column(&format!("{} line {}", path.display(), ln + 1), col, &have));
                }
                if columns.is_empty() {
                    columns = obj.keys().cloned().collect();
                }
                rows.push((fi, in_file, obj));
                in_file += 1;
            }
        }
        Ok(Table { files, columns, rows: Rows::Jsonl(rows) })
    }

    /// Rows in all files together.
    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::Parquet { len, .. } => *len,
            Rows::Jsonl(r) => r.len(),
        }
    }

    /// Whether the files hold no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The first file's columns.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The file index and in-file row number of dataset row `index`.
    pub fn locate(&self, index: usize) -> Option<(usize, usize)> {
        match &self.rows {
            Rows::Parquet { files, groups, len, .. } => (index < *len).then(|| {
                let g = groups[groups.partition_point(|g| g.first_row <= index) - 1];
                (g.file, index - files[g.file].first_row)
            }),
            Rows::Jsonl(r) => r.get(index).map(|(f, i, _)| (*f, *i)),
        }
    }

    /// Dataset row `index`.
    pub fn row(&self, index: usize) -> Result<TableRow> {
        let (fi, in_file) = self
            .locate(index)
            .ok_or_else(|| Error::Input(format!("row {index} is past the dataset's {} rows", self.len())))?;
        let file = self.files[fi].clone();
        let origin = format!("{} row {in_file}", file.display());
        let cells = match &self.rows {
            Rows::Jsonl(r) => Cells::Json(r[index].2.clone()),
            Rows::Parquet { files, groups, cache, .. } => {
                let gi = groups.partition_point(|g| g.first_row <= index) - 1;
                let g = groups[gi];
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                let cached = match cache.take() {
                    Some(c) if c.group == gi => c,
                    _ => {
                        let rows = read_group(&files[g.file], g.group)
                            .map_err(|e| Error::Input(format!("{}: row group {}: {e}", file.display(), g.group)))?;
                        Cached { group: gi, rows }
                    }
                };
                let row = cached.rows.get(index - g.first_row).cloned();
                *cache = Some(cached);
                Cells::Parquet(row.ok_or_else(|| {
                    Error::Input(format!("{origin}: row group {} holds fewer rows than its metadata says", g.group))
                })?)
            }
        };
        Ok(TableRow { origin, file_index: fi, file, cells })
    }
}

fn read_group(f: &ParquetFile, group: usize) -> parquet::errors::Result<Vec<Row>> {
    let rg = f.reader.get_row_group(group)?;
    rg.get_row_iter(Some(f.projection.clone()))?.collect()
}

impl TableRow {
    /// Whether the row has column `col` (optional columns may be absent from some files).
    pub fn has(&self, col: &str) -> bool {
        match &self.cells {
            Cells::Parquet(r) => pq::column(r, col).is_some(),
            Cells::Json(m) => m.contains_key(col),
        }
    }

    /// The text of column `col`: `None` for null or absent; a list gives its first element.
    pub fn text(&self, col: &str) -> Option<String> {
        match &self.cells {
            Cells::Parquet(r) => pq::column(r, col).and_then(pq::text),
            Cells::Json(m) => m.get(col).and_then(json_text),
        }
    }

    /// The text of column `col`, which must not be null.
    pub fn required_text(&self, col: &str) -> Result<String> {
        self.text(col).ok_or_else(|| Error::Input(format!("{}, column {col:?}: null or missing text", self.origin)))
    }

    /// The cell of column `col` as JSON, raw (numbers stay numbers); `Null` when absent.
    pub fn raw(&self, col: &str) -> serde_json::Value {
        match &self.cells {
            Cells::Parquet(r) => pq::column(r, col).map_or(serde_json::Value::Null, field_json),
            Cells::Json(m) => m.get(col).cloned().unwrap_or(serde_json::Value::Null),
        }
    }

    /// The image of column `col`, decoded to RGB. Errors name the file, row and column.
    pub fn image(&self, col: &str) -> Result<RgbImage> {
        let origin = format!("{}, column {col:?}", self.origin);
        let base = self.file.parent().unwrap_or(Path::new("."));
        let data = match &self.cells {
            Cells::Parquet(r) => {
                let f = pq::column(r, col).ok_or_else(|| Error::Input(format!("{origin}: column missing")))?;
                pq::image(f, &self.file, origin.clone()).map_err(|e| rewrap(&origin, e))?
            }
            Cells::Json(m) => match m.get(col) {
                Some(serde_json::Value::String(p)) if !p.is_empty() => ImageData::Path(base.join(p)),
                Some(serde_json::Value::Object(o)) => match o.get("path") {
                    Some(serde_json::Value::String(p)) if !p.is_empty() => ImageData::Path(base.join(p)),
                    _ => return Err(Error::Input(format!("{origin}: image object has no \"path\""))),
                },
                other => {
                    let found = other.map_or("nothing".to_string(), |v| v.to_string());
                    return Err(Error::Input(format!("{origin}: not an image path (found {found})")));
                }
            },
        };
        let path_only = matches!(data, ImageData::Path(_));
        data.load().map_err(|e| if path_only { rewrap(&origin, e) } else { e })
    }
}

/// An error's one-line message under `origin`, unless it already starts with it.
fn rewrap(origin: &str, e: Error) -> Error {
    let msg = match e {
        Error::Input(m) => m,
        other => other.to_string(),
    };
    if msg.starts_with(origin) {
        Error::Input(msg)
    } else {
        Error::Input(format!("{origin}: {msg}"))
    }
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => a.first().and_then(json_text),
        other => Some(other.to_string()),
    }
}

/// A parquet cell as JSON: scalars as themselves, lists as arrays, anything else as its display text.
fn field_json(f: &Field) -> serde_json::Value {
    use serde_json::Value as J;
    match f {
        Field::Null => J::Null,
        Field::Bool(b) => J::Bool(*b),
        Field::Byte(v) => J::from(*v),
        Field::Short(v) => J::from(*v),
        Field::Int(v) => J::from(*v),
        Field::Long(v) => J::from(*v),
        Field::UByte(v) => J::from(*v),
        Field::UShort(v) => J::from(*v),
        Field::UInt(v) => J::from(*v),
        Field::ULong(v) => J::from(*v),
        Field::Float(v) => J::from(f64::from(*v)),
        Field::Double(v) => J::from(*v),
        Field::Str(s) => J::String(s.clone()),
        Field::ListInternal(l) => J::Array(l.elements().iter().map(field_json).collect()),
        other => J::String(other.to_string()),
    }
}

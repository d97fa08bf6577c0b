//! The benchmark definitions: for each of the paper's six benchmarks, which files of its Hugging Face download are
//! read, which columns hold the source image, instruction, ground truth, task, AURORA source and id, how the
//! instruction is cleaned, and which rows are evaluated — the reference's `baselines/benchmarks.py` loaders and
//! `baselines/our_eval_on_*.py` loops. `generic` reads any parquet or JSONL files with user-named columns.
//! [`Benchmark`] is the one [`BenchmarkSource`] over a definition and its [`Table`].
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use earl_core::{Error, Result};

use super::files::{discover, FileRule};
use super::shuffle::Selection;
use super::table::Table;
use super::{BenchRow, BenchmarkSource, GenericColumns};

/// The names `open` knows, in the paper's table order, then `generic`.
pub const NAMES: &[&str] = &["omniedit", "emuedit", "aurora", "magicbrush", "vismin", "i2ebench", "generic"];

/// The reference's `Dataset.shuffle(seed=42).select(range(1000))`.
const SHUFFLE_1000: Selection = Selection::ShuffleFirst { seed: 42, count: 1000 };

/// Where a row's task comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskFrom {
    /// The benchmark has none.
    None,
    /// A column.
    Column(String),
    /// The data file's name: the first of these words it contains, else `unknown` (VisMin's `init_vismin_gold`).
    FileName(&'static [&'static str]),
}

/// One benchmark's definition.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The benchmark's name.
    pub name: &'static str,
    /// Which files are read.
    pub files: FileRule,
    /// File extensions searched.
    pub exts: &'static [&'static str],
    /// The source image column.
    pub source: String,
    /// The instruction column (a list column gives its first element).
    pub instruction: String,
    /// A literal removed from the instruction wherever it occurs (VisMin's `str.replace`).
    pub strip: Option<&'static str>,
    /// The ground-truth image column.
    pub gt: Option<String>,
    /// The task.
    pub task: TaskFrom,
    /// AURORA's `source` column.
    pub group: Option<String>,
    /// The dataset's own id column.
    pub id: Option<String>,
    /// The optional columns: read where present, `Null`/`None` elsewhere.
    pub optional: Vec<String>,
    /// Which rows are evaluated.
    pub selection: Selection,
}

fn s(v: &str) -> String {
    v.to_string()
}

/// The definition of benchmark `name`; `generic` takes its columns from `columns`.
pub fn spec(name: &str, columns: Option<&GenericColumns>) -> Result<Spec> {
    let base = |name, files, source: &str, instruction: &str| Spec {
        name,
        files,
        exts: &["parquet"],
        source: s(source),
        instruction: s(instruction),
        strip: None,
        gt: None,
        task: TaskFrom::None,
        group: None,
        id: None,
        optional: Vec::new(),
        selection: Selection::All,
    };
    let col = |c: &str| TaskFrom::Column(s(c));
    Ok(match name {
        // TIGER-Lab/OmniEdit-Filtered-1.2M, `data/dev-0000*-of-00001.parquet`.
        "omniedit" => Spec {
            gt: Some(s("edited_img")),
            task: col("task"),
            id: Some(s("omni_edit_id")),
            ..base("omniedit", FileRule::Split("dev"), "src_img", "edited_prompt_list")
        },
        // facebook/emu_edit_test_set, split `test`, shuffled.
        "emuedit" => Spec {
            task: col("task"),
            id: Some(s("idx")),
            selection: SHUFFLE_1000,
            ..base("emuedit", FileRule::Split("test"), "image", "instruction")
        },
        // McGill-NLP/aurora-bench, split `test`.
        "aurora" => {
            Spec { group: Some(s("source")), ..base("aurora", FileRule::Split("test"), "input", "instruction") }
        }
        // sikarwarank/magicbrush_eval.
        "magicbrush" => Spec {
            gt: Some(s("output")),
            ..base("magicbrush", FileRule::Named(&["magicbrush-test-00000.parquet"]), "input", "instruction")
        },
        // mair-lab/escher-vismin-dev, `data/train/counting-00001.parquet` then `…/relation-00001.parquet`.
        "vismin" => Spec {
            strip: Some("edit_instruction: "),
            gt: Some(s("edited_image")),
            task: TaskFrom::FileName(&["counting", "relation"]),
            id: Some(s("id")),
            ..base(
                "vismin",
                FileRule::Named(&["counting-00001.parquet", "relation-00001.parquet"]),
                "source_image",
                "edit_instruction",
            )
        },
        // sikarwarank/i2bench_eval; the reference's conversion also writes `sample_id` (unique within a task only),
        // kept as the native id where present.
        "i2ebench" => Spec {
            task: col("task"),
            id: Some(s("sample_id")),
            optional: vec![s("sample_id")],
            selection: SHUFFLE_1000,
            ..base("i2ebench", FileRule::Named(&["i2ebench-dataset.parquet"]), "image", "instruction")
        },
        "generic" => {
            let c = columns.ok_or_else(|| {
                Error::Input("benchmark generic needs its columns (at least source and instruction)".into())
            })?;
            if c.source.is_empty() || c.instruction.is_empty() {
                return Err(Error::Input("benchmark generic: the source and instruction columns must be named".into()));
            }
            Spec {
                exts: &["parquet", "jsonl"],
                gt: c.gt.clone(),
                task: c.task.clone().map_or(TaskFrom::None, TaskFrom::Column),
                id: c.id.clone(),
                ..base("generic", FileRule::Any, &c.source, &c.instruction)
            }
        }
        other => {
            return Err(Error::Input(format!("unknown benchmark {other:?} (known: {})", NAMES.join(", "))));
        }
    })
}

impl Spec {
    /// Every column the benchmark reads, required first.
    fn required(&self) -> Vec<&str> {
        let mut v = vec![self.source.as_str(), self.instruction.as_str()];
        v.extend(self.gt.as_deref());
        if let TaskFrom::Column(c) = &self.task {
            v.push(c);
        }
        v.extend(self.group.as_deref());
        v.extend(self.id.as_deref());
        v.retain(|c| !self.optional.iter().any(|o| o == c));
        v.dedup();
        v
    }
}

/// A benchmark opened over its files.
pub struct Benchmark {
    spec: Spec,
    data: PathBuf,
    table: Table,
    selection: Vec<usize>,
    manifest: OnceLock<serde_json::Value>,
}

impl Benchmark {
    /// Finds the files of `spec` under `data`, checks their columns, and computes the selection. No file, or no
    /// row, is an error.
    pub fn open(spec: Spec, data: &Path) -> Result<Benchmark> {
        let files = discover(spec.name, data, spec.files, spec.exts)?;
        let optional: Vec<&str> = spec.optional.iter().map(String::as_str).collect();
        let table = Table::open(files, &spec.required(), &optional)?;
        if table.is_empty() {
            let list: Vec<String> = table.files().iter().map(|f| f.display().to_string()).collect();
            return Err(Error::Input(format!("{}: no rows in {} (an empty benchmark)", spec.name, list.join(", "))));
        }
        let selection = spec.selection.indices(table.len());
        Ok(Benchmark { spec, data: data.to_path_buf(), table, selection, manifest: OnceLock::new() })
    }

    fn task_of(&self, row: &super::table::TableRow, file: usize) -> Option<String> {
        match &self.spec.task {
            TaskFrom::None => None,
            TaskFrom::Column(c) => row.text(c),
            TaskFrom::FileName(words) => {
                let name = self.table.files()[file].file_name().and_then(|n| n.to_str()).unwrap_or_default();
                Some(words.iter().find(|w| name.contains(**w)).map_or("unknown", |w| *w).to_string())
            }
        }
    }

    fn build_manifest(&self) -> serde_json::Value {
        let files: Vec<serde_json::Value> = self
            .table
            .files()
            .iter()
            .map(|f| {
                let rel = f.strip_prefix(&self.data).unwrap_or(f);
                let (bytes, sha) = match hash_file(f) {
                    Ok((n, h)) => (serde_json::json!(n), serde_json::json!(h)),
                    Err(e) => (serde_json::Value::Null, serde_json::json!(format!("unreadable: {e}"))),
                };
                serde_json::json!({"path": rel.display().to_string(), "bytes": bytes, "sha256": sha})
            })
            .collect();
        let task = match &self.spec.task {
            TaskFrom::None => serde_json::Value::Null,
            TaskFrom::Column(c) => serde_json::json!(c),
            TaskFrom::FileName(w) => serde_json::json!({"from_file_name": w}),
        };
        serde_json::json!({
            "benchmark": self.spec.name,
            "data": self.data.display().to_string(),
            "file_rule": self.spec.files.describe(),
            "files": files,
            "columns": {
                "source": self.spec.source,
                "instruction": self.spec.instruction,
                "instruction_strip": self.spec.strip,
                "gt": self.spec.gt,
                "task": task,
                "source_group": self.spec.group,
                "id": self.spec.id,
            },
            "columns_present": self.table.columns(),
            "rows": self.table.len(),
            "selection": self.spec.selection.describe(),
            "selected": self.selection.len(),
        })
    }
}

fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((n, format!("{:x}", h.finalize())))
}

impl BenchmarkSource for Benchmark {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn dataset_len(&self) -> usize {
        self.table.len()
    }

    fn selection(&self) -> &[usize] {
        &self.selection
    }

    fn read(&self, row: usize) -> Result<BenchRow> {
        let r = self.table.row(row)?;
        let mut instruction = r.required_text(&self.spec.instruction)?;
        if let Some(strip) = self.spec.strip {
            instruction = instruction.replace(strip, "");
        }
        let ground_truth = self.spec.gt.as_deref().map(|c| r.image(c)).transpose()?;
        Ok(BenchRow {
            row,
            native_id: self.spec.id.as_deref().map_or(serde_json::Value::Null, |c| r.raw(c)),
            instruction,
            source_image: r.image(&self.spec.source)?,
            ground_truth,
            task: self.task_of(&r, r.file_index),
            source: self.spec.group.as_deref().and_then(|c| r.text(c)),
            extra: serde_json::Value::Null,
        })
    }

    fn manifest(&self) -> serde_json::Value {
        self.manifest.get_or_init(|| self.build_manifest()).clone()
    }
}

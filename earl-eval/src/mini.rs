//! The EARL-mini world in `earl eval`: its test splits as benchmarks ([`MiniBenchmark`]: `mini-s-test`,
//! `mini-c-test`, `mini-ood-test`) and its exact verifier as a judge ([`MiniJudge`], `mini-verifier`).
//!
//! A world sample is a pure function of (split, seed, index) (`earl_mini::splits`), so a mini benchmark stores no
//! data: row `i` is sample `i` of the split, generated when it is read, and the selection is rows
//! `0..MINI_BENCH_LEN` in order. The seed is [`MINI_EVAL_SEED`], a constant that no training default or test uses
//! elsewhere, so that evaluation never sees a training prompt by accident. `--data` is otherwise ignored; a last path
//! component `seed=N` (e.g. `--data seed=7`) evaluates under seed `N` instead, for the runs over several
//! seeds. Each row carries the whole sample (source and target scene graphs, the edit, what the instruction leaves
//! open) as its `extra`, which is what the verifier needs; the judge reads it back from there (and from
//! `samples.jsonl` when `earl eval judge` re-scores a run).
//!
//! The verifier scores the edited image alone against the task: the runner's "original" (the source resized to
//! `judge_area`) and the ground-truth image are not used, the task's scene graphs are the ground truth. An edited
//! image of another size is resized to 128×128 nearest-neighbour by the verifier itself.
use std::path::Path;

use image::RgbImage;
use serde_json::{json, Value};

use earl_core::{Error, Result};
use earl_mini::edits::Task;
use earl_mini::render::render;
use earl_mini::{Sample, Split, Verifier};

use crate::bench::{BenchRow, BenchmarkSource};
use crate::judge::{Judge, JudgeInput, Verdict};

/// The world seed of evaluation unless `--data seed=N` says otherwise (not a seed training or tests use).
pub const MINI_EVAL_SEED: u64 = 0x4541_524c_4556_414c;
/// Samples per mini benchmark (the "at least 500 test samples per split").
pub const MINI_BENCH_LEN: usize = 500;
/// The judge's name in run manifests.
pub const MINI_JUDGE: &str = "mini-verifier";
/// The splits that are benchmarks.
const TEST_SPLITS: [Split; 3] = [Split::STest, Split::CTest, Split::OodTest];

/// Whether `name` names a mini benchmark (`mini-…`).
pub fn is_mini(name: &str) -> bool {
    name.starts_with("mini-")
}

/// A test split of the world as a benchmark.
#[derive(Debug, Clone)]
pub struct MiniBenchmark {
    name: String,
    split: Split,
    seed: u64,
    selection: Vec<usize>,
}

impl MiniBenchmark {
    /// The benchmark `name` (`mini-s-test`, `mini-c-test`, `mini-ood-test`); `data` may end in `seed=N`.
    pub fn open(name: &str, data: &Path) -> Result<Self> {
        let split = name.strip_prefix("mini-").and_then(|s| Split::parse(s).ok()).filter(|s| TEST_SPLITS.contains(s));
        let Some(split) = split else {
            let names: Vec<String> = TEST_SPLITS.iter().map(|s| format!("mini-{}", s.name())).collect();
            return Err(Error::Input(format!("unknown mini benchmark {name:?}; expected one of {}", names.join(", "))));
        };
        let seed = match data.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("seed=")) {
            Some(n) => n.parse().map_err(|_| {
                Error::Input(format!("{name}: --data {}: `seed=N` needs an unsigned integer N", data.display()))
            })?,
            None => MINI_EVAL_SEED,
        };
        Ok(MiniBenchmark { name: name.to_string(), split, seed, selection: (0..MINI_BENCH_LEN).collect() })
    }

    /// The world seed the rows are generated under.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl BenchmarkSource for MiniBenchmark {
    fn name(&self) -> &str {
        &self.name
    }

    fn dataset_len(&self) -> usize {
        MINI_BENCH_LEN
    }

    fn selection(&self) -> &[usize] {
        &self.selection
    }

    fn read(&self, row: usize) -> Result<BenchRow> {
        if row >= MINI_BENCH_LEN {
            return Err(Error::Input(format!("{}: row {row} out of range (0..{MINI_BENCH_LEN})", self.name)));
        }
        let s = Sample::generate(self.split, self.seed, row as u64);
        let extra = serde_json::to_value(&s)
            .map_err(|e| Error::Input(format!("{}: row {row}: cannot serialise the sample: {e}", self.name)))?;
        Ok(BenchRow {
            row,
            native_id: json!(format!("{}/{}/{row}", self.split.name(), self.seed)),
            instruction: s.instruction.clone(),
            source_image: render(&s.source),
            ground_truth: Some(render(&s.target)),
            task: Some(s.edit.kind().to_string()),
            source: None,
            extra,
        })
    }

    fn manifest(&self) -> Value {
        json!({
            "world": "earl-mini", "split": self.split.name(), "seed": self.seed,
            "selection": format!("rows 0..{MINI_BENCH_LEN} in order, generated from (split, seed, row)"),
        })
    }
}

/// The exact verifier as a judge.
#[derive(Debug, Clone, Copy, Default)]
pub struct MiniJudge;

impl MiniJudge {
    fn verdict(input: &JudgeInput<'_>) -> Verdict {
        if input.extra.is_null() {
            return Verdict::failed("the row holds no scene data (not a mini benchmark row)".into(), vec![], false);
        }
        let task: Task = match serde_json::from_value(input.extra.clone()) {
            Ok(t) => t,
            Err(e) => return Verdict::failed(format!("the row's scene data is not a world task: {e}"), vec![], false),
        };
        let edited: &RgbImage = input.edited;
        let s = Verifier.score(&task, edited);
        let reason = format!(
            "objects expected {}, found {}; noise pixels {}",
            s.objects_expected, s.objects_found, s.noise_pixels
        );
        Verdict {
            vie_sc: s.sc,
            vie_pq: s.pq,
            vie_all: s.overall,
            edit_success: Some(s.edit_success),
            overediting: Some(s.overediting),
            naturalness: Some(s.naturalness),
            artifacts: Some(s.artifacts),
            replies: vec![],
            reasons: vec![reason],
            error: None,
            excluded: false,
        }
    }
}

impl Judge for MiniJudge {
    fn name(&self) -> &str {
        MINI_JUDGE
    }

    fn judge_batch(&self, inputs: &[JudgeInput<'_>]) -> Result<Vec<Verdict>> {
        Ok(inputs.iter().map(Self::verdict).collect())
    }

    fn manifest(&self) -> Value {
        json!({ "judge": MINI_JUDGE, "verifier": "earl-mini exact", "mode": "reference" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_seeds_and_rows() {
        let b = MiniBenchmark::open("mini-c-test", Path::new("ignored")).unwrap();
        assert_eq!((b.seed(), b.dataset_len(), b.selection().len(), b.selection()[3]), (MINI_EVAL_SEED, 500, 500, 3));
        let r = b.read(4).unwrap();
        let s = Sample::generate(Split::CTest, MINI_EVAL_SEED, 4);
        assert_eq!((r.instruction, r.task.as_deref()), (s.instruction.clone(), Some(s.edit.kind())));
        assert_eq!((r.source_image.dimensions(), r.ground_truth.unwrap()), ((128, 128), render(&s.target)));
        assert_eq!(serde_json::from_value::<Sample>(r.extra).unwrap(), s);
        assert_eq!(MiniBenchmark::open("mini-s-test", Path::new("/x/seed=7")).unwrap().seed(), 7);
        assert!(b.read(500).is_err());
        for bad in ["mini-s-train", "mini-x", "s-test"] {
            assert!(MiniBenchmark::open(bad, Path::new(".")).unwrap_err().to_string().contains("mini-s-test"));
        }
        assert!(MiniBenchmark::open("mini-s-test", Path::new("seed=x")).unwrap_err().to_string().contains("seed=N"));
    }
}

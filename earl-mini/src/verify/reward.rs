//! The verifier as a GRPO reward ([`earl_core::rl::Reward`]). A GRPO prompt carries only the instruction and the
//! source image, but the verifier needs the task (source scene, target scene and what the instruction leaves
//! open). [`MiniReward`] therefore keeps the tasks of the samples it was built for, keyed by instruction and a
//! hash of the source image's pixels — the identity of a prompt, since a world sample is regenerated from
//! (split, seed, index) and its source renders bit-exactly. A prompt not registered falls back to reading the
//! source and the dataset's ground-truth image (when the dataset has one) with the verifier itself; that fallback
//! cannot know what an instruction leaves open ("add a triangle anywhere"), so it demands the ground truth's
//! exact colours, sizes and places, and it is stricter than the registered task.
use std::collections::HashMap;

use image::RgbImage;

use earl_core::data::ShardReader;
use earl_core::grid::CodeGrid;
use earl_core::rl::{Reward, RewardInput, RewardOutput};
use earl_core::{Error, Result};

use crate::edits::Task;
use crate::scene::{Object, Scene};
use crate::splits::{Sample, Split};
use crate::verify::{observe, Verifier};

/// The reward's name: components log as `mini__overall`, `mini__sc`, ….
pub const NAME: &str = "mini";
const COMPONENTS: [&str; 7] = ["overall", "sc", "pq", "edit_success", "overediting", "naturalness", "artifacts"];

/// The exact verifier as a reward, with the tasks of the prompts it will see.
#[derive(Debug, Default)]
pub struct MiniReward {
    /// Keyed by (instruction, [`image_key`] of the rendered source).
    tasks: HashMap<(String, u64), Task>,
    /// Keyed by (instruction, [`codes_key`] of the ground-truth edit's codes): a GRPO prompt read from a dataset
    /// shows the source only as decoded VQ codes, whose pixels are not the render's, but its record carries the
    /// target's codes exactly.
    by_codes: HashMap<(String, u64), Task>,
}

/// FNV-1a over a code grid's size and codes: the identity of a dataset record's ground truth.
pub fn codes_key(grid: &CodeGrid) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let dims = [grid.h() as u32, grid.w() as u32];
    for v in dims.into_iter().chain(grid.codes().iter().copied()) {
        for b in v.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// FNV-1a over the RGB bytes and the dimensions: the identity of a source image.
pub fn image_key(img: &RgbImage) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in img.width().to_le_bytes().into_iter().chain(img.height().to_le_bytes()).chain(img.as_raw().iter().copied())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl MiniReward {
    /// A reward that knows no tasks yet (every prompt uses the ground-truth fallback).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the task of a prompt.
    pub fn insert(&mut self, instruction: &str, source: &RgbImage, task: Task) {
        self.tasks.insert((instruction.to_string(), image_key(source)), task);
    }

    /// A reward for the samples `0..count` of `split` under `seed`.
    pub fn for_split(split: Split, seed: u64, count: u64) -> Self {
        let mut r = Self::new();
        for i in 0..count {
            let s = Sample::generate(split, seed, i);
            r.insert(&s.instruction, &crate::render::render(&s.source), s.task());
        }
        r
    }

    /// Registers the tasks of every record of the `edits` datasets at `paths` that `earl mini data` wrote (its
    /// `meta` names the split, seed and index the sample is regenerated from); other records are skipped and keep
    /// the ground-truth fallback. A record whose regenerated instruction differs is an error: the dataset was not
    /// written by this world.
    pub fn for_datasets(paths: &[std::path::PathBuf]) -> Result<Self> {
        let mut r = Self::new();
        for path in paths {
            let reader = ShardReader::open(path)?;
            for i in 0..reader.len() {
                let rec: earl_core::data::EditRecord = reader.get(i)?;
                let Some(sample) = sample_of(&rec.meta)? else { continue };
                if sample.instruction != rec.instruction {
                    return Err(Error::Input(format!(
                        "{}: record {} says it is {} sample {} of seed {}, whose instruction is {:?}, not {:?}",
                        path.display(),
                        rec.id,
                        sample.split.name(),
                        sample.index,
                        sample.seed,
                        sample.instruction,
                        rec.instruction
                    )));
                }
                r.by_codes.insert((rec.instruction.clone(), codes_key(&rec.edited)), sample.task());
            }
        }
        Ok(r)
    }

    /// How many prompts have a registered task.
    pub fn len(&self) -> usize {
        self.tasks.len() + self.by_codes.len()
    }

    /// Whether no prompt has a registered task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn task_for(&self, input: &RewardInput<'_>) -> Result<Task> {
        if let Some(t) = self.tasks.get(&(input.instruction.to_string(), image_key(input.source))) {
            return Ok(t.clone());
        }
        if let Some(t) =
            input.ground_truth_codes.and_then(|g| self.by_codes.get(&(input.instruction.to_string(), codes_key(g))))
        {
            return Ok(t.clone());
        }
        let gt = input.ground_truth.ok_or_else(|| Error::Reward {
            reward: NAME.into(),
            msg: format!(
                "no task registered for instruction {:?} and the dataset gives no ground-truth image",
                input.instruction
            ),
        })?;
        Ok(task_from_images(input.source, gt))
    }
}

/// The world sample a dataset record's `meta` names (`split`, `seed`, `index`, as `earl mini data` writes them);
/// `None` when the record has no such keys.
fn sample_of(meta: &std::collections::BTreeMap<String, String>) -> Result<Option<Sample>> {
    let (Some(split), Some(seed), Some(index)) = (meta.get("split"), meta.get("seed"), meta.get("index")) else {
        return Ok(None);
    };
    let num = |what: &str, v: &str| {
        v.parse::<u64>().map_err(|_| Error::Input(format!("record meta `{what}` is not a number: {v:?}")))
    };
    Ok(Some(Sample::generate(Split::parse(split)?, num("seed", seed)?, num("index", index)?)))
}

/// The task read off a source and a ground-truth image: objects that look the same in both keep one id.
pub fn task_from_images(source: &RgbImage, ground_truth: &RgbImage) -> Task {
    let scene = |img: &RgbImage| {
        let obs = observe(img);
        let objects = obs
            .objects
            .iter()
            .enumerate()
            .map(|(i, s)| Object {
                id: i as u32,
                shape: s.shape,
                colour: s.colour,
                size: s.size,
                x: s.cx.round() as i32,
                y: s.cy.round() as i32,
            })
            .collect();
        Scene { background: obs.background.unwrap_or(crate::scene::Background::Gray), objects }
    };
    let source = scene(source);
    let mut target = scene(ground_truth);
    let mut next = source.fresh_id();
    let mut taken = Vec::new();
    for t in target.objects.iter_mut() {
        let same = source.objects.iter().find(|s| {
            !taken.contains(&s.id)
                && (s.shape, s.colour, s.size) == (t.shape, t.colour, t.size)
                && (s.x - t.x).abs() <= 2
                && (s.y - t.y).abs() <= 2
        });
        match same {
            Some(s) => {
                taken.push(s.id);
                *t = *s;
            }
            None => {
                t.id = next;
                next += 1;
            }
        }
    }
    Task { source, target, freedom: Default::default() }
}

impl MiniReward {
    fn score_serially(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>> {
        inputs
            .iter()
            .map(|input| {
                let Some(predicted) = input.predicted else { return Ok(RewardOutput::zeros(&COMPONENTS)) };
                let task = self.task_for(input)?;
                Ok(RewardOutput::from_components(Verifier.score(&task, predicted).components()))
            })
            .collect()
    }
}

impl Reward for MiniReward {
    fn name(&self) -> &str {
        NAME
    }

    /// Scores the completions on every core: the verifier is pure CPU work per image (segmentation and shape
    /// classification), and a GRPO iteration's 128 images scored one by one cost as much as its generation. Each
    /// thread takes a contiguous chunk and the chunks are joined in order, so the result is the serial one.
    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
        let chunk = inputs.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = inputs.chunks(chunk).map(|part| s.spawn(move || self.score_serially(part))).collect();
            let mut out = Vec::with_capacity(inputs.len());
            for h in handles {
                let part =
                    h.join().map_err(|_| Error::Reward { reward: NAME.into(), msg: "verifier panicked".into() })?;
                out.extend(part?);
            }
            Ok(out)
        })
    }

    fn manifest(&self) -> serde_json::Value {
        serde_json::json!({ "verifier": "earl-mini exact", "registered_tasks": self.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render;

    fn input<'a>(
        instruction: &'a str,
        source: &'a RgbImage,
        predicted: Option<&'a RgbImage>,
        gt: Option<&'a RgbImage>,
    ) -> RewardInput<'a> {
        RewardInput {
            instruction,
            source,
            predicted,
            ground_truth: gt,
            predicted_codes: None,
            ground_truth_codes: None,
        }
    }

    #[test]
    fn registered_prompts_score_targets_ten_and_copies_low() {
        let reward = MiniReward::for_split(Split::CTest, 5, 8);
        assert_eq!(reward.len(), 8);
        let samples: Vec<Sample> = (0..8).map(|i| Sample::generate(Split::CTest, 5, i)).collect();
        let imgs: Vec<(RgbImage, RgbImage)> = samples.iter().map(|s| (render(&s.source), render(&s.target))).collect();
        let mut inputs = Vec::new();
        for (s, (src, tgt)) in samples.iter().zip(&imgs) {
            inputs.push(input(&s.instruction, src, Some(tgt), None));
            inputs.push(input(&s.instruction, src, Some(src), None));
            inputs.push(input(&s.instruction, src, None, None));
        }
        let out = reward.score_batch(&inputs).unwrap();
        for o in out.chunks(3) {
            assert_eq!(o[0].score, 10.0, "{o:?}");
            assert!(o[1].score <= 3.0 && o[1].components["sc"] <= 3.0, "{o:?}");
            assert_eq!(o[2].score, 0.0);
            assert_eq!(o[2].components.len(), 7);
        }
        assert_eq!(reward.name(), "mini");
        // Scored across threads in chunks, the batch gives what scoring each completion alone gives, in order.
        let one_by_one: Vec<f64> =
            inputs.iter().map(|i| reward.score_batch(std::slice::from_ref(i)).unwrap()[0].score).collect();
        assert_eq!(out.iter().map(|o| o.score).collect::<Vec<_>>(), one_by_one);
    }

    #[test]
    fn unregistered_prompts_fall_back_to_the_ground_truth_image_or_fail() {
        let reward = MiniReward::new();
        let s = (0..50).map(|i| Sample::generate(Split::STest, 3, i)).find(|s| s.edit.kind() == "recolour").unwrap();
        let (src, tgt) = (render(&s.source), render(&s.target));
        let out = reward
            .score_batch(&[
                input(&s.instruction, &src, Some(&tgt), Some(&tgt)),
                input(&s.instruction, &src, Some(&src), Some(&tgt)),
            ])
            .unwrap();
        assert_eq!(out[0].score, 10.0, "{out:?}");
        assert!(out[1].score <= 3.0, "{out:?}");
        let e = reward.score_batch(&[input(&s.instruction, &src, Some(&tgt), None)]).unwrap_err().to_string();
        assert!(e.contains("reward `mini`") && e.contains("no task registered"), "{e}");
    }

    fn world_dataset(dir: &std::path::Path, instruction_of: impl Fn(&Sample) -> String) -> std::path::PathBuf {
        use earl_core::data::{EditRecord, ShardWriter};
        let path = dir.join("d");
        let mut w = ShardWriter::create_or_resume(&path, "edits", 4).unwrap();
        for i in 0..6u64 {
            let s = Sample::generate(Split::CTrain, 9, i);
            let meta = [("split", "c-train".to_string()), ("seed", "9".into()), ("index", i.to_string())];
            let rec = EditRecord {
                id: format!("c-train-9-{i}"),
                instruction: instruction_of(&s),
                source: CodeGrid::new(1, 2, vec![0, 1]).unwrap(),
                edited: CodeGrid::new(1, 2, vec![i as u32, 7]).unwrap(),
                cot: Default::default(),
                meta: meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            };
            w.push(Some(&rec.id), &rec).unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn dataset_records_register_their_tasks_by_ground_truth_codes() {
        let dir = tempfile::tempdir().unwrap();
        let path = world_dataset(dir.path(), |s| s.instruction.clone());
        let reward = MiniReward::for_datasets(&[path]).unwrap();
        assert_eq!(reward.len(), 6);
        // The source seen by the reward is a VQ round trip, not the render: only the codes key can find the task.
        let blank = RgbImage::from_pixel(128, 128, image::Rgb([1, 2, 3]));
        for i in 0..6u64 {
            let s = Sample::generate(Split::CTrain, 9, i);
            let tgt = render(&s.target);
            let gt = CodeGrid::new(1, 2, vec![i as u32, 7]).unwrap();
            let mut inp = input(&s.instruction, &blank, Some(&tgt), None);
            inp.ground_truth_codes = Some(&gt);
            assert_eq!(reward.score_batch(&[inp]).unwrap()[0].score, 10.0, "sample {i}");
            let other = CodeGrid::new(1, 2, vec![99, 7]).unwrap();
            inp.ground_truth_codes = Some(&other);
            assert!(reward.score_batch(&[inp]).is_err(), "an unknown record falls back and has no ground truth");
        }
    }

    #[test]
    fn a_dataset_from_another_world_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = world_dataset(dir.path(), |_| "Paint it pink.".to_string());
        let e = MiniReward::for_datasets(&[path]).unwrap_err().to_string();
        assert!(e.contains("c-train-9-0") && e.contains("Paint it pink."), "{e}");
    }
}

//! The evaluation loop of `earl eval run`, as the reference's `baselines/our_eval_on_*.py` then
//! `gen_viescore.py`: for every selected row, in selection order, the source is resized to `area` (65636, the
//! reference's typo, unsnapped) and VQ-encoded, the EARL prompt is prefilled with the mode (E), one sample is drawn
//! at temperature 1.0, top-k 2048, top-p 1.0 under the grid constraint with no CFG, with `max_new_tokens` =
//! min(3000, `max_position_embeddings` − prompt). The sample's stream is keyed by (seed, row) ([`generate_keyed`]),
//! so a sample does not depend on resume or `--limit`. A completion with no decodable image becomes a white 256×256
//! image, judged like any other and recorded `valid_image = false` (the reference's fallback). The judge's
//! "original" is the source resized to `judge_area` (65536, unsnapped, bicubic as Pillow's default `resize`), and the
//! ground truth is saved at that area too (the reference's commented-out `smart_resize(gt, 256*256)`).
//!
//! Generation and judging overlap: the generating thread hands each finished edit to a judging thread, which
//! appends the judged sample to `samples.jsonl`; only the samples between the two are lost to `kill -9`. A row that
//! cannot be read or encoded is recorded with its error (no scores); a failure of the model itself ends the run.
//!
//! [`generate_keyed`]: earl_core::generate::generate_keyed
use std::collections::HashSet;
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use earl_core::edit::{edit_request, generate_edits_keyed, EditOptions, Editor};
use earl_core::generate::GenerationRequest;
use earl_core::imageproc::{area_size, resize_bicubic};
use earl_core::prompt::Prefill;
use earl_core::{Error, Result};
use image::{Rgb, RgbImage};

use super::dir::RunDir;
use super::judging::apply_verdict;
use super::record::SampleRecord;
use super::{EvalConfig, Progress};
use crate::bench::{BenchRow, BenchmarkSource};
use crate::judge::{Judge, JudgeInput};

/// An edit waiting for the judge.
pub(super) struct Pending {
    pub rec: SampleRecord,
    pub original: Option<RgbImage>,
    pub edited: Option<RgbImage>,
    pub gt: Option<RgbImage>,
    pub extra: serde_json::Value,
}

/// `img` resized to pixel area `area` with the reference's unsnapped rounding (`smart_resize`).
pub fn resize_to_area(img: &RgbImage, area: u64) -> RgbImage {
    let (h, w) = area_size(img.height(), img.width(), area);
    let (h, w) = ((h as u32).max(1), (w as u32).max(1));
    if (w, h) == img.dimensions() {
        img.clone()
    } else {
        resize_bicubic(img, w, h)
    }
}

/// What an edit is when its completion holds no image: white 256×256 (the reference's `Image.new("RGB", (256,
/// 256), (255, 255, 255))`).
pub fn white_image() -> RgbImage {
    RgbImage::from_pixel(256, 256, Rgb([255, 255, 255]))
}

/// The loop's fixed inputs.
pub(super) struct Runner<'a> {
    pub cfg: &'a EvalConfig,
    pub editor: &'a Editor,
    pub prefill: Prefill,
    pub bench: &'a dyn BenchmarkSource,
    pub engine: earl_core::generate::Engine,
}

impl Runner<'_> {
    fn base_record(&self, row: usize) -> SampleRecord {
        SampleRecord {
            benchmark: self.bench.name().to_string(),
            row,
            seed: self.cfg.seed,
            finish_reason: "error".into(),
            ..SampleRecord::default()
        }
    }

    /// Reads and encodes row `row`: the record so far, the row and its request, or a finished error record for a
    /// row that cannot be read or encoded.
    fn prepare(&self, row: usize) -> Result<std::result::Result<(SampleRecord, BenchRow, GenerationRequest), Pending>> {
        let mut rec = self.base_record(row);
        let none =
            |rec: SampleRecord| Pending { rec, original: None, edited: None, gt: None, extra: Default::default() };
        let b: BenchRow = match self.bench.read(row) {
            Ok(b) => b,
            Err(e) => return Ok(Err(none(SampleRecord { error: Some(e.to_string()), ..rec }))),
        };
        (rec.native_id, rec.instruction, rec.task, rec.source) =
            (b.native_id.clone(), b.instruction.clone(), b.task.clone(), b.source.clone());
        let source = match self.editor.encode_image(&b.source_image) {
            Ok(s) => s,
            Err(e) => return Ok(Err(none(SampleRecord { error: Some(format!("encoding the source: {e}")), ..rec }))),
        };
        let req = edit_request(&self.editor.tok, &source, &rec.instruction, &self.prefill)?;
        Ok(Ok((rec, b, req)))
    }

    /// Generates the samples of `rows` together (each on its own row-keyed stream) and writes their images; rows
    /// that cannot be read or encoded get error records, a failure of the model is `Err`.
    fn generate(&self, dir: &RunDir, rows: &[usize], progress: &Mutex<&mut dyn Progress>) -> Result<Vec<Pending>> {
        let mut slots = Vec::with_capacity(rows.len());
        let mut ready = Vec::new();
        for &row in rows {
            match self.prepare(row)? {
                Ok(p) => {
                    slots.push(None);
                    ready.push((slots.len() - 1, row, p));
                }
                Err(done) => slots.push(Some(done)),
            }
        }
        if ready.is_empty() {
            return Ok(slots.into_iter().flatten().collect());
        }
        let room = usize::try_from(self.editor.lm.cfg.max_position_embeddings).unwrap_or(0);
        // One cap for the batch: the smallest room any of its prompts leaves (all of them at batch size 1).
        let longest = ready.iter().map(|(_, _, (_, _, r))| r.prompt.len()).max().unwrap_or(0);
        let budget = self.cfg.max_new_tokens.min(room.saturating_sub(longest)).max(1);
        let opts = EditOptions {
            prefill: self.prefill.clone(),
            samples: 1,
            max_new_tokens: Some(budget),
            sampling: self.cfg.sampling,
            seed: self.cfg.seed,
            constrain: true,
            allow_overlong: false,
            context_size: None,
            engine: self.engine,
        };
        let reqs: Vec<GenerationRequest> = ready.iter().map(|(_, _, (_, _, r))| r.clone()).collect();
        let keys: Vec<u64> = ready.iter().map(|&(_, row, _)| row as u64).collect();
        let t0 = Instant::now();
        let (outs, _) =
            generate_edits_keyed(&self.editor.lm, &self.editor.tok, &reqs, &keys, &opts, &mut |_, live| {
                progress.lock().unwrap_or_else(|p| p.into_inner()).tokens(live.max(1))
            })?;
        let secs = t0.elapsed().as_secs_f64() / ready.len() as f64;
        if outs.len() != ready.len() {
            return Err(Error::Input(format!("generation returned {} samples for {} rows", outs.len(), ready.len())));
        }
        for ((slot, row, (mut rec, b, _)), out) in ready.into_iter().zip(outs) {
            rec.generate_s = secs;
            rec.max_new_tokens = budget;
            rec.finish_reason = match out.finish {
                earl_core::FinishReason::Stop => "eos".into(),
                earl_core::FinishReason::Length => "length".into(),
            };
            (rec.reasoning, rec.prompt_ids, rec.generated_ids) = (out.reasoning, out.prompt_ids, out.tokens);
            let edited = match &out.grid {
                Ok(g) => {
                    rec.valid_image = true;
                    rec.grid = Some([g.h() as u32, g.w() as u32]);
                    self.editor.decode_grid(g)?
                }
                Err(why) => {
                    rec.error = Some(format!("no image: {why}"));
                    white_image()
                }
            };
            slots[slot] = Some(self.save_images(dir, row, rec, b, edited)?);
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// Saves a generated sample's images (the judge's original, the edit, the ground truth) under the run.
    fn save_images(
        &self,
        dir: &RunDir,
        row: usize,
        mut rec: SampleRecord,
        b: BenchRow,
        edited: RgbImage,
    ) -> Result<Pending> {
        let original = resize_to_area(&b.source_image, self.cfg.judge_area);
        let gt = b.ground_truth.as_ref().map(|g| resize_to_area(g, self.cfg.judge_area));
        for (kind, img, slot) in [
            ("original", Some(&original), &mut rec.original),
            ("edited", Some(&edited), &mut rec.edited),
            ("gt", gt.as_ref(), &mut rec.gt),
        ] {
            if let Some(img) = img {
                let (rel, abs) = dir.image(row, kind);
                earl_core::imageproc::save(img, &abs)?;
                *slot = Some(rel);
            }
        }
        Ok(Pending { rec, original: Some(original), edited: Some(edited), gt, extra: b.extra })
    }

    /// Generates every row of `todo` and hands it to the judge (or straight to disk without one).
    pub fn run(
        &self,
        dir: &RunDir,
        todo: &[usize],
        judge: Option<&dyn Judge>,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Pending>(2);
        let progress = Mutex::new(progress);
        let progress = &progress;
        std::thread::scope(|s| {
            let judging = s.spawn(move || -> Result<()> {
                for p in rx {
                    let rec = judge_one(judge, p)?;
                    dir.append(&rec)?;
                    progress.lock().unwrap_or_else(|p| p.into_inner()).sample(&rec);
                }
                Ok(())
            });
            let mut generated = Ok(());
            'batches: for rows in todo.chunks(self.cfg.batch_size) {
                match self.generate(dir, rows, progress) {
                    Ok(done) => {
                        for p in done {
                            if tx.send(p).is_err() {
                                break 'batches; // the judging thread stopped on an error: it is reported below
                            }
                        }
                    }
                    Err(e) => {
                        generated = Err(e);
                        break;
                    }
                }
            }
            drop(tx);
            let judged = judging.join().map_err(|_| Error::Input("the judging thread panicked".into()))?;
            generated.and(judged)
        })
    }
}

/// Judges one pending sample (rows without images are not judged).
pub(super) fn judge_one(judge: Option<&dyn Judge>, p: Pending) -> Result<SampleRecord> {
    let mut rec = p.rec;
    rec.extra = p.extra;
    let (Some(judge), Some(original), Some(edited)) = (judge, p.original.as_ref(), p.edited.as_ref()) else {
        return Ok(rec);
    };
    let input =
        JudgeInput { instruction: &rec.instruction, original, edited, ground_truth: p.gt.as_ref(), extra: &rec.extra };
    let verdict =
        judge.judge_batch(&[input])?.pop().ok_or_else(|| Error::Input("the judge returned no verdict".into()))?;
    apply_verdict(&mut rec, verdict);
    Ok(rec)
}

/// The rows of `selection` not yet in `done`, in selection order.
pub(super) fn remaining(selection: &[usize], done: &[SampleRecord]) -> Vec<usize> {
    let seen: HashSet<usize> = done.iter().map(|r| r.row).collect();
    selection.iter().copied().filter(|r| !seen.contains(r)).collect()
}

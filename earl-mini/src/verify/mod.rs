//! The exact verifier, a VIEScore analogue on the world. [`segment`] splits an edited image into palette regions,
//! [`shapes`] recognises and fits each object region, giving the observed scene; [`compare`] scores it against the
//! task (source scene + edit → target). Sub-scores are on 0–10 like VIEScore's: SC = min(edit_success,
//! overediting), where overediting = 10 means nothing else changed; PQ = min(naturalness, artifacts), where
//! naturalness is the mean fit of the objects to ideal shapes and artifacts falls with the count of noise pixels;
//! overall = √(SC·PQ), EARL's combination of the two. [`reward`] exposes it as a GRPO reward.
pub mod compare;
pub mod reward;
pub mod segment;
pub mod shapes;

use image::{imageops::FilterType, RgbImage};
use serde::Serialize;

use crate::edits::Task;
use crate::scene::{Background, Size};
use crate::WORLD_SIZE;
use compare::Seen;

/// A fit IoU at or above this counts as a perfectly clean shape.
const CLEAN_IOU: f64 = 0.85;
/// A fit IoU at or below this counts as no shape at all.
const BLOB_IOU: f64 = 0.4;
/// Noise pixels at which `artifacts` reaches 0 (3% of the image); it falls linearly from 10 at none.
const NOISE_BUDGET: f64 = 500.0;

/// The verdict on one edited image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub sc: f64,
    pub pq: f64,
    pub overall: f64,
    pub edit_success: f64,
    pub overediting: f64,
    pub naturalness: f64,
    pub artifacts: f64,
    /// Objects the target scene has.
    pub objects_expected: usize,
    /// Objects found in the image.
    pub objects_found: usize,
    /// Pixels counted as noise.
    pub noise_pixels: usize,
    /// The background colour found, if any.
    pub background: Option<Background>,
}

impl Score {
    /// The components a reward logs, by name.
    pub fn components(&self) -> [(&'static str, f64); 7] {
        [
            ("overall", self.overall),
            ("sc", self.sc),
            ("pq", self.pq),
            ("edit_success", self.edit_success),
            ("overediting", self.overediting),
            ("naturalness", self.naturalness),
            ("artifacts", self.artifacts),
        ]
    }
}

/// What the verifier sees in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub background: Option<Background>,
    pub objects: Vec<Seen>,
    /// The fit IoU of each object, in the order of `objects`.
    pub ious: Vec<f64>,
    pub noise_pixels: usize,
}

/// Reads the scene off an image (resized to the world's size first, nearest neighbour, when it has another).
pub fn observe(img: &RgbImage) -> Observation {
    let resized;
    let img = if img.dimensions() == (WORLD_SIZE, WORLD_SIZE) {
        img
    } else {
        resized = image::imageops::resize(img, WORLD_SIZE, WORLD_SIZE, FilterType::Nearest);
        &resized
    };
    let seg = segment::segment(img);
    let (mut objects, mut ious) = (Vec::new(), Vec::new());
    for &c in &seg.objects {
        let comp = &seg.components[c];
        let Some(colour) = segment::label_colour(comp.label) else { continue };
        let f = shapes::fit(&shapes::Mask::new(&comp.pixels, seg.width, comp.bbox));
        // The fitted side, not the box: a blur shortens a star's thin points (and so its box) far more than it
        // shrinks its area.
        let size = Size::from_extent(f.d);
        objects.push(Seen { shape: f.shape, colour, size, cx: f.cx, cy: f.cy });
        ious.push(f.iou);
    }
    Observation { background: seg.background, objects, ious, noise_pixels: seg.noise_pixels }
}

/// The verifier. It has no state: every threshold is a documented constant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verifier;

impl Verifier {
    /// Scores `edited` against the task.
    pub fn score(&self, task: &Task, edited: &RgbImage) -> Score {
        self.score_observation(task, &observe(edited))
    }

    /// Scores an observation against the task.
    pub fn score_observation(&self, task: &Task, obs: &Observation) -> Score {
        let c = compare::consistency(task, &obs.objects, obs.background);
        let clean = |iou: f64| ((iou - BLOB_IOU) / (CLEAN_IOU - BLOB_IOU)).clamp(0.0, 1.0);
        let naturalness = if obs.ious.is_empty() {
            10.0
        } else {
            10.0 * obs.ious.iter().map(|&i| clean(i)).sum::<f64>() / obs.ious.len() as f64
        };
        let artifacts = 10.0 * (1.0 - obs.noise_pixels as f64 / NOISE_BUDGET).max(0.0);
        let sc = c.edit_success.min(c.overediting);
        let pq = naturalness.min(artifacts);
        Score {
            sc,
            pq,
            overall: (sc * pq).sqrt(),
            edit_success: c.edit_success,
            overediting: c.overediting,
            naturalness,
            artifacts,
            objects_expected: task.target.objects.len(),
            objects_found: obs.objects.len(),
            noise_pixels: obs.noise_pixels,
            background: obs.background,
        }
    }
}

#[cfg(test)]
mod tests;

//! The judge seam of `earl eval`: a [`Judge`] scores edited images the way the paper's table does (VIEScore: SC, PQ,
//! overall = √(SC·PQ), and the four sub-scores). VIEScore over an OpenAI-compatible endpoint is one implementation;
//! [mini]'s exact verifier is another. A judge never fails a batch for one sample: a sample it could not score gets a
//! [`Verdict`] with `error` set, and the judge's failure mode decides how that counts (the reference scores it 0;
//! [`viescore::JudgeMode::Retry`] leaves it out of the means).
pub mod viescore;

use image::RgbImage;

pub use viescore::{JudgeMode, VieScoreJudge, VieScoreJudgeOptions};

/// What the judge sees of one sample.
#[derive(Debug, Clone, Copy)]
pub struct JudgeInput<'a> {
    /// The edit instruction.
    pub instruction: &'a str,
    /// The source resized to the judge's area (65536, unsnapped), not the VQ reconstruction.
    pub original: &'a RgbImage,
    /// The edited image (a white 256×256 image when the completion held none, as the reference judges it).
    pub edited: &'a RgbImage,
    /// The benchmark's ground truth, when it has one.
    pub ground_truth: Option<&'a RgbImage>,
    /// The row's extra data ([`crate::bench::BenchRow::extra`]).
    pub extra: &'a serde_json::Value,
}

/// The judge's scores of one sample (0–10). Sub-scores a reply did not hold are `None`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    /// Semantic consistency: min of the SC list.
    pub vie_sc: f64,
    /// Perceptual quality: min of the PQ list.
    pub vie_pq: f64,
    /// √(SC·PQ).
    pub vie_all: f64,
    /// First SC entry.
    pub edit_success: Option<f64>,
    /// Second SC entry.
    pub overediting: Option<f64>,
    /// First PQ entry.
    pub naturalness: Option<f64>,
    /// Second PQ entry.
    pub artifacts: Option<f64>,
    /// The judge's raw replies, in request order (SC then PQ for VIEScore).
    pub replies: Vec<String>,
    /// The reasoning the replies gave, in the same order.
    pub reasons: Vec<String>,
    /// Why the sample could not be scored (transport or parse failure); the scores are then 0.
    pub error: Option<String>,
    /// Whether the scores are left out of the means: a failure in `retry` mode. False for scored samples and for
    /// failures in `reference` mode, which count as 0 everywhere.
    pub excluded: bool,
}

impl Verdict {
    /// A failed sample: 0 on every metric (the reference's `except` branch in `baselines/gen_viescore.py`), with
    /// the replies gathered so far and why; `excluded` when the mode leaves failures out of the means.
    pub fn failed(error: String, replies: Vec<String>, excluded: bool) -> Self {
        let z = Some(0.0);
        Verdict {
            edit_success: z,
            overediting: z,
            naturalness: z,
            artifacts: z,
            replies,
            error: Some(error),
            excluded,
            ..Verdict::default()
        }
    }
}

/// A judge of edited images.
pub trait Judge: Send + Sync {
    /// Short name recorded in the manifest (`viescore`, `mini-verifier`).
    fn name(&self) -> &str;
    /// One verdict per input, in order. Per-sample failures are verdicts with `error`; an `Err` only means the judge
    /// cannot run at all (bad settings).
    fn judge_batch(&self, inputs: &[JudgeInput<'_>]) -> earl_core::Result<Vec<Verdict>>;
    /// What the manifest records: judge model, endpoint, prompt provenance and hashes, failure mode.
    fn manifest(&self) -> serde_json::Value;
}

//! Offline rewards: no verifier, no network — for development, CI and small experiments. Both compare the
//! prediction with the dataset's ground-truth edit, so they are *proxies*: an edit can be correct and still differ
//! from the one reference edit, and they say nothing about instruction following beyond that. Scores are on the
//! verifier's 0–10 scale so that advantages and logs look alike whichever reward is chosen.
use image::imageops::{self, FilterType};
use image::RgbImage;

use super::reward::{Reward, RewardInput, RewardOutput};
use crate::error::{Error, Result};

/// The ground-truth part an offline reward compares against; its absence is a data error, not a low score.
fn required<'a, T: ?Sized>(v: Option<&'a T>, reward: &str, i: usize, what: &str) -> Result<&'a T> {
    v.ok_or_else(|| Error::Reward { reward: reward.into(), msg: format!("completion {i} has no ground-truth {what}") })
}

/// Agreement of the predicted visual codes with the ground-truth edit's codes, position by position.
/// Components: `match_rate` (share of ground-truth positions whose code the prediction reproduces; positions
/// outside the prediction's grid count as misses), `shape_match` (1 when both grids have the same shape) and
/// `overall` = 10 · `match_rate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenAgreement;

impl TokenAgreement {
    /// The reward's name in configs and metrics.
    pub const NAME: &'static str = "token_agreement";
    const COMPONENTS: [&'static str; 3] = ["match_rate", "shape_match", "overall"];
}

impl Reward for TokenAgreement {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, inp)| {
                let gt = required(inp.ground_truth_codes, Self::NAME, i, "codes")?;
                let (Some(_), Some(pred)) = (inp.predicted, inp.predicted_codes) else {
                    return Ok(RewardOutput::zeros(&Self::COMPONENTS));
                };
                let (h, w) = (gt.h().min(pred.h()), gt.w().min(pred.w()));
                let matched = (0..h)
                    .flat_map(|r| (0..w).map(move |c| (r, c)))
                    .filter(|&(r, c)| gt.get(r, c) == pred.get(r, c))
                    .count();
                let rate = matched as f64 / gt.codes().len() as f64;
                let same_shape = (gt.h(), gt.w()) == (pred.h(), pred.w());
                Ok(RewardOutput::from_components([
                    ("match_rate", rate),
                    ("shape_match", f64::from(u8::from(same_shape))),
                    ("overall", 10.0 * rate),
                ]))
            })
            .collect()
    }
}

/// Pixel-space similarity of the predicted image to the ground-truth edit. The prediction is resized (bilinear)
/// to the ground truth's size when they differ. Components: `mae` (mean absolute error over RGB, in [0, 1]),
/// `psnr` (dB, capped at 100 for identical images) and `overall` = 10 · (1 − `mae`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PixelSimilarity;

impl PixelSimilarity {
    /// The reward's name in configs and metrics.
    pub const NAME: &'static str = "pixel_similarity";
    const COMPONENTS: [&'static str; 3] = ["mae", "psnr", "overall"];
}

/// Mean absolute and mean squared error of two equally sized images, in units of the full 0–255 range.
fn pixel_errors(a: &RgbImage, b: &RgbImage) -> (f64, f64) {
    let (mut abs, mut sq) = (0u64, 0u64);
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = u64::from(x.abs_diff(*y));
        abs += d;
        sq += d * d;
    }
    let n = a.as_raw().len().max(1) as f64;
    (abs as f64 / n / 255.0, sq as f64 / n / (255.0 * 255.0))
}

impl Reward for PixelSimilarity {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, inp)| {
                let gt = required(inp.ground_truth, Self::NAME, i, "image")?;
                let Some(pred) = inp.predicted else {
                    return Ok(RewardOutput::zeros(&Self::COMPONENTS));
                };
                let resized;
                let pred = if pred.dimensions() == gt.dimensions() {
                    pred
                } else {
                    resized = imageops::resize(pred, gt.width(), gt.height(), FilterType::Triangle);
                    &resized
                };
                let (mae, mse) = pixel_errors(pred, gt);
                let psnr = if mse == 0.0 { 100.0 } else { (10.0 * (1.0 / mse).log10()).min(100.0) };
                Ok(RewardOutput::from_components([("mae", mae), ("psnr", psnr), ("overall", 10.0 * (1.0 - mae))]))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::CodeGrid;

    fn inp<'a>(
        src: &'a RgbImage,
        pred: Option<&'a RgbImage>,
        gt: &'a RgbImage,
        pc: Option<&'a CodeGrid>,
        gc: &'a CodeGrid,
    ) -> RewardInput<'a> {
        RewardInput {
            instruction: "make it red",
            source: src,
            predicted: pred,
            ground_truth: Some(gt),
            predicted_codes: pc,
            ground_truth_codes: Some(gc),
        }
    }

    #[test]
    fn token_agreement_counts_matching_positions() {
        let img = RgbImage::new(2, 2);
        let gt = CodeGrid::from_rows(&[vec![1, 2, 3], vec![4, 5, 6]]).unwrap();
        let same = gt.clone();
        let half = CodeGrid::from_rows(&[vec![1, 9, 3], vec![9, 5, 9]]).unwrap();
        let small = CodeGrid::from_rows(&[vec![1, 2]]).unwrap(); // 2 of 6 positions, wrong shape
        let out = TokenAgreement
            .score_batch(&[
                inp(&img, Some(&img), &img, Some(&same), &gt),
                inp(&img, Some(&img), &img, Some(&half), &gt),
                inp(&img, Some(&img), &img, Some(&small), &gt),
                inp(&img, None, &img, None, &gt),
            ])
            .unwrap();
        assert_eq!(out[0].score, 10.0);
        assert_eq!(out[1].score, 5.0);
        assert!((out[2].components["match_rate"] - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(out[2].components["shape_match"], 0.0);
        assert_eq!(out[3], RewardOutput::zeros(&["match_rate", "shape_match", "overall"]));
        let mut no_gt = inp(&img, Some(&img), &img, Some(&same), &gt);
        no_gt.ground_truth_codes = None;
        assert!(TokenAgreement.score_batch(&[no_gt]).is_err());
    }

    #[test]
    fn pixel_similarity_is_one_minus_mean_abs_error() {
        let codes = CodeGrid::new(1, 1, vec![0]).unwrap();
        let black = RgbImage::new(4, 4);
        let white = RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]));
        let grey = RgbImage::from_pixel(4, 4, image::Rgb([51, 51, 51])); // 0.2 of the range
        let big_black = RgbImage::new(8, 8);
        let out = PixelSimilarity
            .score_batch(&[
                inp(&black, Some(&black), &black, None, &codes),
                inp(&black, Some(&white), &black, None, &codes),
                inp(&black, Some(&grey), &black, None, &codes),
                inp(&black, Some(&big_black), &black, None, &codes),
                inp(&black, None, &black, None, &codes),
            ])
            .unwrap();
        assert_eq!((out[0].score, out[0].components["psnr"]), (10.0, 100.0));
        assert_eq!((out[1].score, out[1].components["psnr"]), (0.0, 0.0));
        assert!((out[2].score - 8.0).abs() < 1e-12);
        assert!((out[2].components["psnr"] - 10.0 * (1.0f64 / 0.04).log10()).abs() < 1e-9);
        assert_eq!(out[3].score, 10.0); // resized to the ground truth's size
        assert_eq!(out[4].score, 0.0);
    }
}

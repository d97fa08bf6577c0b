//! Chain-of-thought text at tokenization time. EARL's data preparation (`prepare_data.py`, `create_CoT_dict`) keeps a
//! CoT key only when its text is a non-blank string and rescales every bounding box written as `[x1, y1, x2, y2]`
//! from the original image's pixels to the resized image's (x by width ratio, y by height ratio, numpy's
//! round-half-to-even, printed as Python prints a list of ints), so that boxes in the reasoning match the image the
//! model sees.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use fancy_regex::{Captures, Regex};

/// The reference's box pattern: four optionally negative decimals in brackets, separated by commas.
fn bbox_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let n = r"\s*(-?\d+\.?\d*)\s*";
        Regex::new(&format!(r"\[{n},{n},{n},{n}\]")).expect("the bounding-box pattern is valid")
    })
}

/// `text` with every `[x1, y1, x2, y2]` scaled from an `original` (width, height) image to a `resized` one.
pub fn rescale_boxes(text: &str, original: (f64, f64), resized: (f64, f64)) -> String {
    let (fx, fy) = (resized.0 / original.0, resized.1 / original.1);
    bbox_pattern()
        .replace_all(text, |c: &Captures| {
            let v: Vec<i64> = (1..=4)
                .map(|i| {
                    let x: f64 = c[i].parse().unwrap_or(0.0);
                    let f = if i % 2 == 1 { fx } else { fy };
                    (x * f).round_ties_even() as i64
                })
                .collect();
            format!("[{}, {}, {}, {}]", v[0], v[1], v[2], v[3])
        })
        .into_owned()
}

/// Every `[x1, y1, x2, y2]` in `text`, as the reference's pattern finds them (the report draws them over the image).
pub fn find_boxes(text: &str) -> Vec<[f64; 4]> {
    bbox_pattern()
        .captures_iter(text)
        .filter_map(|c| {
            let c = c.ok()?;
            let mut v = [0.0; 4];
            for (i, x) in v.iter_mut().enumerate() {
                *x = c[i + 1].parse().ok()?;
            }
            Some(v)
        })
        .collect()
}

/// The CoT map the reference stores: blank entries dropped, boxes rescaled (when `rescale`).
pub fn prepare_cot(
    cot: BTreeMap<String, String>,
    original: (f64, f64),
    resized: (f64, f64),
    rescale: bool,
) -> BTreeMap<String, String> {
    cot.into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| {
            let v = if rescale { rescale_boxes(&v, original, resized) } else { v };
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_scale_per_axis_with_half_to_even_rounding() {
        // x × 0.5, y × 2: 3 → 1.5 → 2 (even), 5 → 2.5 → 2 (even), −1 × 0.5 = −0.5 → −0 → 0.
        let out = rescale_boxes("a [3, 1.25, 5 ,-0.5] b [ -1,0,10,10]", (10.0, 10.0), (5.0, 20.0));
        assert_eq!(out, "a [2, 2, 2, -1] b [0, 0, 5, 20]");
        assert_eq!(rescale_boxes("no boxes [1, 2, 3]", (1.0, 1.0), (2.0, 2.0)), "no boxes [1, 2, 3]");
    }

    #[test]
    fn boxes_are_found_as_the_rescaler_sees_them() {
        let text = "the cup [3, 1.5, 5 ,-2] and [1, 2, 3] then [ 10,0,20,30]";
        assert_eq!(find_boxes(text), vec![[3.0, 1.5, 5.0, -2.0], [10.0, 0.0, 20.0, 30.0]]);
        assert!(find_boxes("no boxes").is_empty());
    }

    #[test]
    fn blank_entries_are_dropped() {
        let cot = BTreeMap::from([("a".to_string(), " ".to_string()), ("b".to_string(), "[2, 2, 4, 4]".to_string())]);
        let got = prepare_cot(cot.clone(), (4.0, 4.0), (2.0, 2.0), true);
        assert_eq!(got, BTreeMap::from([("b".to_string(), "[1, 1, 2, 2]".to_string())]));
        assert_eq!(prepare_cot(cot, (4.0, 4.0), (2.0, 2.0), false)["b"], "[2, 2, 4, 4]");
    }
}

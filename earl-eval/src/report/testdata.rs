//! Small run directories for the report's tests and the headless-Chromium check: PNGs written with `image`,
//! `samples.jsonl` and `summary.json` as the runner writes them (the contract of `run::record`).
use std::collections::BTreeMap;
use std::path::Path;

use image::{Rgb, RgbImage};
use serde_json::json;

use crate::run::{MeanStd, MetricTable, SampleRecord, Summary};

/// A `w`×`h` image of colour `bg` with a `fg` rectangle in its middle third.
fn picture(w: u32, h: u32, bg: [u8; 3], fg: [u8; 3]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        if (w / 3..2 * w / 3).contains(&x) && (h / 3..2 * h / 3).contains(&y) {
            Rgb(fg)
        } else {
            Rgb(bg)
        }
    })
}

/// Deterministic noise: a PNG too large to embed as stored (the report re-encodes it as a JPEG).
fn noise(w: u32, h: u32) -> RgbImage {
    let mut s: u32 = 12345;
    RgbImage::from_fn(w, h, |_, _| {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let b = (s >> 16).to_le_bytes();
        Rgb([b[0], b[1], b[0] ^ b[1]])
    })
}

/// Writes a run of four `aurora` samples into `dir`, labelled `label`, every score raised by `shift` (so that two
/// runs compare with known differences). Row 3 has a missing ground-truth file, row 2 a judge failure and no valid
/// image, row 1 a large noisy ground truth; row 0's reasoning has two boxes.
pub(crate) fn write_run(dir: &Path, label: &str, shift: f64) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let save = |name: &str, img: &RgbImage| {
        img.save(dir.join("images").join(name)).unwrap();
        Some(format!("images/{name}"))
    };
    let mut samples = Vec::new();
    for row in 0..4usize {
        let base = [1.0, 4.0, 0.0, 7.0][row];
        let s = |v: f64| if row == 2 { Some(0.0) } else { Some(v + shift) };
        let gt = match row {
            1 => save("1_gt.png", &noise(300, 300)),
            3 => Some("images/3_gt_missing.png".into()),
            _ => save(&format!("{row}_gt.png"), &picture(96, 72, [40, 160, 60], [250, 250, 250])),
        };
        let edited = if row == 2 {
            picture(256, 256, [255; 3], [255; 3])
        } else {
            picture(96, 72, [40, 60, 200], [240, 200, 30])
        };
        samples.push(SampleRecord {
            benchmark: "aurora".into(),
            row,
            native_id: json!(format!("id-{row}")),
            instruction: format!("make the <box> {row} yellow & bright"),
            source: Some(["whatsup", "kubric"][row % 2].into()),
            original: save(&format!("{row}_orig.png"), &picture(96, 72, [220, 40, 40], [20, 20, 20])),
            edited: save(&format!("{row}_edit_{label}.png"), &edited),
            gt,
            reasoning: if row == 0 {
                "the box [99, 74, 197, 148] and the cup [0, 0, 30, 30]".into()
            } else {
                String::new()
            },
            finish_reason: if row == 2 { "length".into() } else { "eos".into() },
            valid_image: row != 2,
            seed: 0,
            judge_failed: row == 2,
            vie_sc: s(base),
            vie_pq: s(base + 1.0),
            vie_all: s(base + 0.5),
            edit_success: s(base),
            overediting: s(base),
            naturalness: s(base + 1.0),
            artifacts: s(base + 1.0),
            judge_replies: vec![format!("{{\"score\": [{base}], \"reasoning\": \"ok\"}}")],
            ..SampleRecord::default()
        });
    }
    let lines: Vec<String> = samples.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
    std::fs::write(dir.join("samples.jsonl"), lines.join("\n") + "\n").unwrap();
    let ms = |mean| MeanStd { mean, std: 1.0, count: 4 };
    let summary = Summary {
        benchmark: "aurora".into(),
        n: 4,
        metrics: [("vie_all".to_string(), ms(3.0 + shift)), ("vie_sc".to_string(), ms(2.5 + shift))].into(),
        groups: BTreeMap::from([(
            "source".to_string(),
            BTreeMap::from([("whatsup".to_string(), MetricTable::from([("vie_all".to_string(), ms(1.0))]))]),
        )]),
        judge_failures: 1,
        invalid_images: 1,
        errors: 0,
        unjudged: 0,
        manifest: json!({"label": label, "model": {"path": format!("/models/{label}")}, "seed": 0}),
    };
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).unwrap()).unwrap();
}

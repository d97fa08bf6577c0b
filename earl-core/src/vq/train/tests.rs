//! Tokenizer training on a stand-in for the synthetic world: a few palette-coloured discs and squares on a plain
//! background, hard-edged (no anti-aliasing). Small images and a small model, so a few dozen CPU steps show learning.
use image::{Rgb, RgbImage};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Device;

use super::*;
use crate::vq::VqConfig;

const PALETTE: [[u8; 3]; 8] = [
    [220, 30, 40],
    [40, 170, 60],
    [30, 90, 220],
    [250, 210, 20],
    [240, 130, 20],
    [150, 50, 190],
    [30, 200, 210],
    [20, 20, 20],
];
const BACKGROUNDS: [[u8; 3]; 3] = [[255, 255, 255], [200, 200, 200], [245, 235, 210]];

/// A `size`×`size` scene from `seed`: a plain background and 1–3 discs or squares in palette colours.
pub(crate) fn stand_in_scene(seed: u64, size: u32) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pick = |n: i64| (rng.next_u64() % n as u64) as i64;
    let bg = BACKGROUNDS[pick(3) as usize];
    let mut img = RgbImage::from_pixel(size, size, Rgb(bg));
    let s = size as i64;
    for _ in 0..1 + pick(3) {
        let colour = Rgb(PALETTE[pick(8) as usize]);
        let r = s / 8 + pick((s / 8).max(1));
        let (cx, cy) = (r + pick((s - 2 * r).max(1)), r + pick((s - 2 * r).max(1)));
        let disc = pick(2) == 0;
        for y in (cy - r).max(0)..(cy + r).min(s) {
            for x in (cx - r).max(0)..(cx + r).min(s) {
                let (dx, dy) = (x - cx, y - cy);
                if !disc || dx * dx + dy * dy < r * r {
                    img.put_pixel(x as u32, y as u32, colour);
                }
            }
        }
    }
    img
}

fn tiny_model() -> VqConfig {
    VqConfig { codebook_size: 64, channel_multiplier: vec![1, 1, 1, 1], num_res_blocks: 1, ..mini_vq_config() }
}

fn cfg(steps: u64) -> VqTrainConfig {
    let raw = RawVqTrainConfig { steps: Some(steps), batch_size: Some(4), lr: Some(2e-3), ..Default::default() };
    VqTrainConfig { model: tiny_model(), ..raw.into_config(Device::Cpu).unwrap() }
}

fn scenes(n: u64, size: u32) -> impl Iterator<Item = RgbImage> {
    (0..n).map(move |i| stand_in_scene(i, size))
}

#[test]
fn training_lowers_the_reconstruction_loss_and_uses_the_codebook() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(40);
    let mut seen = 0;
    let r = train_vq(scenes(160, 32), &cfg, dir.path(), |_| seen += 1).unwrap();
    let (first, last) = (r.first.unwrap(), r.last.unwrap());
    assert_eq!((r.steps, seen), (40, 40));
    // Untrained, the decoder's output is far from the scene; 40 steps must take a clear share of that off.
    assert!(last.recon < 0.6 * first.recon, "recon {:.4} → {:.4}", first.recon, last.recon);
    assert!(last.codes_used > 1 && last.perplexity > 1.5, "{last:?}");
    let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 40);
    let m: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!(m["step"], 40);
    assert!(m["codebook"].as_f64().unwrap() >= 0.0 && m["perplexity"].as_f64().unwrap() >= 1.0);

    // The saved checkpoint loads with the inference loader and round-trips images of another size.
    let model = Emu3VqModel::from_dir(dir.path(), Kind::Float, Device::Cpu).unwrap();
    assert_eq!(model.cfg.layout, crate::vq::VqLayout::Transformers);
    assert_eq!(VqConfig { layout: crate::vq::VqLayout::Preset, ..model.cfg.clone() }, cfg.model);
    let img = stand_in_scene(999, 48);
    let x = imageproc::to_tensor(&img, &ImageProcessConfig::new(8));
    let codes = model.encode(&x).unwrap();
    assert_eq!(codes.size(), [1, 6, 6]);
    assert_eq!(model.decode(&codes).unwrap().size(), [1, 3, 48, 48]);
    let back = reconstruct(&model, std::slice::from_ref(&img)).unwrap();
    let acc = pixel_accuracy(&img, &back[0], 64);
    assert!(acc > 0.3, "only {acc:.3} of the pixels within 64 levels after 40 steps");
}

#[test]
fn training_is_reproducible() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = VqTrainConfig { restart_every: 2, ..cfg(3) };
    let ra = train_vq(scenes(12, 16), &cfg, a.path(), |_| {}).unwrap();
    train_vq(scenes(12, 16), &cfg, b.path(), |_| {}).unwrap();
    let read = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(read(a.path()), read(b.path()));
    assert_eq!(ra.weights_bytes, read(a.path()).len() as u64);
    // Another seed, other weights.
    let c = tempfile::tempdir().unwrap();
    train_vq(scenes(12, 16), &VqTrainConfig { seed: 1, ..cfg }, c.path(), |_| {}).unwrap();
    assert_ne!(read(a.path()), read(c.path()));
}

#[test]
fn dead_codes_are_restarted_on_current_latents() {
    // Two steps of 4×(2×2) latents use at most 32 of the 64 entries: the restart moves the rest.
    let dir = tempfile::tempdir().unwrap();
    let cfg = VqTrainConfig { restart_every: 2, ..cfg(4) };
    let mut restarted = Vec::new();
    train_vq(scenes(16, 16), &cfg, dir.path(), |m| restarted.push(m.restarted)).unwrap();
    assert_eq!(restarted[0], 0);
    assert!(restarted[1] >= 64 - 32, "{restarted:?}");
    assert_eq!(restarted[3], 0, "no restart after the last step: {restarted:?}");
}

#[test]
fn running_out_of_images_stops_early_and_still_saves() {
    let dir = tempfile::tempdir().unwrap();
    let r = train_vq(scenes(9, 16), &cfg(5), dir.path(), |_| {}).unwrap();
    assert_eq!(r.steps, 2); // two full batches of 4
    assert!(dir.path().join("model.safetensors").is_file() && dir.path().join("preprocessor_config.json").is_file());
    let pre = ImageProcessConfig::from_dir(dir.path(), 8).unwrap();
    assert_eq!((pre.mean, pre.std), ([0.5; 3], [0.5; 3]));
}

#[test]
fn bad_images_and_configs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let odd = (0..4).map(|i| stand_in_scene(i, 12));
    let e = train_vq(odd, &cfg(1), dir.path(), |_| {}).unwrap_err().to_string();
    assert!(e.contains("not a multiple of the spatial factor 8"), "{e}");
    let mixed = (0..4).map(|i| stand_in_scene(i, 16 + 8 * (i as u32 % 2)));
    let e = train_vq(mixed, &cfg(1), dir.path(), |_| {}).unwrap_err().to_string();
    assert!(e.contains("differ in size"), "{e}");
    let e = RawVqTrainConfig { steps: Some(0), ..Default::default() }.into_config(Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("must be positive"), "{e}");
    let e = RawVqTrainConfig { base_channels: Some(48), ..Default::default() }.into_config(Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("normalisation groups"), "{e}");
}

#[test]
fn pixel_accuracy_counts_pixels_within_the_tolerance() {
    let a = RgbImage::from_pixel(2, 2, Rgb([100, 100, 100]));
    let mut b = a.clone();
    b.put_pixel(0, 0, Rgb([100, 111, 100]));
    b.put_pixel(1, 0, Rgb([90, 100, 100]));
    assert_eq!(pixel_accuracy(&a, &b, 10), 0.75);
    assert_eq!(pixel_accuracy(&a, &b, 11), 1.0);
    assert_eq!(pixel_accuracy(&a, &RgbImage::new(3, 2), 255), 0.0);
}

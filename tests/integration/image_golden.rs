//! Image processing against Pillow (fixtures/gen_vq.py → fixtures/images/golden_images.safetensors): bicubic
//! resizes of a photo-like image, RGBA/grayscale conversion, a full preprocessing run, and the source grid of several
//! aspect ratios (golden_grids.safetensors). The resize is a port of Pillow's fixed-point integer algorithm, so it
//! must be exact (Pillow 13's vertical-first order aside, see docs/vq.md).
use earl_core::imageproc::{
    grid_size, load_rgb, preprocess, resize_bicubic, target_size, ImageProcessConfig, LoadLimits, RgbImage,
};
use earl_core::parity::{unexplained_code_flips, F32_CODE_GAP};
use earl_core::{Emu3VqModel, SafetensorsStore};
use earl_tests::fixtures_dir;
use tch::{Device, Kind, Tensor};

fn golden() -> SafetensorsStore {
    let f = fixtures_dir().join("images/golden_images.safetensors");
    SafetensorsStore::open(&f, Kind::Float, Device::Cpu).unwrap()
}

fn image(name: &str) -> RgbImage {
    load_rgb(&fixtures_dir().join("images").join(name), &LoadLimits::default()).unwrap()
}

/// (max |Δ|, number of differing values) between an image and a golden u8 [H, W, 3] tensor.
fn diff(ours: &RgbImage, want: &Tensor) -> (i32, usize) {
    let s = want.size();
    assert_eq!((ours.height() as i64, ours.width() as i64, 3), (s[0], s[1], s[2]));
    let w = Vec::<u8>::try_from(want.flatten(0, -1)).unwrap();
    let d: Vec<i32> = ours.as_raw().iter().zip(&w).map(|(a, b)| (*a as i32 - *b as i32).abs()).collect();
    (d.iter().copied().max().unwrap_or(0), d.iter().filter(|&&x| x > 0).count())
}

#[test]
fn bicubic_resize_is_bit_identical_to_pillow() {
    let g = golden();
    let photo = image("photo.png");
    let names: Vec<String> = g.names().into_iter().filter(|n| n.starts_with("hfirst_")).collect();
    assert!(names.len() >= 4);
    for name in names {
        // Pillow's algorithm, horizontal pass first (every Pillow up to 11; Pillow 13 for most shapes): exact.
        let want = g.tensor_any(&name).unwrap();
        let (h, w) = (want.size()[0] as u32, want.size()[1] as u32);
        let ours = resize_bicubic(&photo, w, h);
        let (max, n) = diff(&ours, &want);
        assert_eq!((max, n), (0, 0), "{name}: max |Δ| {max} over {n} values");
        // Pillow 13's own call, which for some shapes (width kept or enlarged, height shrunk) resamples vertically
        // first: then the 8-bit intermediate rounds differently. Measured on these goldens: see docs/vq.md.
        let single = g.tensor_any(&name.replace("hfirst_", "resize_")).unwrap();
        let (max, n) = diff(&ours, &single);
        assert!(max <= 1 && n * 4 <= ours.as_raw().len(), "{name}: vs Pillow 13: max |Δ| {max} over {n} values");
    }
}

#[test]
fn alpha_and_gray_conversion_match_pillow() {
    let g = golden();
    let (max, n) = diff(&image("gray.png"), &g.tensor_any("gray_to_rgb").unwrap());
    assert_eq!((max, n), (0, 0));
    // Pillow composites in fixed point; ours rounds (c·a + 255·(255 − a)) / 255. Identical on the golden image.
    let (max, n) = diff(&image("rgba.png"), &g.tensor_any("rgba_to_rgb").unwrap());
    assert_eq!((max, n), (0, 0), "RGBA over white");
}

#[test]
fn preprocessing_matches_the_python_pipeline() {
    let want = golden().tensor_any("pixel_values_area4096").unwrap();
    let cfg =
        ImageProcessConfig { area: 4096, ..ImageProcessConfig::from_dir(&fixtures_dir().join("vq-tiny"), 8).unwrap() };
    let got = preprocess(&image("photo.png"), &cfg).unwrap();
    assert_eq!(got.size(), want.size());
    let max = (&got - &want).abs().max().double_value(&[]);
    // The same three roundings on both sides (x·(1/255) in f64, cast to f32, (x − 0.5)/0.5 in f32) on identical
    // 8-bit pixels: equal up to ~1 ulp of values ≤ 1 (1.2e-7); 1e-6 leaves room for a fused multiply-add.
    assert!(max <= 1e-6, "max |Δ| {max}");
}

/// `fixtures/gen_vq.py::grid_test_image`: an image from integer arithmetic alone, identical in both languages.
fn grid_test_image(h: u32, w: u32) -> RgbImage {
    let mut data = Vec::with_capacity(3 * (h * w) as usize);
    for y in 0..h {
        for x in 0..w {
            let b = ((x / 37 + y / 37) % 2) * 150 + (x + 2 * y) % 61 + 20;
            data.extend([x * 255 / (w - 1).max(1), y * 255 / (h - 1).max(1), b].map(|c| c as u8));
        }
    }
    RgbImage::from_raw(w, h, data).unwrap()
}

/// The source grid as the reference computes it (EARL's area resize with no snap, then the encoder's floor), for
/// six aspect ratios: size, resized pixels and vq-tiny's codes, on every device in f32.
#[test]
fn source_grids_match_the_reference_resize_and_vq() {
    let g = SafetensorsStore::open(&fixtures_dir().join("images/golden_grids.safetensors"), Kind::Float, Device::Cpu)
        .unwrap();
    let vq_dir = fixtures_dir().join("vq-tiny");
    let cfg = ImageProcessConfig::from_dir(&vq_dir, 8).unwrap();
    assert_eq!(cfg.area, 65536);
    let mut cases: Vec<String> =
        g.names().into_iter().filter_map(|n| n.strip_prefix("codes_").map(String::from)).collect();
    cases.sort();
    assert!(cases.len() >= 4 && cases.contains(&"480x640".to_string()) && cases.contains(&"1080x1920".to_string()));
    for device in earl_tests::test_devices() {
        let vq = Emu3VqModel::from_dir(&vq_dir, Kind::Float, device).unwrap();
        for case in &cases {
            let (h, w) = case.split_once('x').map(|(h, w)| (h.parse().unwrap(), w.parse().unwrap())).unwrap();
            let src = grid_test_image(h, w);
            let (th, tw) = target_size(h, w, &cfg).unwrap();
            let resized = resize_bicubic(&src, tw, th);
            // Every case shrinks both sides, where our port of Pillow's resize is exact (see the resize tests).
            let (max, n) = diff(&resized, &g.tensor_any(&format!("resized_{case}")).unwrap());
            assert_eq!((max, n), (0, 0), "{case}: resized pixels differ");
            let pixels = preprocess(&src, &cfg).unwrap();
            let codes = vq.encode(&pixels).unwrap().get(0);
            let want = g.tensor_any(&format!("codes_{case}")).unwrap();
            assert_eq!(codes.size(), want.size(), "{case}: grid");
            assert_eq!(grid_size(th, tw, 8), (want.size()[0] as u32, want.size()[1] as u32));
            let gap = g.tensor_any(&format!("code_gap_{case}")).unwrap();
            let beyond = unexplained_code_flips(&codes, &want, &gap, F32_CODE_GAP).unwrap();
            assert_eq!(beyond, 0, "{case} on {device:?}: codes differ beyond near-ties");
        }
    }
}

//! `earl encode`, `earl decode` and VQ `earl parity` as a user runs them: a round trip of a photo-like, non-square
//! image on the CPU, both checkpoint layouts giving the same codes, and one-line errors for bad inputs.
use crate::common::{earl, root};
use std::path::Path;

use earl_core::imageproc::{load_rgb, save, LoadLimits, RgbImage};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn encode_then_decode_round_trips_a_non_square_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let (codes, orig_codes, out) = (tmp.path().join("c.json"), tmp.path().join("o.json"), tmp.path().join("out.png"));
    // fixtures/images/photo.png is 113×75; area 128² → 157.1×104.3 → 157×104 (no snap, as EARL) → the encoder
    // floors: 19×13 codes, decoded to 152×104.
    let enc = |vq: &str, to: &Path| {
        earl(&["encode", "--vq", vq, "--image", "fixtures/images/photo.png", "--area", "16384", "--out", s(to)])
    };
    let (code, stdout, err) = enc("fixtures/vq-tiny", &codes);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("(113×75) → resized 157×104 → 19×13 codes"), "{stdout}");
    let grid: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&codes).unwrap()).unwrap();
    assert_eq!((grid["height"].as_i64(), grid["width"].as_i64()), (Some(13), Some(19)));
    let rows = grid["codes"].as_array().unwrap();
    assert_eq!(rows.len(), 13);
    assert!(rows.iter().all(|r| r.as_array().unwrap().iter().all(|c| (0..64).contains(&c.as_i64().unwrap()))));

    // The original-layout checkpoint holds the same weights: the same codes, byte for byte.
    let (code, _, err) = enc("fixtures/vq-tiny-orig", &orig_codes);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&codes).unwrap(), std::fs::read(&orig_codes).unwrap());

    let (code, stdout, err) = earl(&["decode", "--vq", "fixtures/vq-tiny", "--codes", s(&codes), "--out", s(&out)]);
    assert_eq!(code, 0, "{stdout}{err}");
    let img = load_rgb(&out, &LoadLimits::default()).unwrap();
    assert_eq!(img.dimensions(), (152, 104));
    let first = img.get_pixel(0, 0);
    assert!(img.pixels().any(|p| p != first), "decoded image is constant");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    std::fs::write(p("junk.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    save(&RgbImage::new(1, 5000), &p("thin.png")).unwrap(); // at area 65536: 4×3620 pixels, under one code wide
    std::fs::write(p("ragged.json"), r#"{"height": 2, "width": 2, "codes": [[1, 2], [3]]}"#).unwrap();
    std::fs::write(p("big.json"), r#"{"height": 1, "width": 2, "codes": [[1, 64]]}"#).unwrap();
    // 600×600 codes decode to 4800² pixels, over the default max_pixels of 4096².
    let row = format!("[{}]", vec!["0"; 600].join(","));
    std::fs::write(
        p("huge.json"),
        format!(r#"{{"height": 600, "width": 600, "codes": [{}]}}"#, vec![row; 600].join(",")),
    )
    .unwrap();
    let huge = p("huge.json");
    let out = p("x.json");
    let (junk, thin, none, ragged, big, o) =
        (p("junk.png"), p("thin.png"), p("none.png"), p("ragged.json"), p("big.json"), p("o.png"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["encode", "--vq", "fixtures/vq-tiny", "--image", s(&junk), "--out", s(&out)], "junk.png"),
        (
            vec!["encode", "--vq", "fixtures/vq-tiny", "--image", s(&thin), "--out", s(&out)],
            "less than one code (spatial factor 8)",
        ),
        (vec!["encode", "--vq", "fixtures/vq-tiny", "--image", s(&none), "--out", s(&out)], "none.png"),
        (vec!["decode", "--vq", "fixtures/vq-tiny", "--codes", s(&ragged), "--out", s(&o)], "ragged grid: row 1"),
        (
            vec!["decode", "--vq", "fixtures/vq-tiny", "--codes", s(&big), "--out", s(&o)],
            "code 64 is outside the codebook",
        ),
        (
            vec!["decode", "--vq", "fixtures/vq-tiny", "--codes", s(&huge), "--out", s(&o)],
            "a 600×600 grid decodes to 4800×4800 = 23040000 pixels, over max_pixels = 16777216",
        ),
        (
            vec!["decode", "--vq", "fixtures/vq-tiny", "--codes", s(&big), "--out", "o.pgn"],
            "o.pgn: cannot write an image there",
        ),
        (
            vec!["decode", "--vq", "fixtures/lm-tiny-gqa", "--codes", s(&big), "--out", s(&o)],
            "not an Emu3 vision tokenizer",
        ),
    ];
    for (args, want) in cases {
        let (code, stdout, err) = earl(&args);
        assert_eq!(code, 2, "{args:?}: {stdout}{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn vq_parity_passes_on_both_layouts_and_fails_on_a_different_model() {
    for name in ["vq-tiny", "vq-tiny-orig"] {
        let dir = format!("fixtures/{name}");
        let (code, out, err) =
            earl(&["parity", "--model", &dir, "--reference", &format!("{dir}/reference.safetensors")]);
        assert_eq!(code, 0, "{out}{err}");
        let last = out.trim_end().lines().last().unwrap();
        assert!(last.starts_with("parity ok: codes 100.00% equal"), "{out}");
    }
    // Same weights, one temporal downsampling fewer: loads (the extra tensors are unused) and computes otherwise.
    let tmp = tempfile::tempdir().unwrap();
    let src = root().join("fixtures/vq-tiny");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let cfg = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"temporal_downsample_factor\": 4", "\"temporal_downsample_factor\": 2");
    std::fs::write(&cfg, text).unwrap();
    let (code, out, _) =
        earl(&["parity", "--model", s(tmp.path()), "--reference", "fixtures/vq-tiny/reference.safetensors"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.trim_end().lines().last().unwrap().starts_with("parity FAILED:"), "{out}");
}

#[test]
fn vq_train_and_tokenizer_train_write_tokenizers_the_other_commands_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, vq, tok) = (tmp.path().join("images"), tmp.path().join("vq"), tmp.path().join("tok"));
    std::fs::create_dir(&images).unwrap();
    for i in 0..6u32 {
        let img = RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb(if (x + 2 * i) % 16 < 8 && y > i { [30, 90, 220] } else { [255, 255, 255] })
        });
        save(&img, &images.join(format!("{i}.png"))).unwrap();
    }
    let args = ["--steps", "3", "--batch", "2", "--codebook", "32", "--device", "cpu"];
    let (code, stdout, err) = earl(&[&["vq", "train", "--images", s(&images), "--out", s(&vq)], &args[..]].concat());
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("3 steps"), "{stdout}");
    assert_eq!(std::fs::read_to_string(vq.join("metrics.jsonl")).unwrap().lines().count(), 3);
    let (code, stdout, err) = earl(&[
        "encode",
        "--vq",
        s(&vq),
        "--image",
        s(&images.join("0.png")),
        "--area",
        "256",
        "--out",
        s(&tmp.path().join("c.json")),
    ]);
    assert_eq!(code, 0, "{stdout}{err}");

    let texts = tmp.path().join("texts.txt");
    std::fs::write(&texts, "Recolour the red circle blue.\nMove the star left of the ring.\\nThen stop.\n").unwrap();
    let (code, stdout, err) =
        earl(&["tokenizer", "train", "--texts", s(&texts), "--codebook", "32", "--merges", "40", "--out", s(&tok)]);
    assert_eq!(code, 0, "{stdout}{err}");
    let t = earl_core::Emu3Tokenizer::from_dir(&tok).unwrap();
    assert_eq!(t.codebook_size(), 32);
    assert_eq!(t.decode(&t.encode("Then stop.\nMove").unwrap()).unwrap(), "Then stop.\nMove");

    // No images: a one-line error.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, err) = earl(&[&["vq", "train", "--images", s(&empty), "--out", s(&vq)], &args[..]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("no PNG, JPEG or WebP images"), "{err}");
}

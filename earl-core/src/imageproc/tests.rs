//! Unit tests of image loading and processing (Pillow goldens are in tests/image_golden.rs).
use std::io::Cursor;

use ::image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};

use super::*;

fn encode(img: &DynamicImage, fmt: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, fmt).unwrap();
    buf.into_inner()
}

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8]))
}

#[test]
fn every_format_and_pixel_layout_becomes_rgb() {
    let rgb = gradient(21, 13);
    let lim = LoadLimits::default();
    for fmt in [ImageFormat::Png, ImageFormat::WebP] {
        let back = decode_rgb(&encode(&DynamicImage::ImageRgb8(rgb.clone()), fmt), &lim).unwrap();
        assert_eq!(back, rgb, "{fmt:?} is lossless");
    }
    let jpeg = decode_rgb(&encode(&DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Jpeg), &lim).unwrap();
    assert_eq!(jpeg.dimensions(), (21, 13));

    let gray = ImageBuffer::from_fn(5, 4, |x, y| Luma([(x * 40 + y) as u8]));
    let g = decode_rgb(&encode(&DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Png), &lim).unwrap();
    assert!(g.enumerate_pixels().all(|(x, y, p)| p.0 == [gray.get_pixel(x, y).0[0]; 3]));

    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(3, 2, |x, _| Rgb([0, 65535, (x * 257 * 100) as u16]));
    let d = decode_rgb(&encode(&DynamicImage::ImageRgb16(deep), ImageFormat::Png), &lim).unwrap();
    assert_eq!(d.get_pixel(2, 1).0, [0, 255, 200]);

    // Alpha over white: opaque keeps the colour, transparent becomes white, half blends.
    let rgba = ImageBuffer::from_fn(3, 1, |x, _| Rgba([0, 100, 200, [255, 0, 128][x as usize]]));
    let a = decode_rgb(&encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png), &lim).unwrap();
    assert_eq!(a.get_pixel(0, 0).0, [0, 100, 200]);
    assert_eq!(a.get_pixel(1, 0).0, [255, 255, 255]);
    assert_eq!(a.get_pixel(2, 0).0, [127, 177, 227]);
    let la = ImageBuffer::from_fn(1, 1, |_, _| LumaA([10u8, 255]));
    assert_eq!(
        decode_rgb(&encode(&DynamicImage::ImageLumaA8(la), ImageFormat::Png), &lim).unwrap().get_pixel(0, 0).0,
        [10; 3]
    );
}

#[test]
fn bad_files_are_one_line_errors() {
    let lim = LoadLimits::default();
    let png = encode(&DynamicImage::ImageRgb8(gradient(40, 30)), ImageFormat::Png);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"hello, not an image".to_vec(), "unrecognised file signature"),
        (Vec::new(), "unrecognised file signature"),
        (png[..png.len() / 2].to_vec(), "image"),
        (
            {
                let mut p = png.clone();
                p[40] ^= 0xff; // inside the compressed data
                p
            },
            "image",
        ),
    ];
    for (bytes, want) in cases {
        let e = decode_rgb(&bytes, &lim).unwrap_err().to_string();
        assert!(e.contains(want) && !e.contains('\n'), "{e}");
    }
    // A file that claims more pixels than allowed is refused before decoding (the decompression-bomb guard).
    let wide = encode(&DynamicImage::ImageLuma8(ImageBuffer::new(20_000, 1)), ImageFormat::Png);
    let e = decode_rgb(&wide, &lim).unwrap_err().to_string();
    assert!(e.contains("20000") || e.contains("limit"), "{e}");
    let tight = LoadLimits { max_pixels: 1000, ..lim };
    let e = decode_rgb(&png, &tight).unwrap_err().to_string();
    assert!(e.contains("40×30") && e.contains("decompression bomb"), "{e}");
    let e = load_rgb(Path::new("/nonexistent/x.png"), &lim).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/x.png"), "{e}");
}

#[test]
fn save_goes_through_a_temporary_but_keeps_the_final_extensions_format() {
    let dir = tempfile::tempdir().unwrap();
    let img = gradient(16, 8);
    // The temporary is `.NAME.tmp-PID`, whose extension names no format: the final path's must choose it.
    for (name, magic) in [("a.png", &b"\x89PNG"[..]), ("a.jpg", &b"\xff\xd8\xff"[..]), ("a.webp", &b"RIFF"[..])] {
        let p = dir.path().join(name);
        save(&img, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.starts_with(magic), "{name}: {:?}", &bytes[..4]);
        assert_eq!(load_rgb(&p, &LoadLimits::default()).unwrap().dimensions(), (16, 8));
    }
    let e = save(&img, &dir.path().join("a.xyz")).unwrap_err().to_string();
    assert!(e.contains("a.xyz") && e.contains("cannot write image") && !e.contains('\n'), "{e}");
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["a.jpg", "a.png", "a.webp"], "no temporary or failed output left behind");
}

#[test]
fn target_sizes_follow_earl_unsnapped() {
    let c = ImageProcessConfig::new(8);
    assert_eq!(target_size(512, 512, &c).unwrap(), (256, 256));
    assert_eq!(target_size(1000, 500, &c).unwrap(), (362, 181)); // 362.04×181.02, not snapped
                                                                 // The issue's examples (h × w): the reference's grid, floored by the encoder.
    for ((h, w), grid) in
        [((480, 640), (27, 37)), ((375, 500), (27, 37)), ((1080, 1920), (24, 42)), ((300, 420), (27, 37))]
    {
        let (th, tw) = target_size(h, w, &c).unwrap();
        assert_eq!(grid_size(th, tw, 8), grid, "{h}×{w} → {th}×{tw}");
    }
    // Half-way cases round to even, as Python's round: 75×113 at area 4096 is 52.14×78.56 → 52×79.
    let small = ImageProcessConfig { area: 4096, ..c.clone() };
    assert_eq!(target_size(75, 113, &small).unwrap(), (52, 79));
    // Tiny sources are upsampled as the reference does; a resized side under one code is an error.
    assert_eq!(target_size(4, 4, &c).unwrap(), (256, 256));
    let e = target_size(8, 20_000, &c).unwrap_err().to_string();
    assert!(e.contains("less than one code"), "{e}");
    let bounded = ImageProcessConfig { min_pixels: 70_000, ..c.clone() };
    let e = target_size(480, 640, &bounded).unwrap_err().to_string();
    assert!(e.contains("222×296") && e.contains("outside min_pixels 70000"), "{e}");
    let e = preprocess(&gradient(30, 30), &ImageProcessConfig { area: 1 << 40, ..c }).unwrap_err().to_string();
    assert!(e.contains("exceeds max_pixels"), "{e}");
}

#[test]
fn normalisation_round_trips_to_within_one_level() {
    let img = gradient(17, 9);
    let c = ImageProcessConfig { mean: [0.48, 0.45, 0.4], std: [0.27, 0.26, 0.28], ..ImageProcessConfig::new(8) };
    let t = to_tensor(&img, &c);
    assert_eq!(t.size(), [1, 3, 9, 17]);
    let back = &to_rgb8(&t, &c).unwrap()[0];
    // Truncation (as the reference) may lose one level where x·std + mean lands just below an integer.
    let worst = img.as_raw().iter().zip(back.as_raw()).map(|(a, b)| (*a as i32 - *b as i32).abs()).max().unwrap();
    assert!(worst <= 1, "{worst}");
    assert!(to_rgb8(&t.squeeze_dim(0), &c).is_err());
}

#[test]
fn preprocessor_config_supplies_mean_and_std() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("preprocessor_config.json"), r#"{"image_mean": 0.25, "image_std": [0.5, 0.25, 1.0]}"#)
        .unwrap();
    let c = ImageProcessConfig::from_dir(d.path(), 8).unwrap();
    assert_eq!((c.mean, c.std), ([0.25; 3], [0.5, 0.25, 1.0]));
    std::fs::write(d.path().join("preprocessor_config.json"), r#"{"image_std": [0.5, 0.5]}"#).unwrap();
    let e = ImageProcessConfig::from_dir(d.path(), 8).unwrap_err().to_string();
    assert!(e.contains("image_std: need 3 values"), "{e}");
}

#[test]
fn outputs_and_decode_sizes_are_checked_before_work() {
    let dir = tempfile::tempdir().unwrap();
    assert!(check_output(&dir.path().join("a.png")).is_ok());
    assert!(check_output(Path::new("a.webp")).is_ok());
    let e = check_output(&dir.path().join("a.pgn")).unwrap_err().to_string();
    assert!(e.contains("a.pgn"), "{e}");
    let e = check_output(&dir.path().join("nope/a.png")).unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    assert!(check_decode_size(32, 32, 8, 256 * 256).is_ok());
    let e = check_decode_size(2048, 2048, 8, 256 * 256).unwrap_err().to_string();
    assert!(e.contains("16384×16384") && e.contains("--max-pixels"), "{e}");
}

#[test]
fn animations_are_recognised_from_their_headers() {
    let mut png = Vec::new();
    RgbImage::new(2, 2).write_to(&mut Cursor::new(&mut png), ImageFormat::Png).unwrap();
    assert!(!is_animated(&png));
    // An APNG: an acTL chunk (frames, plays) right after IHDR (8-byte signature + 25-byte IHDR chunk). The CRC is not
    // read by the detector.
    let mut apng = png[..33].to_vec();
    apng.extend_from_slice(&[0, 0, 0, 8, b'a', b'c', b'T', b'L', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    apng.extend_from_slice(&png[33..]);
    assert!(is_animated(&apng));
    let webp = |flags: u8| {
        let mut b = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        b.extend_from_slice(&[flags, 0, 0, 0, 1, 0, 0, 1, 0, 0]);
        b
    };
    assert!(is_animated(&webp(0x02)) && !is_animated(&webp(0x10)));
    assert!(!is_animated(b"not an image"));
}

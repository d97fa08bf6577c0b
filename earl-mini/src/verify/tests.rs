//! The verifier on hand-made and generated images: targets score 10, unchanged sources low SC, noise low PQ, an
//! edit of the wrong object low SC, and a target degraded the way a VQ round trip degrades it still ≥ 9. The split
//! means below are the acceptance numbers of issue 13 (fixed seeds, 100 samples per split).
use image::{Rgb, RgbImage};

use super::*;
use crate::edits::Edit;
use crate::render::render;
use crate::rng::Rng;
use crate::scene::{Colour, Object, Scene, Shape};
use crate::splits::{Sample, Split};

fn scene() -> Scene {
    let o = |id, shape, colour, size, x, y| Object { id, shape, colour, size, x, y };
    Scene {
        background: Background::Teal,
        objects: vec![
            o(0, Shape::Circle, Colour::Red, Size::Medium, 24, 24),
            o(1, Shape::Star, Colour::Yellow, Size::Large, 90, 30),
            o(2, Shape::Ring, Colour::White, Size::Small, 30, 100),
            o(3, Shape::Triangle, Colour::Blue, Size::Medium, 96, 96),
        ],
    }
}

/// A VQ-like degradation: every pixel drifts a few levels, pixels next to an edge take the mean of their 3×3
/// neighbourhood (a 1-pixel blur of edges), and `flips` random pixels get a random palette-far colour.
fn degrade(img: &RgbImage, flips: usize, seed: u64) -> RgbImage {
    let mut rng = Rng::new(seed);
    let (w, h) = img.dimensions();
    let mut out = img.clone();
    for y in 0..h {
        for x in 0..w {
            let mut sum = [0u32; 3];
            let mut n = 0;
            let mut uniform = true;
            for dy in -1i32..=1 {
                for dx in -1i32..=1 {
                    let (nx, ny) = (x as i32 + dx, y as i32 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i32 || ny >= h as i32 {
                        continue;
                    }
                    let p = img.get_pixel(nx as u32, ny as u32).0;
                    uniform &= p == img.get_pixel(x, y).0;
                    (0..3).for_each(|k| sum[k] += u32::from(p[k]));
                    n += 1;
                }
            }
            let base = if uniform { img.get_pixel(x, y).0 } else { sum.map(|s| (s / n) as u8) };
            let drift = |v: u8, rng: &mut Rng| (i32::from(v) + rng.range(-12, 12)).clamp(0, 255) as u8;
            out.put_pixel(x, y, Rgb([drift(base[0], &mut rng), drift(base[1], &mut rng), drift(base[2], &mut rng)]));
        }
    }
    for _ in 0..flips {
        let (x, y) = (rng.below(u64::from(w)) as u32, rng.below(u64::from(h)) as u32);
        out.put_pixel(x, y, Rgb([rng.below(256) as u8, rng.below(256) as u8, rng.below(256) as u8]));
    }
    out
}

#[test]
fn the_rendered_target_scores_ten() {
    let task = Edit::Recolour { id: 0, to: Colour::Green }.task(&scene());
    let s = Verifier.score(&task, &render(&task.target));
    assert_eq!((s.sc, s.pq, s.overall), (10.0, 10.0, 10.0), "{s:?}");
    assert_eq!((s.objects_found, s.noise_pixels), (4, 0));
}

#[test]
fn the_unchanged_source_gets_a_low_sc() {
    for edit in [
        Edit::Recolour { id: 0, to: Colour::Green },
        Edit::Remove { id: 2 },
        Edit::Resize { id: 3, to: Size::Small },
        Edit::SwapColours { a: 0, b: 3 },
    ] {
        let task = edit.task(&scene());
        let s = Verifier.score(&task, &render(&task.source));
        assert!(s.sc <= 3.0 && s.edit_success == 0.0, "{edit:?}: {s:?}");
        assert_eq!(s.pq, 10.0);
    }
}

#[test]
fn noise_gets_a_low_pq() {
    let task = Edit::Remove { id: 2 }.task(&scene());
    let mut rng = Rng::new(9);
    let noise = RgbImage::from_fn(128, 128, |_, _| Rgb([0, 1, 2].map(|_| rng.below(256) as u8)));
    let s = Verifier.score(&task, &noise);
    assert!(s.pq <= 2.0 && s.overall <= 2.0, "{s:?}");
    // Speckle over the target: the edit is there, the image is dirty.
    let mut speckled = render(&task.target);
    for _ in 0..1500 {
        let (x, y) = (rng.below(128) as u32, rng.below(128) as u32);
        speckled.put_pixel(x, y, Rgb(*rng.pick(&Colour::ALL.map(|c| c.rgb()))));
    }
    let s = Verifier.score(&task, &speckled);
    assert!(s.artifacts <= 3.0 && s.pq <= 3.0, "{s:?}");
}

#[test]
fn an_edit_of_the_wrong_object_is_punished() {
    let task = Edit::Recolour { id: 0, to: Colour::Green }.task(&scene());
    let wrong = Edit::Recolour { id: 3, to: Colour::Green }.task(&scene()).target;
    let s = Verifier.score(&task, &render(&wrong));
    assert!(s.sc <= 3.0 && s.edit_success == 0.0 && s.overediting < 10.0, "{s:?}");
    // Removing the wrong object, too.
    let task = Edit::Remove { id: 1 }.task(&scene());
    let wrong = Edit::Remove { id: 2 }.task(&scene()).target;
    assert!(Verifier.score(&task, &render(&wrong)).sc <= 3.0);
}

#[test]
fn a_slightly_noisy_target_still_scores_at_least_nine() {
    let task = Edit::Recolour { id: 0, to: Colour::Green }.task(&scene());
    let img = degrade(&render(&task.target), 12, 3);
    let s = Verifier.score(&task, &img);
    assert!(s.overall >= 9.0 && s.sc == 10.0, "{s:?}\n{:?}\n{:?}", observe(&img), task.target);
}

#[test]
fn an_image_of_another_size_is_resized_first() {
    let task = Edit::Background { to: Background::Olive }.task(&scene());
    let big = image::imageops::resize(&render(&task.target), 256, 256, image::imageops::FilterType::Nearest);
    assert_eq!(Verifier.score(&task, &big).overall, 10.0);
}

/// Mean overall of targets, of degraded targets and of unchanged sources over 100 samples of a split.
fn split_means(split: Split, seed: u64) -> (f64, f64, f64, f64) {
    let (mut t, mut n, mut c, mut worst) = (0.0, 0.0, 0.0, 10.0f64);
    for i in 0..100 {
        let s = Sample::generate(split, seed, i);
        let task = s.task();
        let target = render(&s.target);
        let ts = Verifier.score(&task, &target).overall;
        worst = worst.min(ts);
        t += ts;
        n += Verifier.score(&task, &degrade(&target, 8, i)).overall;
        c += Verifier.score(&task, &render(&s.source)).overall;
    }
    (t / 100.0, n / 100.0, c / 100.0, worst)
}

#[test]
fn targets_score_ten_and_copies_at_most_three_on_every_test_split() {
    for split in [Split::STest, Split::CTest, Split::OodTest] {
        let (target, noisy, copy, worst) = split_means(split, 20_261);
        eprintln!(
            "{}: target {target:.2} (worst {worst:.2}), degraded target {noisy:.2}, copy {copy:.2}",
            split.name()
        );
        assert!(target >= 9.9 && worst >= 9.0, "{split:?}: {target} {worst}");
        assert!(noisy >= 9.0, "{split:?}: {noisy}");
        assert!(copy <= 3.0, "{split:?}: {copy}");
    }
}

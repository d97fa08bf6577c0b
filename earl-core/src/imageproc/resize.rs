//! Bicubic resampling that reproduces Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit images bit for bit
//! (Pillow 11, `libImaging/Resample.c`): the Keys cubic with a = −0.5, its support widened by the scale factor when
//! shrinking (antialiasing), per-output-pixel weights normalised in f64 then rounded to 22-bit fixed point, a
//! horizontal pass then a vertical pass, each rounding and clamping to 8 bits. EARL and the Emu3 processors resize
//! with PIL, so matching it exactly keeps our codes identical to theirs for the same file.
use ::image::RgbImage;

/// Fixed-point precision of Pillow's 8-bit resampling (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `bicubic_filter` (a = −0.5), support 2.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output position: the first input index, and the fixed-point weights of the inputs from there on.
struct Coeffs {
    starts: Vec<usize>,
    weights: Vec<Vec<i64>>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the full input range.
fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ss = 1.0 / filterscale;
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero; the lower bound is then clamped at 0.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let mut k: Vec<f64> = (0..xmax).map(|x| bicubic(((x + xmin) as f64 - center + 0.5) * ss)).collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            k.iter_mut().for_each(|w| *w /= ww);
        }
        let one = (1i64 << PRECISION_BITS) as f64;
        let fixed = k.iter().map(|&w| if w < 0.0 { (-0.5 + w * one) as i64 } else { (0.5 + w * one) as i64 }).collect();
        starts.push(xmin as usize);
        weights.push(fixed);
    }
    Coeffs { starts, weights }
}

/// Rounds a fixed-point accumulator (which already holds the +0.5 offset) to a clamped 8-bit value.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes along x. `src` is `h` rows of `w_in` RGB pixels.
fn horizontal(src: &[u8], w_in: usize, h: usize, c: &Coeffs) -> Vec<u8> {
    let w_out = c.starts.len();
    let mut out = vec![0u8; w_out * h * 3];
    for y in 0..h {
        let row = &src[y * w_in * 3..(y + 1) * w_in * 3];
        for (x, (start, ws)) in c.starts.iter().zip(&c.weights).enumerate() {
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (i, w) in ws.iter().enumerate() {
                let p = &row[(start + i) * 3..(start + i) * 3 + 3];
                for ch in 0..3 {
                    acc[ch] += p[ch] as i64 * w;
                }
            }
            for ch in 0..3 {
                out[(y * w_out + x) * 3 + ch] = clip8(acc[ch]);
            }
        }
    }
    out
}

/// Resizes along y. `src` is `h_in` rows of `w` RGB pixels.
fn vertical(src: &[u8], w: usize, c: &Coeffs) -> Vec<u8> {
    let h_out = c.starts.len();
    let mut out = vec![0u8; w * h_out * 3];
    for (y, (start, ws)) in c.starts.iter().zip(&c.weights).enumerate() {
        for xc in 0..w * 3 {
            let mut acc = 1i64 << (PRECISION_BITS - 1);
            for (i, wt) in ws.iter().enumerate() {
                acc += src[(start + i) * w * 3 + xc] as i64 * wt;
            }
            out[y * w * 3 + xc] = clip8(acc);
        }
    }
    out
}

/// Pillow-exact bicubic resize of an RGB image to `width × height` (both > 0).
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w_in, h_in) = (img.width() as usize, img.height() as usize);
    let (w, h) = (width as usize, height as usize);
    let mut data = img.as_raw().clone();
    if w != w_in {
        data = horizontal(&data, w_in, h_in, &coeffs(w_in, w));
    }
    if h != h_in {
        data = vertical(&data, w, &coeffs(h_in, h));
    }
    RgbImage::from_raw(width, height, data).expect("buffer size matches the dimensions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(100, 37), (37, 100), (8, 8), (5, 1), (1, 5)] {
            let c = coeffs(i, o);
            for ws in &c.weights {
                let s: i64 = ws.iter().sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= ws.len() as i64, "{i}->{o}: {s}");
            }
        }
    }

    #[test]
    fn a_constant_image_stays_constant() {
        let img = RgbImage::from_pixel(13, 7, ::image::Rgb([200, 3, 77]));
        let out = resize_bicubic(&img, 29, 4);
        assert!(out.pixels().all(|p| p.0 == [200, 3, 77]));
    }
}

//! Segmentation of an image into palette regions. Every pixel takes the nearest palette colour (object colours and
//! background colours), so a VQ reconstruction whose flat areas drift by a few levels still segments into the
//! same regions; pixels farther than [`FAR`] from every palette colour are flagged. Regions are 4-connected
//! components. The background is the background colour covering most pixels; components of an object colour of
//! at least [`MIN_AREA`] pixels are objects. Everything else is noise — small specks, regions of a second
//! background colour, far-off pixels — except for pixels within 2 of the border between two real regions: that
//! is where a VQ decoder (or a slight blur) mixes two colours, and such a fringe is not an artifact of the edit.
use image::RgbImage;

use crate::scene::{Background, Colour};

/// Palette labels: object colours first (in [`Colour::ALL`] order), then background colours.
pub const LABELS: usize = Colour::ALL.len() + Background::ALL.len();
/// A pixel farther than this (Euclidean, in RGB levels) from every palette colour is far off.
pub const FAR: f64 = 90.0;
/// The smallest object a component can be (the world's smallest star covers about 75 pixels).
pub const MIN_AREA: usize = 40;

fn palette(label: usize) -> [u8; 3] {
    match label {
        l if l < Colour::ALL.len() => Colour::ALL[l].rgb(),
        l => Background::ALL[l - Colour::ALL.len()].rgb(),
    }
}

/// The object colour of a label, if it is one.
pub fn label_colour(label: usize) -> Option<Colour> {
    Colour::ALL.get(label).copied()
}

/// A 4-connected region of one label.
#[derive(Debug, Clone)]
pub struct Component {
    pub label: usize,
    /// Pixel indices (`y * width + x`).
    pub pixels: Vec<usize>,
    /// `[x1, y1, x2, y2)` in pixels.
    pub bbox: [i32; 4],
}

/// The segmentation of one image.
#[derive(Debug, Clone)]
pub struct Segmentation {
    pub width: usize,
    pub height: usize,
    /// The component index of every pixel.
    pub component_of: Vec<usize>,
    pub components: Vec<Component>,
    /// The background colour covering most pixels; `None` when no pixel is near one.
    pub background: Option<Background>,
    /// Indices of the components that are objects.
    pub objects: Vec<usize>,
    /// Pixels counted as noise.
    pub noise_pixels: usize,
}

/// Segments `img`.
pub fn segment(img: &RgbImage) -> Segmentation {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut labels = vec![0usize; w * h];
    let mut far = vec![false; w * h];
    let mut counts = [0usize; LABELS];
    for (i, p) in img.pixels().enumerate() {
        let (l, d) = nearest(p.0);
        labels[i] = l;
        far[i] = d > FAR * FAR;
        counts[l] += 1;
    }
    let bg_label = (Colour::ALL.len()..LABELS).filter(|&l| counts[l] > 0).max_by_key(|&l| (counts[l], usize::MAX - l));
    let (component_of, components) = connected(&labels, w, h);
    // Real regions: objects and the (possibly several, e.g. inside a ring) pieces of the main background.
    let real: Vec<bool> = components
        .iter()
        .map(|c| c.pixels.len() >= MIN_AREA && (label_colour(c.label).is_some() || Some(c.label) == bg_label))
        .collect();
    let objects = (0..components.len()).filter(|&i| real[i] && label_colour(components[i].label).is_some()).collect();
    let mut noise_pixels = 0;
    for (i, &c) in component_of.iter().enumerate() {
        if (!real[c] || far[i]) && !on_border(i, w, h, &component_of, &real) {
            noise_pixels += 1;
        }
    }
    let background = bg_label.map(|l| Background::ALL[l - Colour::ALL.len()]);
    Segmentation { width: w, height: h, component_of, components, background, objects, noise_pixels }
}

/// The nearest palette label and its squared distance.
fn nearest(p: [u8; 3]) -> (usize, f64) {
    (0..LABELS)
        .map(|l| {
            let q = palette(l);
            let d: f64 = (0..3).map(|k| (f64::from(p[k]) - f64::from(q[k])).powi(2)).sum();
            (l, d)
        })
        .fold((0, f64::INFINITY), |best, x| if x.1 < best.1 { x } else { best })
}

/// Whether the 5×5 neighbourhood of pixel `i` touches two different real components: a blurred edge mixes colours
/// over two pixels on each side, and a star's thin points blur into a short streak of mixed pixels.
fn on_border(i: usize, w: usize, h: usize, component_of: &[usize], real: &[bool]) -> bool {
    let (x, y) = ((i % w) as i64, (i / w) as i64);
    let mut first: Option<usize> = None;
    for dy in -2..=2 {
        for dx in -2..=2 {
            let (nx, ny) = (x + dx, y + dy);
            if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                continue;
            }
            let c = component_of[ny as usize * w + nx as usize];
            if !real[c] {
                continue;
            }
            match first {
                None => first = Some(c),
                Some(f) if f != c => return true,
                _ => {}
            }
        }
    }
    false
}

/// 4-connected components of equal labels.
fn connected(labels: &[usize], w: usize, h: usize) -> (Vec<usize>, Vec<Component>) {
    let mut of = vec![usize::MAX; w * h];
    let mut comps = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if of[start] != usize::MAX {
            continue;
        }
        let (id, label) = (comps.len(), labels[start]);
        let mut c = Component { label, pixels: Vec::new(), bbox: [i32::MAX, i32::MAX, i32::MIN, i32::MIN] };
        of[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            c.pixels.push(i);
            let (xi, yi) = (x as i32, y as i32);
            c.bbox = [c.bbox[0].min(xi), c.bbox[1].min(yi), c.bbox[2].max(xi + 1), c.bbox[3].max(yi + 1)];
            let mut visit = |j: usize| {
                if of[j] == usize::MAX && labels[j] == label {
                    of[j] = id;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        comps.push(c);
    }
    (of, comps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn drifted_colours_segment_and_specks_are_noise() {
        let mut img = RgbImage::from_pixel(32, 32, Rgb([120, 135, 126])); // gray, drifted
        for y in 4..14 {
            for x in 4..14 {
                img.put_pixel(x, y, Rgb([230, 30, 20])); // red, drifted
            }
        }
        img.put_pixel(25, 25, Rgb([0, 0, 255])); // one blue speck in the background
        let s = segment(&img);
        assert_eq!(s.background, Some(Background::Gray));
        assert_eq!(s.objects.len(), 1);
        assert_eq!(label_colour(s.components[s.objects[0]].label), Some(Colour::Red));
        assert_eq!(s.components[s.objects[0]].bbox, [4, 4, 14, 14]);
        assert_eq!(s.noise_pixels, 1);
    }

    #[test]
    fn a_fringe_between_object_and_background_is_not_noise() {
        let mut img = RgbImage::from_pixel(32, 32, Rgb([128, 128, 128]));
        for y in 4..14 {
            for x in 4..14 {
                img.put_pixel(x, y, Rgb([255, 0, 0]));
            }
            img.put_pixel(14, y, Rgb([60, 60, 60])); // a far-off mixed column along the right edge
        }
        assert_eq!(segment(&img).noise_pixels, 0);
    }
}

//! Shape recognition of one segmented component. Three features tell the world's shapes apart: a hole (a ring
//! encloses background, about 0.43 of its own area), the fill of the bounding box (square 1, circle π/4,
//! triangle ½, star about 0.34) and the height of the centroid in the box (a triangle, wide at the bottom, has it
//! at ⅔; the others near ½). A nearest-prototype rule on fill and centroid height is robust to the few pixels a VQ
//! round trip moves. The recognised shape is then fitted — re-rendered with [`Glyph`] at sub-pixel offsets and
//! sizes around the box — and the best intersection-over-union measures how clean the shape is.
use crate::render::{Glyph, RING_HOLE, STAR_INNER};
use crate::scene::Shape;

/// A hole covering at least this fraction of the component's area makes a ring.
const RING_MIN_HOLE: f64 = 0.15;

/// The recognised shape of a component and how well an ideal rendering fits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub shape: Shape,
    /// Centre and box side of the best-fitting ideal shape.
    pub cx: f64,
    pub cy: f64,
    pub d: f64,
    /// Intersection over union of the component and that ideal shape.
    pub iou: f64,
}

/// A component as a local mask: `mask[(y - y1) * w + (x - x1)]` over its box.
pub struct Mask {
    pub bbox: [i32; 4],
    pub mask: Vec<bool>,
}

impl Mask {
    /// The mask of `pixels` (indices into an image of `width`) within `bbox`.
    pub fn new(pixels: &[usize], width: usize, bbox: [i32; 4]) -> Self {
        let w = (bbox[2] - bbox[0]) as usize;
        let mut mask = vec![false; w * (bbox[3] - bbox[1]) as usize];
        for &i in pixels {
            let (x, y) = ((i % width) as i32 - bbox[0], (i / width) as i32 - bbox[1]);
            mask[y as usize * w + x as usize] = true;
        }
        Self { bbox, mask }
    }

    fn w(&self) -> i32 {
        self.bbox[2] - self.bbox[0]
    }

    fn h(&self) -> i32 {
        self.bbox[3] - self.bbox[1]
    }

    fn at(&self, x: i32, y: i32) -> bool {
        let (lx, ly) = (x - self.bbox[0], y - self.bbox[1]);
        lx >= 0 && ly >= 0 && lx < self.w() && ly < self.h() && self.mask[(ly * self.w() + lx) as usize]
    }

    /// Pixels inside the box, off the mask, that cannot reach the box border without crossing the mask.
    fn hole_area(&self) -> usize {
        let (w, h) = (self.w() as usize, self.h() as usize);
        let mut reached = vec![false; w * h];
        let mut stack: Vec<usize> = (0..w * h)
            .filter(|&i| (i % w == 0 || i % w == w - 1 || i / w == 0 || i / w == h - 1) && !self.mask[i])
            .collect();
        stack.iter().for_each(|&i| reached[i] = true);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            let nbrs = [
                (x > 0).then(|| i - 1),
                (x + 1 < w).then(|| i + 1),
                (y > 0).then(|| i - w),
                (y + 1 < h).then(|| i + w),
            ];
            for j in nbrs.into_iter().flatten() {
                if !reached[j] && !self.mask[j] {
                    reached[j] = true;
                    stack.push(j);
                }
            }
        }
        (0..w * h).filter(|&i| !self.mask[i] && !reached[i]).count()
    }
}

/// The fill and centroid height of each shape drawn by the world (star values from its geometry: 10 triangles of
/// area ½·R·r·sin 36° in a box 2R·sin 72° wide and R(1 + cos 36°) tall, centroid at the star's centre).
fn prototypes() -> [(Shape, f64, f64); 4] {
    let (s36, c36, s72) = (36f64.to_radians().sin(), 36f64.to_radians().cos(), 72f64.to_radians().sin());
    let star_fill = 5.0 * STAR_INNER * s36 / (2.0 * s72 * (1.0 + c36));
    let star_cy = 1.0 / (1.0 + c36);
    [
        (Shape::Square, 1.0, 0.5),
        (Shape::Circle, std::f64::consts::FRAC_PI_4, 0.5),
        (Shape::Triangle, 0.5, 2.0 / 3.0),
        (Shape::Star, star_fill, star_cy),
    ]
}

/// The shape a mask looks like.
pub fn classify(m: &Mask) -> Shape {
    let area = m.mask.iter().filter(|&&b| b).count().max(1);
    if m.hole_area() as f64 >= RING_MIN_HOLE * area as f64 {
        return Shape::Ring;
    }
    let fill = area as f64 / f64::from(m.w() * m.h());
    let mut ysum = 0.0;
    for (i, _) in m.mask.iter().enumerate().filter(|(_, &b)| b) {
        ysum += (i as i32 / m.w()) as f64 + 0.5;
    }
    let cy = ysum / area as f64 / f64::from(m.h());
    let cost = |(_, f, c): &(Shape, f64, f64)| ((fill - f) / 0.1).powi(2) + ((cy - c) / 0.05).powi(2);
    prototypes().into_iter().min_by(|a, b| cost(a).total_cmp(&cost(b))).map(|p| p.0).unwrap_or(Shape::Square)
}

/// The ideal shape's centre and box side implied by the mask's moments: the side from the area (each shape's
/// area is a fixed multiple of d²), the centre from the centroid (a triangle's lies d/6 below its box centre).
/// Moments move little when a few edge pixels flip, unlike the box, which a thin star point can shorten.
fn initial(shape: Shape, m: &Mask) -> (f64, f64, f64) {
    let (mut n, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    for (i, _) in m.mask.iter().enumerate().filter(|(_, &b)| b) {
        let (x, y) = ((i as i32 % m.w() + m.bbox[0]) as f64 + 0.5, (i as i32 / m.w() + m.bbox[1]) as f64 + 0.5);
        (n, sx, sy) = (n + 1.0, sx + x, sy + y);
    }
    let (cx, cy) = (sx / n.max(1.0), sy / n.max(1.0));
    let quarter_pi = std::f64::consts::FRAC_PI_4;
    let per_d2 = match shape {
        Shape::Square => 1.0,
        Shape::Circle => quarter_pi,
        Shape::Triangle => 0.5,
        Shape::Ring => quarter_pi * (1.0 - RING_HOLE * RING_HOLE),
        Shape::Star => 1.25 * STAR_INNER * 36f64.to_radians().sin(),
    };
    let d = (n / per_d2).sqrt();
    let cy = if shape == Shape::Triangle { cy - d / 6.0 } else { cy };
    (cx, cy, d)
}

/// Recognises the mask's shape and fits it.
pub fn fit(m: &Mask) -> Fit {
    let shape = classify(m);
    let (cx0, cy0, d0) = initial(shape, m);
    let area = m.mask.iter().filter(|&&b| b).count();
    let mut best = Fit { shape, cx: cx0, cy: cy0, d: d0, iou: 0.0 };
    for dd in [-1.0, 0.0, 1.0] {
        for oy in [-1.0, -0.5, 0.0, 0.5, 1.0] {
            for ox in [-1.0, -0.5, 0.0, 0.5, 1.0] {
                let (cx, cy, d) = (cx0 + ox, cy0 + oy, d0 + dd);
                let iou = iou(m, area, &Glyph::new(shape, cx, cy, d));
                if iou > best.iou {
                    best = Fit { shape, cx, cy, d, iou };
                }
            }
        }
    }
    best
}

fn iou(m: &Mask, area: usize, g: &Glyph) -> f64 {
    let [gx1, gy1, gx2, gy2] = g.window();
    let (mut inter, mut glyph) = (0usize, 0usize);
    for y in gy1..gy2 {
        for x in gx1..gx2 {
            if g.covers(x, y) {
                glyph += 1;
                inter += usize::from(m.at(x, y));
            }
        }
    }
    let union = area + glyph - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render;
    use crate::scene::{Background, Colour, Object, Scene, Size};

    fn mask_of(shape: Shape, size: Size) -> Mask {
        let o = Object { id: 0, shape, colour: Colour::Red, size, x: 60, y: 61 };
        let img = render(&Scene { background: Background::Gray, objects: vec![o] });
        let px: Vec<usize> = img.pixels().enumerate().filter(|(_, p)| p.0 == [255, 0, 0]).map(|(i, _)| i).collect();
        let bbox = crate::render::pixel_box(&o);
        Mask::new(&px, 128, bbox)
    }

    #[test]
    fn every_world_shape_is_recognised_and_fits_exactly() {
        for shape in Shape::ALL {
            for size in Size::ALL {
                let f = fit(&mask_of(shape, size));
                assert_eq!(f.shape, shape, "{shape:?} {size:?}");
                assert!(f.iou > 0.9, "{shape:?} {size:?}: {}", f.iou);
                assert_eq!(crate::scene::Size::from_extent(f.d), size, "{shape:?} {size:?}: {f:?}");
                assert!((f.cx - 60.0).abs() <= 1.0 && (f.cy - 61.0).abs() <= 1.0, "{shape:?} {size:?}: {f:?}");
            }
        }
    }
}

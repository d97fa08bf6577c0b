//! Rasterisation without anti-aliasing: a pixel takes an object's colour exactly when its centre lies inside the
//! shape, so every pixel of a world image is one palette colour and the verifier can recover the scene exactly.
//! Geometry (in pixels, `d` the box side): a circle of diameter `d`; a square of side `d`; an upward isosceles
//! triangle with base `d` and height `d`; a five-pointed star with outer radius `d/2`, inner radius 0.4 of that and
//! one point up; a ring with outer diameter `d` and a hole of 0.55 of it. The verifier re-renders shapes with the
//! same code to judge how clean a segmented component is.
use image::{Rgb, RgbImage};

use crate::scene::{Object, Scene, Shape};
use crate::WORLD_SIZE;

/// The inner radius of a star as a fraction of its outer radius.
pub const STAR_INNER: f64 = 0.4;
/// The hole of a ring as a fraction of its outer diameter.
pub const RING_HOLE: f64 = 0.55;

/// A shape placed at a (sub-pixel) centre with a box side `d`, ready for point tests.
#[derive(Debug, Clone)]
pub struct Glyph {
    shape: Shape,
    cx: f64,
    cy: f64,
    d: f64,
    star: [(f64, f64); 10],
}

impl Glyph {
    /// The shape centred at `(cx, cy)` with box side `d`.
    pub fn new(shape: Shape, cx: f64, cy: f64, d: f64) -> Self {
        let mut star = [(0.0, 0.0); 10];
        if shape == Shape::Star {
            let r = d / 2.0;
            for (k, v) in star.iter_mut().enumerate() {
                let rad = if k % 2 == 0 { r } else { r * STAR_INNER };
                let a = -std::f64::consts::FRAC_PI_2 + k as f64 * std::f64::consts::PI / 5.0;
                *v = (cx + rad * a.cos(), cy + rad * a.sin());
            }
        }
        Self { shape, cx, cy, d, star }
    }

    /// The glyph of an object as the world draws it.
    pub fn of(o: &Object) -> Self {
        Self::new(o.shape, f64::from(o.x), f64::from(o.y), f64::from(o.size.pixels()))
    }

    /// Whether pixel `(px, py)` (its centre) is inside the shape.
    pub fn covers(&self, px: i32, py: i32) -> bool {
        let (x, y) = (f64::from(px) + 0.5, f64::from(py) + 0.5);
        let (dx, dy, h) = (x - self.cx, y - self.cy, self.d / 2.0);
        match self.shape {
            Shape::Circle => dx * dx + dy * dy <= h * h,
            Shape::Ring => {
                let r2 = dx * dx + dy * dy;
                let inner = h * RING_HOLE;
                r2 <= h * h && r2 > inner * inner
            }
            Shape::Square => dx.abs() <= h && dy.abs() <= h,
            Shape::Triangle => dy <= h && dx.abs() <= (dy + h) / 2.0,
            Shape::Star => inside_polygon(&self.star, x, y),
        }
    }

    /// The pixel window `[x1, y1, x2, y2)` that can hold covered pixels, clipped to the image.
    pub fn window(&self) -> [i32; 4] {
        let (h, n) = (self.d / 2.0 + 1.0, WORLD_SIZE as i32);
        let c = |v: f64| v.floor() as i32;
        [c(self.cx - h).max(0), c(self.cy - h).max(0), (c(self.cx + h) + 1).min(n), (c(self.cy + h) + 1).min(n)]
    }
}

/// Even-odd point-in-polygon test.
fn inside_polygon(poly: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let ((xi, yi), (xj, yj)) = (poly[i], poly[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// The scene as a 128×128 image.
pub fn render(scene: &Scene) -> RgbImage {
    let mut img = RgbImage::from_pixel(WORLD_SIZE, WORLD_SIZE, Rgb(scene.background.rgb()));
    for o in &scene.objects {
        let g = Glyph::of(o);
        let [x1, y1, x2, y2] = g.window();
        for y in y1..y2 {
            for x in x1..x2 {
                if g.covers(x, y) {
                    img.put_pixel(x as u32, y as u32, Rgb(o.colour.rgb()));
                }
            }
        }
    }
    img
}

/// The box of the pixels an object covers, `[x1, y1, x2, y2]` with exclusive ends (as EARL's CoT boxes, in pixels of
/// the image the model sees).
pub fn pixel_box(o: &Object) -> [i32; 4] {
    let g = Glyph::of(o);
    let [wx1, wy1, wx2, wy2] = g.window();
    let mut b = [i32::MAX, i32::MAX, i32::MIN, i32::MIN];
    for y in wy1..wy2 {
        for x in wx1..wx2 {
            if g.covers(x, y) {
                b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{Background, Colour, Size};

    fn obj(shape: Shape, size: Size) -> Object {
        Object { id: 0, shape, colour: Colour::Red, size, x: 64, y: 64 }
    }

    fn area(o: &Object) -> usize {
        let img = render(&Scene { background: Background::Gray, objects: vec![*o] });
        img.pixels().filter(|p| p.0 == Colour::Red.rgb()).count()
    }

    #[test]
    fn shapes_fill_their_boxes_as_their_geometry_says() {
        // Square 36² = 1296 exactly; a circle is π/4 of it; a triangle half; a star ~0.29 of the square; a ring
        // (1 − 0.55²) of the circle.
        assert_eq!(area(&obj(Shape::Square, Size::Large)), 1296);
        let circle = area(&obj(Shape::Circle, Size::Large)) as f64;
        assert!((circle / 1296.0 - std::f64::consts::FRAC_PI_4).abs() < 0.02, "{circle}");
        let tri = area(&obj(Shape::Triangle, Size::Large)) as f64;
        assert!((tri / 1296.0 - 0.5).abs() < 0.03, "{tri}");
        let ring = area(&obj(Shape::Ring, Size::Large)) as f64;
        assert!((ring / circle - (1.0 - RING_HOLE * RING_HOLE)).abs() < 0.03, "{ring}");
        let star = area(&obj(Shape::Star, Size::Large)) as f64;
        assert!(star > 250.0 && star < 450.0, "{star}");
    }

    #[test]
    fn pixel_boxes_are_exclusive_and_inside_the_square() {
        let o = obj(Shape::Square, Size::Small);
        assert_eq!(pixel_box(&o), [56, 56, 72, 72]);
        let t = obj(Shape::Triangle, Size::Medium);
        let [x1, y1, x2, y2] = pixel_box(&t);
        let [sx1, sy1, sx2, sy2] = t.square();
        assert!(x1 >= sx1 && y1 >= sy1 && x2 <= sx2 && y2 <= sy2);
        assert_eq!(y2, sy2);
    }
}

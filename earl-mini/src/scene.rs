//! The scene graph, the world's ground truth: a background colour and objects, each a shape of a palette colour and
//! a size class centred at a pixel position. Object colours are the eight corners of the RGB cube (255 apart per
//! channel) and background colours mid-tones at least 128 from each other and 179 from every object colour, so
//! that a nearest-colour segmentation stays exact even on a VQ reconstruction. Placement keeps a gap between the
//! objects' boxes: there is no occlusion and no two objects touch.
use serde::{Deserialize, Serialize};

use crate::WORLD_SIZE;

/// The colour of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Magenta,
    Cyan,
    White,
    Black,
}

impl Colour {
    /// Every object colour, in palette order.
    pub const ALL: [Colour; 8] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Magenta,
        Colour::Cyan,
        Colour::White,
        Colour::Black,
    ];

    /// The colour's pixel value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [255, 0, 0],
            Colour::Green => [0, 255, 0],
            Colour::Blue => [0, 0, 255],
            Colour::Yellow => [255, 255, 0],
            Colour::Magenta => [255, 0, 255],
            Colour::Cyan => [0, 255, 255],
            Colour::White => [255, 255, 255],
            Colour::Black => [0, 0, 0],
        }
    }

    /// The word instructions use.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Magenta => "magenta",
            Colour::Cyan => "cyan",
            Colour::White => "white",
            Colour::Black => "black",
        }
    }
}

/// The colour of the background: a set disjoint from (and far from) the object colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    Gray,
    Teal,
    Olive,
    Violet,
}

impl Background {
    /// Every background colour.
    pub const ALL: [Background; 4] = [Background::Gray, Background::Teal, Background::Olive, Background::Violet];

    /// The colour's pixel value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Background::Gray => [128, 128, 128],
            Background::Teal => [0, 128, 128],
            Background::Olive => [128, 128, 0],
            Background::Violet => [128, 0, 128],
        }
    }

    /// The word instructions use.
    pub fn name(self) -> &'static str {
        match self {
            Background::Gray => "gray",
            Background::Teal => "teal",
            Background::Olive => "olive",
            Background::Violet => "violet",
        }
    }
}

/// The shape of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Ring,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Star, Shape::Ring];

    /// The noun instructions use.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Ring => "ring",
        }
    }

    /// The plural noun.
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Star => "stars",
            Shape::Ring => "rings",
        }
    }
}

/// The size class of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    /// Every size, smallest first.
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// The side of the object's square box in pixels (the diameter of a circle): 2, 3¼ and 4½ VQ codes.
    pub fn pixels(self) -> i32 {
        match self {
            Size::Small => 16,
            Size::Medium => 26,
            Size::Large => 36,
        }
    }

    /// The word instructions use.
    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium-sized",
            Size::Large => "large",
        }
    }

    /// The size class a box side (in pixels) is closest to; the thresholds lie halfway between the classes.
    pub fn from_extent(side: f64) -> Size {
        if side < 21.0 {
            Size::Small
        } else if side < 31.0 {
            Size::Medium
        } else {
            Size::Large
        }
    }
}

/// One object of a scene. `x`, `y` is the centre of its box, in pixels from the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    /// Stable identity across an edit: the target keeps the ids of the source's objects.
    pub id: u32,
    pub shape: Shape,
    pub colour: Colour,
    pub size: Size,
    pub x: i32,
    pub y: i32,
}

/// The gap in pixels kept between any two objects' boxes.
pub const GAP: i32 = 6;
/// The margin in pixels kept between an object's box and the image border.
pub const MARGIN: i32 = 2;

impl Object {
    /// The object's square box `[x1, y1, x2, y2)` (every shape is drawn inside it).
    pub fn square(&self) -> [i32; 4] {
        let h = self.size.pixels() / 2;
        [self.x - h, self.y - h, self.x + h, self.y + h]
    }

    /// Whether the box lies inside the image with the margin.
    pub fn fits(&self) -> bool {
        let [x1, y1, x2, y2] = self.square();
        x1 >= MARGIN && y1 >= MARGIN && x2 <= WORLD_SIZE as i32 - MARGIN && y2 <= WORLD_SIZE as i32 - MARGIN
    }

    /// Whether the two boxes are at least [`GAP`] apart along one axis.
    pub fn apart(&self, other: &Object) -> bool {
        let (a, b) = (self.square(), other.square());
        a[2] + GAP <= b[0] || b[2] + GAP <= a[0] || a[3] + GAP <= b[1] || b[3] + GAP <= a[1]
    }
}

/// A scene: the background and the objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scene {
    pub background: Background,
    pub objects: Vec<Object>,
}

impl Scene {
    /// The object with this id.
    pub fn get(&self, id: u32) -> Option<&Object> {
        self.objects.iter().find(|o| o.id == id)
    }

    /// Whether `candidate` fits in the image and keeps the gap to every object except `except`.
    pub fn has_room(&self, candidate: &Object, except: &[u32]) -> bool {
        candidate.fits() && self.objects.iter().filter(|o| !except.contains(&o.id)).all(|o| o.apart(candidate))
    }

    /// An id no object has yet.
    pub fn fresh_id(&self) -> u32 {
        self.objects.iter().map(|o| o.id + 1).max().unwrap_or(0)
    }
}

/// A direction of one object from another, on the image plane (y grows downwards). `B` is `rel` of `A` when the
/// offset lies in that direction's 90° cone, with a 4-pixel margin off the diagonals so that no offset is in two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    Left,
    Right,
    Above,
    Below,
}

impl Relation {
    /// Every relation.
    pub const ALL: [Relation; 4] = [Relation::Left, Relation::Right, Relation::Above, Relation::Below];

    /// Whether a point at `(x, y)` is in this direction from `(ax, ay)`.
    pub fn holds(self, (x, y): (f64, f64), (ax, ay): (f64, f64)) -> bool {
        let (dx, dy) = (x - ax, y - ay);
        match self {
            Relation::Left => dx < 0.0 && -dx > dy.abs() + 4.0,
            Relation::Right => dx > 0.0 && dx > dy.abs() + 4.0,
            Relation::Above => dy < 0.0 && -dy > dx.abs() + 4.0,
            Relation::Below => dy > 0.0 && dy > dx.abs() + 4.0,
        }
    }

    /// The phrase placed between two noun phrases ("the star *to the left of* the ring").
    pub fn phrase(self) -> &'static str {
        match self {
            Relation::Left => "to the left of",
            Relation::Right => "to the right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(a: [u8; 3], b: [u8; 3]) -> f64 {
        a.iter().zip(b).map(|(&p, q)| (f64::from(p) - f64::from(q)).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn palette_colours_are_far_apart() {
        for (i, a) in Colour::ALL.iter().enumerate() {
            for b in &Colour::ALL[i + 1..] {
                assert!(dist(a.rgb(), b.rgb()) >= 255.0, "{a:?} {b:?}");
            }
            for bg in Background::ALL {
                assert!(dist(a.rgb(), bg.rgb()) >= 179.0, "{a:?} {bg:?}");
            }
        }
        for (i, a) in Background::ALL.iter().enumerate() {
            for b in &Background::ALL[i + 1..] {
                assert!(dist(a.rgb(), b.rgb()) >= 128.0, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn size_classes_round_trip_through_their_extent() {
        for s in Size::ALL {
            assert_eq!(Size::from_extent(f64::from(s.pixels())), s);
            // A star's box is 0.95 of its diameter wide; it still reads as its own class.
            assert_eq!(Size::from_extent(0.95 * f64::from(s.pixels())), s);
        }
    }

    #[test]
    fn relations_are_exclusive_cones() {
        assert!(Relation::Left.holds((10.0, 52.0), (50.0, 50.0)));
        assert!(!Relation::Above.holds((10.0, 52.0), (50.0, 50.0)));
        // On the diagonal, no relation holds.
        assert!(Relation::ALL.iter().all(|r| !r.holds((30.0, 30.0), (50.0, 50.0))));
        assert!(Relation::Below.holds((50.0, 90.0), (50.0, 50.0)));
    }
}

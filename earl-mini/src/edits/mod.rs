//! Edits: what turns a source scene into its target. An [`Edit`] is data (it goes into `scene.json`); applying it
//! gives the target scene with the source's object ids kept, plus the [`Freedom`] the instruction leaves on new or
//! moved objects ("add a triangle so there are three" names no colour, size or place; "move the ring to the left of
//! the star" names a direction, not a pixel). Together they form the [`Task`] the verifier checks. Simple edits
//! (the paper's S split) are generated in [`simple`], complex ones (C) in [`complex`].
pub mod complex;
pub mod simple;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scene::{Background, Colour, Object, Relation, Scene, Size};
use crate::WORLD_SIZE;

/// One of the nine regions of a 3×3 grid over the image, where "add … in the top left corner" puts an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    TopLeft,
    Top,
    TopRight,
    Left,
    Centre,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

impl Cell {
    /// Every cell, row by row.
    pub const ALL: [Cell; 9] = [
        Cell::TopLeft,
        Cell::Top,
        Cell::TopRight,
        Cell::Left,
        Cell::Centre,
        Cell::Right,
        Cell::BottomLeft,
        Cell::Bottom,
        Cell::BottomRight,
    ];

    fn index(self) -> i32 {
        Cell::ALL.iter().position(|&c| c == self).unwrap_or(0) as i32
    }

    /// The cell's region `[x1, y1, x2, y2)` in pixels.
    pub fn rect(self) -> [i32; 4] {
        let (col, row, n) = (self.index() % 3, self.index() / 3, WORLD_SIZE as i32);
        [col * n / 3, row * n / 3, (col + 1) * n / 3, (row + 1) * n / 3]
    }

    /// The pixel where the world puts an object added to this cell.
    pub fn centre(self) -> (i32, i32) {
        let [x1, y1, x2, y2] = self.rect();
        ((x1 + x2) / 2, (y1 + y2) / 2)
    }

    /// The phrase following "in the".
    pub fn phrase(self) -> &'static str {
        match self {
            Cell::TopLeft => "top left corner",
            Cell::Top => "top middle",
            Cell::TopRight => "top right corner",
            Cell::Left => "middle of the left side",
            Cell::Centre => "centre",
            Cell::Right => "middle of the right side",
            Cell::BottomLeft => "bottom left corner",
            Cell::Bottom => "bottom middle",
            Cell::BottomRight => "bottom right corner",
        }
    }
}

/// Where a target object may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Place {
    /// At its target position (within the verifier's position tolerance).
    #[default]
    Exact,
    /// Its centre inside the cell.
    Cell { cell: Cell },
    /// Its centre in the direction `relation` from the target position of object `anchor`.
    Of { relation: Relation, anchor: u32 },
    /// Anywhere in the image.
    Anywhere,
}

/// What an instruction leaves open about one target object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Freedom {
    #[serde(default)]
    pub any_colour: bool,
    #[serde(default)]
    pub any_size: bool,
    #[serde(default)]
    pub place: Place,
}

/// The ground truth of one sample: the source scene, the target scene (rendered as `target.png`) and the freedom
/// of the objects the instruction leaves partly open (absent: the object must match exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub source: Scene,
    pub target: Scene,
    #[serde(default)]
    pub freedom: BTreeMap<u32, Freedom>,
}

/// An edit, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Edit {
    /// S: give object `id` the colour `to`.
    Recolour { id: u32, to: Colour },
    /// S: remove object `id`.
    Remove { id: u32 },
    /// S: add `object` (placed at the cell's centre); `size_given` says whether the instruction names its size.
    Add { object: Object, cell: Cell, size_given: bool },
    /// S: change the background.
    Background { to: Background },
    /// S: give object `id` the size `to`, keeping its centre.
    Resize { id: u32, to: Size },
    /// C: move object `id` to `to`, which lies in direction `relation` from object `anchor`.
    Move { id: u32, relation: Relation, anchor: u32, to: [i32; 2] },
    /// C: swap the colours of objects `a` and `b`.
    SwapColours { a: u32, b: u32 },
    /// C: remove every object of `colour`.
    RemoveColour { colour: Colour },
    /// C: add `object` (any colour, size and place) so that its shape counts `count` objects.
    AddCount { object: Object, count: u32 },
    /// C: recolour (`recolour` set) or remove the one object `id` lying in direction `relation` from `anchor`.
    Relational { id: u32, relation: Relation, anchor: u32, recolour: Option<Colour> },
    /// C: simple edits applied one after the other.
    TwoStep { steps: Vec<Edit> },
}

impl Edit {
    /// The edit's kind, as `scene.json` spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Edit::Recolour { .. } => "recolour",
            Edit::Remove { .. } => "remove",
            Edit::Add { .. } => "add",
            Edit::Background { .. } => "background",
            Edit::Resize { .. } => "resize",
            Edit::Move { .. } => "move",
            Edit::SwapColours { .. } => "swap_colours",
            Edit::RemoveColour { .. } => "remove_colour",
            Edit::AddCount { .. } => "add_count",
            Edit::Relational { .. } => "relational",
            Edit::TwoStep { .. } => "two_step",
        }
    }

    /// Whether the edit belongs to the complex (C) family.
    pub fn is_complex(&self) -> bool {
        !matches!(
            self,
            Edit::Recolour { .. }
                | Edit::Remove { .. }
                | Edit::Add { .. }
                | Edit::Background { .. }
                | Edit::Resize { .. }
        )
    }

    /// The target of `source` under this edit, recording open attributes in `freedom`.
    pub fn apply(&self, source: &Scene, freedom: &mut BTreeMap<u32, Freedom>) -> Scene {
        let mut s = source.clone();
        let with =
            |s: &mut Scene, id: u32, f: &dyn Fn(&mut Object)| s.objects.iter_mut().filter(|o| o.id == id).for_each(f);
        match self {
            Edit::Recolour { id, to } => with(&mut s, *id, &|o| o.colour = *to),
            Edit::Remove { id } => s.objects.retain(|o| o.id != *id),
            Edit::Add { object, cell, size_given } => {
                s.objects.push(*object);
                freedom.insert(
                    object.id,
                    Freedom { any_size: !size_given, place: Place::Cell { cell: *cell }, ..Freedom::default() },
                );
            }
            Edit::Background { to } => s.background = *to,
            Edit::Resize { id, to } => with(&mut s, *id, &|o| o.size = *to),
            Edit::Move { id, relation, anchor, to } => {
                with(&mut s, *id, &|o| (o.x, o.y) = (to[0], to[1]));
                freedom.insert(
                    *id,
                    Freedom { place: Place::Of { relation: *relation, anchor: *anchor }, ..Freedom::default() },
                );
            }
            Edit::SwapColours { a, b } => {
                let colour = |id| source.get(id).map(|o| o.colour);
                if let (Some(ca), Some(cb)) = (colour(*a), colour(*b)) {
                    with(&mut s, *a, &|o| o.colour = cb);
                    with(&mut s, *b, &|o| o.colour = ca);
                }
            }
            Edit::RemoveColour { colour } => s.objects.retain(|o| o.colour != *colour),
            Edit::AddCount { object, .. } => {
                s.objects.push(*object);
                freedom.insert(object.id, Freedom { any_colour: true, any_size: true, place: Place::Anywhere });
            }
            Edit::Relational { id, recolour, .. } => match recolour {
                Some(to) => with(&mut s, *id, &|o| o.colour = *to),
                None => s.objects.retain(|o| o.id != *id),
            },
            Edit::TwoStep { steps } => {
                for step in steps {
                    s = step.apply(&s, freedom);
                }
            }
        }
        s
    }

    /// The task of this edit on `source`.
    pub fn task(&self, source: &Scene) -> Task {
        let mut freedom = BTreeMap::new();
        let target = self.apply(source, &mut freedom);
        freedom.retain(|id, _| target.get(*id).is_some());
        Task { source: source.clone(), target, freedom }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::Shape;

    fn scene() -> Scene {
        let o = |id, shape, colour, x| Object { id, shape, colour, size: Size::Small, x, y: 64 };
        Scene {
            background: Background::Gray,
            objects: vec![o(0, Shape::Circle, Colour::Red, 20), o(1, Shape::Star, Colour::Blue, 100)],
        }
    }

    #[test]
    fn cells_tile_the_image_and_centre_inside() {
        let area: i32 = Cell::ALL.iter().map(|c| c.rect()).map(|[a, b, c, d]| (c - a) * (d - b)).sum();
        assert_eq!(area, 128 * 128);
        assert_eq!(Cell::TopLeft.centre(), (21, 21));
        assert_eq!(Cell::BottomRight.centre(), (106, 106));
    }

    #[test]
    fn two_step_applies_in_order_and_keeps_ids() {
        let e = Edit::TwoStep { steps: vec![Edit::SwapColours { a: 0, b: 1 }, Edit::Remove { id: 0 }] };
        let t = e.task(&scene());
        assert_eq!(t.target.objects.len(), 1);
        assert_eq!(t.target.objects[0].id, 1);
        assert_eq!(t.target.objects[0].colour, Colour::Red);
        assert!(e.is_complex() && !Edit::Remove { id: 0 }.is_complex());
    }

    #[test]
    fn tasks_round_trip_through_json() {
        let obj = Object { id: 2, shape: Shape::Ring, colour: Colour::Green, size: Size::Large, x: 64, y: 21 };
        let e = Edit::Add { object: obj, cell: Cell::Top, size_given: false };
        let t = e.task(&scene());
        assert_eq!(t.freedom[&2].place, Place::Cell { cell: Cell::Top });
        assert!(t.freedom[&2].any_size);
        let back: Task = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let e2: Edit = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(e2, e);
    }
}

//! Generators of the simple edits (EARL's S split): recolour, remove, add at a described place, change the
//! background, resize. Each draws its parameters from the scene and returns `None` when the scene does not allow it
//! (no object, no free cell, no room to grow); the split generator then draws again. Every edit changes something
//! the verifier can see: a new colour differs from the old, a new size from the old, an added object is new.
use crate::edits::{Cell, Edit};
use crate::rng::Rng;
use crate::scene::{Background, Colour, Object, Scene, Shape, Size};

/// The simple edit kinds, in the order [`generate`] draws from.
pub const KINDS: [&str; 5] = ["recolour", "remove", "add", "background", "resize"];

/// A simple edit of a random kind, avoiding the objects in `untouchable` (the other step of a two-step edit).
pub fn generate(rng: &mut Rng, scene: &Scene, untouchable: &[u32]) -> Option<Edit> {
    match *rng.pick(&KINDS) {
        "recolour" => recolour(rng, scene, untouchable),
        "remove" => remove(rng, scene, untouchable),
        "add" => add(rng, scene),
        "background" => Some(background(rng, scene)),
        _ => resize(rng, scene, untouchable),
    }
}

/// One object not in `untouchable`.
pub fn pick_object(rng: &mut Rng, scene: &Scene, untouchable: &[u32]) -> Option<Object> {
    let free: Vec<Object> = scene.objects.iter().filter(|o| !untouchable.contains(&o.id)).copied().collect();
    (!free.is_empty()).then(|| *rng.pick(&free))
}

/// A colour other than `not`.
pub fn other_colour(rng: &mut Rng, not: Colour) -> Colour {
    let others: Vec<Colour> = Colour::ALL.into_iter().filter(|&c| c != not).collect();
    *rng.pick(&others)
}

/// Recolour an object.
pub fn recolour(rng: &mut Rng, scene: &Scene, untouchable: &[u32]) -> Option<Edit> {
    let o = pick_object(rng, scene, untouchable)?;
    Some(Edit::Recolour { id: o.id, to: other_colour(rng, o.colour) })
}

/// Remove an object.
pub fn remove(rng: &mut Rng, scene: &Scene, untouchable: &[u32]) -> Option<Edit> {
    let o = pick_object(rng, scene, untouchable)?;
    Some(Edit::Remove { id: o.id })
}

/// Add an object at the centre of a free cell of the 3×3 grid (at most five objects in all).
pub fn add(rng: &mut Rng, scene: &Scene) -> Option<Edit> {
    if scene.objects.len() >= 5 {
        return None;
    }
    let (shape, colour, size) = (*rng.pick(&Shape::ALL), *rng.pick(&Colour::ALL), *rng.pick(&Size::ALL));
    let start = rng.below(9) as usize;
    for k in 0..9 {
        let cell = Cell::ALL[(start + k) % 9];
        let (x, y) = cell.centre();
        let object = Object { id: scene.fresh_id(), shape, colour, size, x, y };
        if scene.has_room(&object, &[]) {
            return Some(Edit::Add { object, cell, size_given: rng.chance(2, 3) });
        }
    }
    None
}

/// Change the background to another of its colours.
pub fn background(rng: &mut Rng, scene: &Scene) -> Edit {
    let others: Vec<Background> = Background::ALL.into_iter().filter(|&b| b != scene.background).collect();
    Edit::Background { to: *rng.pick(&others) }
}

/// Give an object another size class that fits where it stands.
pub fn resize(rng: &mut Rng, scene: &Scene, untouchable: &[u32]) -> Option<Edit> {
    let o = pick_object(rng, scene, untouchable)?;
    let to = *rng.pick(&Size::ALL.into_iter().filter(|&s| s != o.size).collect::<Vec<_>>());
    scene.has_room(&Object { size: to, ..o }, &[o.id]).then_some(Edit::Resize { id: o.id, to })
}

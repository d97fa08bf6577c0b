//! Generators of the complex edits (EARL's C split): move an object relative to another, swap two objects'
//! colours, remove every object of a colour, add an object to reach a count, edit the object that stands in a
//! direction from another, and two simple edits in sequence. As in [`super::simple`], `None` means the scene does
//! not allow the edit and the split generator draws again.
use crate::edits::{simple, Edit};
use crate::rng::Rng;
use crate::scene::{Colour, Object, Relation, Scene, Size, GAP};

/// The complex edit kinds, in the order [`generate`] draws from.
pub const KINDS: [&str; 6] = ["move", "swap_colours", "remove_colour", "add_count", "relational", "two_step"];

/// A complex edit of a random kind.
pub fn generate(rng: &mut Rng, scene: &Scene) -> Option<Edit> {
    match *rng.pick(&KINDS) {
        "move" => move_relative(rng, scene),
        "swap_colours" => swap_colours(rng, scene),
        "remove_colour" => remove_colour(rng, scene),
        "add_count" => add_count(rng, scene),
        "relational" => relational(rng, scene),
        _ => two_step(rng, scene),
    }
}

fn centre(o: &Object) -> (f64, f64) {
    (f64::from(o.x), f64::from(o.y))
}

/// Move an object next to another, in a direction it is not in yet, a gap of 6–12 pixels between their boxes.
pub fn move_relative(rng: &mut Rng, scene: &Scene) -> Option<Edit> {
    let m = simple::pick_object(rng, scene, &[])?;
    let anchor = simple::pick_object(rng, scene, &[m.id])?;
    let relation = *rng.pick(&Relation::ALL);
    if relation.holds(centre(&m), centre(&anchor)) {
        return None;
    }
    let reach = (m.size.pixels() + anchor.size.pixels()) / 2 + GAP + rng.range(0, 6);
    let (x, y) = match relation {
        Relation::Left => (anchor.x - reach, anchor.y),
        Relation::Right => (anchor.x + reach, anchor.y),
        Relation::Above => (anchor.x, anchor.y - reach),
        Relation::Below => (anchor.x, anchor.y + reach),
    };
    let moved = Object { x, y, ..m };
    scene.has_room(&moved, &[m.id]).then_some(Edit::Move { id: m.id, relation, anchor: anchor.id, to: [x, y] })
}

/// Swap the colours of two objects of different colours.
pub fn swap_colours(rng: &mut Rng, scene: &Scene) -> Option<Edit> {
    let a = simple::pick_object(rng, scene, &[])?;
    let others: Vec<u32> = scene.objects.iter().filter(|o| o.colour == a.colour).map(|o| o.id).collect();
    let b = simple::pick_object(rng, scene, &others)?;
    Some(Edit::SwapColours { a: a.id, b: b.id })
}

/// Remove every object of one colour present in the scene.
pub fn remove_colour(rng: &mut Rng, scene: &Scene) -> Option<Edit> {
    let o = simple::pick_object(rng, scene, &[])?;
    Some(Edit::RemoveColour { colour: o.colour })
}

/// Add one object of a shape already present (one to three times) anywhere there is room.
pub fn add_count(rng: &mut Rng, scene: &Scene) -> Option<Edit> {
    if scene.objects.len() >= 5 {
        return None;
    }
    let shape = simple::pick_object(rng, scene, &[])?.shape;
    let count = scene.objects.iter().filter(|o| o.shape == shape).count() as u32 + 1;
    if count > 4 {
        return None;
    }
    let (colour, size) = (*rng.pick(&Colour::ALL), *rng.pick(&Size::ALL));
    for _ in 0..40 {
        let h = size.pixels() / 2 + 2;
        let (x, y) = (rng.range(h, 128 - h), rng.range(h, 128 - h));
        let object = Object { id: scene.fresh_id(), shape, colour, size, x, y };
        if scene.has_room(&object, &[]) {
            return Some(Edit::AddCount { object, count });
        }
    }
    None
}

/// Recolour or remove the single object in a direction from an anchor object.
pub fn relational(rng: &mut Rng, scene: &Scene) -> Option<Edit> {
    let anchor = simple::pick_object(rng, scene, &[])?;
    let relation = *rng.pick(&Relation::ALL);
    let hits: Vec<&Object> =
        scene.objects.iter().filter(|o| o.id != anchor.id && relation.holds(centre(o), centre(&anchor))).collect();
    let [o] = hits.as_slice() else { return None };
    let recolour = rng.chance(1, 2).then(|| simple::other_colour(rng, o.colour));
    Some(Edit::Relational { id: o.id, relation, anchor: anchor.id, recolour })
}

/// Two simple edits; the second is drawn on the scene the first leaves, on other objects, and is not a second
/// background change.
pub fn two_step(rng: &mut Rng, scene: &Scene) -> Option<Edit> {
    let first = simple::generate(rng, scene, &[])?;
    let mid = first.apply(scene, &mut Default::default());
    let touched = touched_ids(&first);
    let second = simple::generate(rng, &mid, &touched)?;
    if matches!((&first, &second), (Edit::Background { .. }, Edit::Background { .. })) {
        return None;
    }
    Some(Edit::TwoStep { steps: vec![first, second] })
}

/// The ids a simple edit changes or creates.
fn touched_ids(edit: &Edit) -> Vec<u32> {
    match edit {
        Edit::Recolour { id, .. } | Edit::Remove { id } | Edit::Resize { id, .. } => vec![*id],
        Edit::Add { object, .. } => vec![object.id],
        _ => Vec::new(),
    }
}

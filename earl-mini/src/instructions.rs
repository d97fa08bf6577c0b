//! Instruction texts. Every edit kind has several templates (paraphrases) for training and others held out for the
//! `ood-test` split. Objects are named so that the name picks exactly one object of the scene: colour and shape
//! when that is unique, else with the size, else with a position word between two look-alikes; when no such name
//! exists the edit is not used (`None`), so an instruction is never ambiguous.
use crate::edits::Edit;
use crate::rng::Rng;
use crate::scene::{Object, Scene};

/// Training and held-out templates of one edit kind.
struct Pool {
    train: &'static [&'static str],
    ood: &'static [&'static str],
}

fn p(train: &'static [&'static str], ood: &'static [&'static str]) -> Pool {
    Pool { train, ood }
}

fn pool(kind: &str) -> Pool {
    match kind {
        "recolour" => p(
            &[
                "Change the colour of {obj} to {colour}.",
                "Make {obj} {colour}.",
                "Recolour {obj} {colour}.",
                "Paint {obj} {colour}.",
                "Turn {obj} {colour}.",
            ],
            &["Give {obj} a {colour} colour instead.", "{obj} should be {colour} now."],
        ),
        "remove" => p(
            &[
                "Remove {obj}.",
                "Delete {obj}.",
                "Take away {obj}.",
                "Erase {obj} from the picture.",
                "Get rid of {obj}.",
            ],
            &["Make {obj} disappear.", "Leave {obj} out of the image."],
        ),
        "add" => p(
            &[
                "Add {a_obj} in the {cell}.",
                "Put {a_obj} in the {cell} of the image.",
                "Place {a_obj} in the {cell}.",
                "Draw {a_obj} in the {cell}.",
            ],
            &["Insert {a_obj} into the {cell}.", "The {cell} should get {a_obj}."],
        ),
        "background" => p(
            &[
                "Change the background to {bg}.",
                "Make the background {bg}.",
                "Set the background colour to {bg}.",
                "Repaint the background {bg}.",
            ],
            &["Swap the backdrop for a {bg} one.", "The background should be {bg}."],
        ),
        "resize" => p(
            &["Make {obj} {size}.", "Resize {obj} to {size}.", "Change the size of {obj} to {size}."],
            &["{obj} ought to be {size}."],
        ),
        "resize_relative" => {
            p(&["Make {obj} {cmp}.", "Make {obj} one size {cmp}."], &["Scale {obj} so it is a little {cmp}."])
        }
        "move" => p(
            &[
                "Move {obj} {rel} {anchor}.",
                "Put {obj} {rel} {anchor}.",
                "Place {obj} {rel} {anchor}.",
                "Shift {obj} so that it is {rel} {anchor}.",
            ],
            &["Relocate {obj} {rel} {anchor}.", "{obj} belongs {rel} {anchor}; move it there."],
        ),
        "swap_colours" => p(
            &[
                "Swap the colours of {a} and {b}.",
                "Exchange the colours of {a} and {b}.",
                "Give {a} the colour of {b} and vice versa.",
                "Switch the colours of {a} and {b}.",
            ],
            &["Trade colours between {a} and {b}.", "{a} and {b} should swap colours."],
        ),
        "remove_colour" => p(
            &[
                "Remove every {colour} object.",
                "Delete all the {colour} shapes.",
                "Take away all {colour} objects.",
                "Erase everything that is {colour}.",
            ],
            &["Get rid of anything {colour}.", "No {colour} shapes should remain."],
        ),
        "add_count" => p(
            &[
                "Add a {shape} so that there are {n} {shapes}.",
                "Add one more {shape} so the image has {n} {shapes}.",
                "Draw another {shape}; there should be {n} {shapes}.",
                "Put in an extra {shape} to make {n} {shapes}.",
            ],
            &["Make it {n} {shapes} by adding one.", "There should be {n} {shapes}: add one."],
        ),
        "relational_recolour" => p(
            &[
                "Recolour the shape {rel} {anchor} {colour}.",
                "Change the colour of the object {rel} {anchor} to {colour}.",
                "Make the object {rel} {anchor} {colour}.",
                "Paint the shape {rel} {anchor} {colour}.",
            ],
            &["The shape {rel} {anchor} should become {colour}."],
        ),
        "relational_remove" => p(
            &[
                "Remove the shape {rel} {anchor}.",
                "Delete the object {rel} {anchor}.",
                "Take away the shape {rel} {anchor}.",
            ],
            &["Make the object {rel} {anchor} vanish."],
        ),
        _ => p(
            &[
                "{first}, then {second}.",
                "First {first}, then {second}.",
                "{first} and {second}.",
                "{first}; after that, {second}.",
            ],
            &["Do two things: {first}, and {second}.", "{first}. Next, {second}."],
        ),
    }
}

/// Every template, by pool (`ood` false: the training pool), for documentation and tests.
pub fn templates(kind: &str, ood: bool) -> &'static [&'static str] {
    let p = pool(kind);
    if ood {
        p.ood
    } else {
        p.train
    }
}

/// A name for object `id` that no other object of `scene` fits.
pub fn refer(scene: &Scene, id: u32) -> Option<String> {
    let o = scene.get(id)?;
    let same: Vec<&Object> = scene.objects.iter().filter(|p| p.shape == o.shape && p.colour == o.colour).collect();
    let base = format!("{} {}", o.colour.name(), o.shape.name());
    if same.len() == 1 {
        return Some(format!("the {base}"));
    }
    if same.iter().filter(|p| p.size == o.size).count() == 1 {
        return Some(format!("the {} {base}", o.size.name()));
    }
    let [a, b] = same.as_slice() else { return None };
    let other = if a.id == id { b } else { a };
    if (o.x - other.x).abs() >= 12 {
        return Some(format!("the {base} on the {}", if o.x < other.x { "left" } else { "right" }));
    }
    if (o.y - other.y).abs() >= 12 {
        return Some(format!("the {} {base}", if o.y < other.y { "upper" } else { "lower" }));
    }
    None
}

fn number(n: u32) -> &'static str {
    ["zero", "one", "two", "three", "four", "five"].get(n as usize).copied().unwrap_or("several")
}

/// The instruction for `edit` on `scene`, from the training templates or (`ood`) the held-out ones.
pub fn instruction(rng: &mut Rng, edit: &Edit, scene: &Scene, ood: bool) -> Option<String> {
    let text = body(rng, edit, scene, ood, false)?;
    Some(capitalise(&text))
}

fn fill(rng: &mut Rng, kind: &str, ood: bool, in_sequence: bool, vars: &[(&str, String)]) -> String {
    let all = templates(kind, ood);
    // Inside a two-step instruction a step is a clause: its full stop goes.
    let mut t = rng.pick(all).to_string();
    for (k, v) in vars {
        t = t.replace(&format!("{{{k}}}"), v);
    }
    if in_sequence {
        t = t.trim_end_matches('.').to_string();
    }
    t
}

fn body(rng: &mut Rng, edit: &Edit, scene: &Scene, ood: bool, seq: bool) -> Option<String> {
    let r = |id| refer(scene, id);
    Some(match edit {
        Edit::Recolour { id, to } => fill(rng, "recolour", ood, seq, &[("obj", r(*id)?), ("colour", to.name().into())]),
        Edit::Remove { id } => fill(rng, "remove", ood, seq, &[("obj", r(*id)?)]),
        Edit::Add { object, cell, size_given } => {
            let size = if *size_given { format!("{} ", object.size.name()) } else { String::new() };
            let a_obj = format!("a {size}{} {}", object.colour.name(), object.shape.name());
            fill(rng, "add", ood, seq, &[("a_obj", a_obj), ("cell", cell.phrase().into())])
        }
        Edit::Background { to } => fill(rng, "background", ood, seq, &[("bg", to.name().into())]),
        Edit::Resize { id, to } => {
            let from = scene.get(*id)?.size;
            let step = (*to as i32 - from as i32).abs() == 1;
            if step && rng.chance(1, 2) {
                let cmp = if *to > from { "bigger" } else { "smaller" };
                fill(rng, "resize_relative", ood, seq, &[("obj", r(*id)?), ("cmp", cmp.into())])
            } else {
                fill(rng, "resize", ood, seq, &[("obj", r(*id)?), ("size", to.name().into())])
            }
        }
        Edit::Move { id, relation, anchor, .. } => {
            fill(rng, "move", ood, seq, &[("obj", r(*id)?), ("rel", relation.phrase().into()), ("anchor", r(*anchor)?)])
        }
        Edit::SwapColours { a, b } => fill(rng, "swap_colours", ood, seq, &[("a", r(*a)?), ("b", r(*b)?)]),
        Edit::RemoveColour { colour } => fill(rng, "remove_colour", ood, seq, &[("colour", colour.name().into())]),
        Edit::AddCount { object, count } => fill(
            rng,
            "add_count",
            ood,
            seq,
            &[
                ("shape", object.shape.name().into()),
                ("shapes", object.shape.plural().into()),
                ("n", number(*count).into()),
            ],
        ),
        Edit::Relational { relation, anchor, recolour, .. } => {
            let vars = vec![("rel", relation.phrase().to_string()), ("anchor", r(*anchor)?)];
            match recolour {
                Some(c) => {
                    fill(rng, "relational_recolour", ood, seq, &[vars, vec![("colour", c.name().into())]].concat())
                }
                None => fill(rng, "relational_remove", ood, seq, &vars),
            }
        }
        Edit::TwoStep { steps } => {
            let [first, second] = steps.as_slice() else { return None };
            let a = body(rng, first, scene, ood, true)?;
            let mid = first.apply(scene, &mut Default::default());
            let b = body(rng, second, &mid, ood, true)?;
            fill(rng, "two_step", ood, false, &[("first", lower_first(&a)), ("second", lower_first(&b))])
        }
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{Background, Colour, Shape, Size};

    fn o(id: u32, colour: Colour, size: Size, x: i32, y: i32) -> Object {
        Object { id, shape: Shape::Circle, colour, size, x, y }
    }

    #[test]
    fn names_pick_one_object_or_none() {
        let s = Scene {
            background: Background::Gray,
            objects: vec![
                o(0, Colour::Red, Size::Small, 20, 20),
                o(1, Colour::Red, Size::Small, 90, 24),
                o(2, Colour::Blue, Size::Small, 20, 90),
                o(3, Colour::Blue, Size::Large, 90, 90),
            ],
        };
        assert_eq!(refer(&s, 0).unwrap(), "the red circle on the left");
        assert_eq!(refer(&s, 1).unwrap(), "the red circle on the right");
        assert_eq!(refer(&s, 3).unwrap(), "the large blue circle");
        let mut three = s.clone();
        three.objects.push(o(4, Colour::Red, Size::Small, 55, 60));
        assert_eq!(refer(&three, 0), None);
    }

    #[test]
    fn training_and_held_out_templates_are_disjoint() {
        for k in ["recolour", "remove", "add", "background", "resize", "resize_relative", "move", "swap_colours"]
            .into_iter()
            .chain(["remove_colour", "add_count", "relational_recolour", "relational_remove", "two_step"])
        {
            let (train, ood) = (templates(k, false), templates(k, true));
            assert!(train.len() >= 2 && !ood.is_empty(), "{k}");
            assert!(train.iter().all(|t| !ood.contains(t)), "{k}");
        }
    }
}

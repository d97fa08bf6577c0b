//! The chain-of-thought text of a sample, in the shape of EARL's reasoning data: a grounding of the source image
//! (every object with its bounding box `[x1, y1, x2, y2]` in pixels of the image, the format whose boxes
//! `earl_core::data::cot` rescales) under the key `source_image_grounding_information`, then the plan under
//! `conditioning_information` (the two CoT keys EARL's benchmarks read). The plan is derived from the difference
//! between source and target scenes, so it is exact for every edit kind, two-step edits included.
use std::collections::BTreeMap;

use crate::edits::Task;
use crate::render::pixel_box;
use crate::scene::{Object, Scene};

/// The key of the grounding paragraph.
pub const GROUNDING_KEY: &str = "source_image_grounding_information";
/// The key of the plan paragraph.
pub const PLAN_KEY: &str = "conditioning_information";

fn describe(o: &Object) -> String {
    format!("{} {} {}", o.size.name(), o.colour.name(), o.shape.name())
}

fn bbox(o: &Object) -> String {
    let [x1, y1, x2, y2] = pixel_box(o);
    format!("[{x1}, {y1}, {x2}, {y2}]")
}

/// The grounding paragraph of a scene.
pub fn grounding(scene: &Scene) -> String {
    let bg = scene.background.name();
    if scene.objects.is_empty() {
        return format!("The image has a {bg} background and no objects.");
    }
    let items: Vec<String> = scene.objects.iter().map(|o| format!("a {} at {}", describe(o), bbox(o))).collect();
    let n = scene.objects.len();
    format!("The image has a {bg} background and {n} object{}: {}.", if n == 1 { "" } else { "s" }, items.join(", "))
}

/// The plan paragraph: each change from source to target, then what stays.
pub fn plan(task: &Task) -> String {
    let (src, tgt) = (&task.source, &task.target);
    let mut steps = Vec::new();
    if src.background != tgt.background {
        steps.push(format!("change the background from {} to {}", src.background.name(), tgt.background.name()));
    }
    let mut kept = 0;
    for s in &src.objects {
        match tgt.get(s.id) {
            None => steps.push(format!("remove the {} at {}", describe(s), bbox(s))),
            Some(t) if t == s => kept += 1,
            Some(t) => steps.push(change(s, t)),
        }
    }
    for t in tgt.objects.iter().filter(|t| src.get(t.id).is_none()) {
        steps.push(format!("add a {} at {}", describe(t), bbox(t)));
    }
    let rest = match (kept, src.background == tgt.background) {
        (0, true) => "keep the background unchanged".to_string(),
        (0, false) => "nothing else is left to keep".to_string(),
        (k, bg) => format!(
            "keep the other {k} object{}{} unchanged",
            if k == 1 { "" } else { "s" },
            if bg { " and the background" } else { "" }
        ),
    };
    let mut text = steps.join("; ");
    text.push_str("; ");
    text.push_str(&rest);
    let mut c = text.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect::<String>() + ".").unwrap_or_default()
}

fn change(s: &Object, t: &Object) -> String {
    let (colour, size, moved) = (s.colour != t.colour, s.size != t.size, (s.x, s.y) != (t.x, t.y));
    match (colour, size, moved) {
        (true, false, false) => format!("paint the {} at {} {}", describe(s), bbox(s), t.colour.name()),
        (false, true, false) => {
            format!("resize the {} at {} to {}, filling {}", describe(s), bbox(s), t.size.name(), bbox(t))
        }
        (false, false, true) => format!("move the {} at {} to {}", describe(s), bbox(s), bbox(t)),
        _ => format!("turn the {} at {} into a {} at {}", describe(s), bbox(s), describe(t), bbox(t)),
    }
}

/// Both paragraphs, keyed as EARL's CoT dictionaries.
pub fn cot(task: &Task) -> BTreeMap<String, String> {
    BTreeMap::from([(GROUNDING_KEY.to_string(), grounding(&task.source)), (PLAN_KEY.to_string(), plan(task))])
}

/// The CoT as one text, `key: paragraph` per line in EARL's key order (grounding first), as its data loaders
/// join the keys.
pub fn text(task: &Task) -> String {
    format!("{GROUNDING_KEY}: {}\n{PLAN_KEY}: {}\n", grounding(&task.source), plan(task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edits::Edit;
    use crate::scene::{Background, Colour, Shape, Size};

    #[test]
    fn grounding_lists_boxes_and_the_plan_names_the_change() {
        let src = Scene {
            background: Background::Teal,
            objects: vec![
                Object { id: 0, shape: Shape::Square, colour: Colour::Red, size: Size::Small, x: 20, y: 20 },
                Object { id: 1, shape: Shape::Circle, colour: Colour::Blue, size: Size::Large, x: 90, y: 90 },
            ],
        };
        let task = Edit::Recolour { id: 0, to: Colour::Green }.task(&src);
        assert_eq!(
            grounding(&src),
            "The image has a teal background and 2 objects: a small red square at [12, 12, 28, 28], \
             a large blue circle at [72, 72, 108, 108]."
        );
        assert_eq!(
            plan(&task),
            "Paint the small red square at [12, 12, 28, 28] green; keep the other 1 object and the background unchanged."
        );
        let t = text(&task);
        assert!(
            t.starts_with("source_image_grounding_information: The image")
                && t.contains("\nconditioning_information: Paint")
        );
        // EARL's loader rescales these boxes: the format must be the one its pattern reads.
        let scaled = earl_core::data::cot::rescale_boxes(&t, (128.0, 128.0), (64.0, 64.0));
        assert!(scaled.contains("[6, 6, 14, 14]"), "{scaled}");
    }
}

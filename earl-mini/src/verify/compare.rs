//! Semantic consistency: the observed objects against the task. The target's objects fall into three groups —
//! kept (identical to the source), edited (changed or new) and removed (in the source only) — and the background
//! either changes or stays. Observed objects are assigned to target objects greedily, kept ones first (the most
//! constrained), each to the nearest unassigned observation that fits: same shape, same colour and size unless the
//! instruction leaves them open, and a position within [`POS_TOL`] or inside the place the instruction names.
//! `edit_success` is the share of edit requirements met (each edited object found, each removed object gone, the
//! new background); `overediting` the share of what must stay that stayed (kept objects, the old background),
//! where every unexplained extra object counts as one more failure. An observation that is merely the source
//! version of an edited or removed object is the edit not done, counted in `edit_success` only.
use crate::edits::{Freedom, Place, Task};
use crate::scene::{Background, Colour, Object, Shape, Size};

/// How far (in pixels) an observed centre may be from the position the target demands.
pub const POS_TOL: f64 = 6.0;

/// An object as observed in an image (or read off a scene graph).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub shape: Shape,
    pub colour: Colour,
    pub size: Size,
    pub cx: f64,
    pub cy: f64,
}

impl Seen {
    /// How the verifier sees a perfectly rendered object.
    pub fn of(o: &Object) -> Self {
        Self { shape: o.shape, colour: o.colour, size: o.size, cx: f64::from(o.x), cy: f64::from(o.y) }
    }

    fn dist(&self, o: &Object) -> f64 {
        ((self.cx - f64::from(o.x)).powi(2) + (self.cy - f64::from(o.y)).powi(2)).sqrt()
    }

    /// Whether this is `o` as it is, at its position.
    fn is(&self, o: &Object) -> bool {
        self.shape == o.shape && self.colour == o.colour && self.size == o.size && self.dist(o) <= POS_TOL
    }
}

/// The two SC sub-scores, 0–10.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Consistency {
    pub edit_success: f64,
    pub overediting: f64,
}

fn fits(task: &Task, t: &Object, f: &Freedom, s: &Seen) -> bool {
    if s.shape != t.shape || (!f.any_colour && s.colour != t.colour) || (!f.any_size && s.size != t.size) {
        return false;
    }
    match f.place {
        Place::Exact => s.dist(t) <= POS_TOL,
        Place::Cell { cell } => {
            let [x1, y1, x2, y2] = cell.rect().map(f64::from);
            s.cx >= x1 && s.cx < x2 && s.cy >= y1 && s.cy < y2
        }
        Place::Of { relation, anchor } => {
            task.target.get(anchor).is_some_and(|a| relation.holds((s.cx, s.cy), (f64::from(a.x), f64::from(a.y))))
        }
        Place::Anywhere => true,
    }
}

/// Scores the observation (`seen` objects on `background`) against `task`.
pub fn consistency(task: &Task, seen: &[Seen], background: Option<Background>) -> Consistency {
    let (src, tgt) = (&task.source, &task.target);
    let free = |id: u32| task.freedom.get(&id).copied().unwrap_or_default();
    let kept: Vec<&Object> =
        tgt.objects.iter().filter(|t| src.get(t.id) == Some(*t) && !task.freedom.contains_key(&t.id)).collect();
    let edited: Vec<&Object> = tgt.objects.iter().filter(|t| !kept.iter().any(|k| k.id == t.id)).collect();
    let removed: Vec<&Object> = src.objects.iter().filter(|s| tgt.get(s.id).is_none()).collect();
    // Exact demands before loose ones, so a loose demand ("add a triangle anywhere") cannot take a kept object.
    let mut order: Vec<&Object> = kept.clone();
    let (mut exact, mut loose): (Vec<&Object>, Vec<&Object>) =
        edited.iter().copied().partition(|t| free(t.id) == Freedom::default());
    order.append(&mut exact);
    order.append(&mut loose);
    let mut used = vec![false; seen.len()];
    let mut found = std::collections::BTreeSet::new();
    for t in order {
        let f = free(t.id);
        let best = (0..seen.len())
            .filter(|&i| !used[i] && fits(task, t, &f, &seen[i]))
            .min_by(|&a, &b| seen[a].dist(t).total_cmp(&seen[b].dist(t)));
        if let Some(i) = best {
            used[i] = true;
            found.insert(t.id);
        }
    }
    let mut leftover = vec![false; seen.len()];
    for (i, s) in seen.iter().enumerate() {
        leftover[i] = !used[i] && src.objects.iter().filter(|o| !kept.iter().any(|k| k.id == o.id)).any(|o| s.is(o));
    }
    let bg_changed = src.background != tgt.background;
    let bg_ok = background == Some(tgt.background);
    let removed_gone = removed.iter().filter(|r| !(0..seen.len()).any(|i| !used[i] && seen[i].is(r))).count();
    let edit_done =
        edited.iter().filter(|t| found.contains(&t.id)).count() + removed_gone + usize::from(bg_changed && bg_ok);
    let edit_items = edited.len() + removed.len() + usize::from(bg_changed);
    let extras = (0..seen.len()).filter(|&i| !used[i] && !leftover[i]).count();
    let stayed = kept.iter().filter(|t| found.contains(&t.id)).count() + usize::from(!bg_changed && bg_ok);
    let must_stay = kept.len() + usize::from(!bg_changed);
    let ratio = |ok: usize, of: usize| if of == 0 { 10.0 } else { 10.0 * ok as f64 / of as f64 };
    Consistency { edit_success: ratio(edit_done, edit_items), overediting: ratio(stayed, must_stay + extras) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edits::Edit;
    use crate::scene::Scene;

    fn src() -> Scene {
        let o = |id, shape, colour, x| Object { id, shape, colour, size: Size::Medium, x, y: 64 };
        Scene {
            background: Background::Gray,
            objects: vec![o(0, Shape::Circle, Colour::Red, 20), o(1, Shape::Square, Colour::Blue, 100)],
        }
    }

    fn seen(s: &Scene) -> Vec<Seen> {
        s.objects.iter().map(Seen::of).collect()
    }

    #[test]
    fn target_scores_ten_and_copy_zero() {
        let task = Edit::Recolour { id: 0, to: Colour::Green }.task(&src());
        let t = consistency(&task, &seen(&task.target), Some(Background::Gray));
        assert_eq!((t.edit_success, t.overediting), (10.0, 10.0));
        let c = consistency(&task, &seen(&task.source), Some(Background::Gray));
        assert_eq!((c.edit_success, c.overediting), (0.0, 10.0));
    }

    #[test]
    fn editing_the_wrong_object_fails_both() {
        let task = Edit::Recolour { id: 0, to: Colour::Green }.task(&src());
        let wrong = Edit::Recolour { id: 1, to: Colour::Green }.task(&src()).target;
        let c = consistency(&task, &seen(&wrong), Some(Background::Gray));
        assert_eq!(c.edit_success, 0.0);
        assert!(c.overediting < 4.0, "{c:?}");
    }

    #[test]
    fn a_loose_add_accepts_any_colour_but_not_a_kept_object() {
        let mut s = src();
        s.objects[1].shape = Shape::Circle;
        let obj = Object { id: 2, shape: Shape::Circle, colour: Colour::Yellow, size: Size::Small, x: 64, y: 20 };
        let task = Edit::AddCount { object: obj, count: 3 }.task(&s);
        let mut other = seen(&task.target);
        other[2].colour = Colour::Black;
        other[2].size = Size::Large;
        assert_eq!(consistency(&task, &other, Some(Background::Gray)).edit_success, 10.0);
        assert_eq!(consistency(&task, &seen(&s), Some(Background::Gray)).edit_success, 0.0);
    }
}

//! The grid constraint as device tensors: the per-row state of [`RowConstraint`] (grid size and the offset of the
//! next token from `img`) held in [B] tensors, the allowed-id mask computed from it with tensor ops, and the state
//! update from the sampled ids, so that a captured decode step applies the constraint with no host round trip. The
//! rules are [`RowConstraint::allowed`]'s, written as `where` chains over the batch; the CPU tests check both agree
//! on every state a grid passes through.
use tch::{Device, Kind, Tensor};

use crate::generate::constraint::{ImageTokens, RowConstraint};

/// Per-row grid-constraint state on a device. Unconstrained rows allow the whole vocabulary.
#[derive(Debug)]
pub(crate) struct DeviceGrid {
    /// [B] i64: offset of the next token from `img` (1 right after it), or −1 before `img`.
    pub(crate) offset: Tensor,
    /// [B] i64: grid rows (1 for unconstrained rows, whose value is unused).
    pub(crate) height: Tensor,
    /// [B] i64: codes per grid row (1 for unconstrained rows).
    pub(crate) width: Tensor,
    /// [B] bool: the row has a grid.
    pub(crate) constrained: Tensor,
}

/// The host values of one row's state: (offset, height, width, constrained).
pub(crate) fn row_state(row: Option<&RowConstraint>) -> [i64; 4] {
    match row {
        Some(r) => [r.next_offset().unwrap_or(-1), r.height(), r.width(), 1],
        None => [-1, 1, 1, 0],
    }
}

impl DeviceGrid {
    /// Zeroed state for `batch` rows (every row unconstrained), for static buffers filled later with [`Self::load`].
    pub(crate) fn zeros(batch: i64, device: Device) -> DeviceGrid {
        let z = || Tensor::zeros([batch], (Kind::Int64, device));
        DeviceGrid {
            offset: z(),
            height: z() + 1,
            width: z() + 1,
            constrained: Tensor::zeros([batch], (Kind::Bool, device)),
        }
    }

    /// The state of `rows` (one entry per batch row) on `device`.
    #[cfg(test)]
    pub(crate) fn from_rows(rows: &[Option<&RowConstraint>], device: Device) -> DeviceGrid {
        let g = DeviceGrid::zeros(rows.len() as i64, device);
        g.load(rows);
        g
    }

    /// Overwrites the state in place (the tensors keep their addresses, as a captured graph needs) with `rows`,
    /// which must have one entry per batch row.
    pub(crate) fn load(&self, rows: &[Option<&RowConstraint>]) {
        let host: Vec<i64> = rows.iter().flat_map(|r| row_state(*r)).collect();
        let t = Tensor::from_slice(&host).view([-1, 4]).to_device(self.offset.device());
        self.offset.shallow_clone().copy_(&t.select(1, 0));
        self.height.shallow_clone().copy_(&t.select(1, 1));
        self.width.shallow_clone().copy_(&t.select(1, 2));
        self.constrained.shallow_clone().copy_(&t.select(1, 3).ne(0));
    }

    /// Allowed id range [lo, hi) of every row, each [B] i64, by [`RowConstraint::allowed`]'s rules.
    pub(crate) fn bounds(&self, t: &ImageTokens, vocab: i64) -> (Tensor, Tensor) {
        let o = &self.offset;
        let w1 = &self.width + 1;
        let end = &w1 * &self.height; // (w + 1) · h
        let full = |x: i64| o.full_like(x);
        // Inside the grid: visual codes, unless one of the framing positions (mutually exclusive) applies.
        let mut lo = full(t.first_visual);
        let mut hi = full(t.first_visual + t.num_visual);
        let single = |lo: &mut Tensor, hi: &mut Tensor, cond: &Tensor, id: i64| {
            *lo = lo.where_self(&cond.logical_not(), &o.full_like(id));
            *hi = hi.where_self(&cond.logical_not(), &o.full_like(id + 1));
        };
        let eol = o.remainder_tensor(&w1).eq(0).logical_and(&o.le_tensor(&end));
        single(&mut lo, &mut hi, &eol, t.eol);
        single(&mut lo, &mut hi, &o.eq_tensor(&(&end + 1)), t.eof);
        single(&mut lo, &mut hi, &o.eq_tensor(&(&end + 2)), t.eoi);
        single(&mut lo, &mut hi, &o.eq_tensor(&(&end + 3)), t.eos);
        single(&mut lo, &mut hi, &o.gt_tensor(&(&end + 3)), t.pad);
        // Before `img`: text ids only; unconstrained rows: everything.
        let before = o.lt(0);
        let lo = lo.where_self(&before.logical_not(), &full(0));
        let hi = hi.where_self(&before.logical_not(), &full(t.first_visual));
        let lo = lo.where_self(&self.constrained, &full(0));
        let hi = hi.where_self(&self.constrained, &full(vocab));
        (lo, hi)
    }

    /// Boolean mask [B, V] of allowed ids (what [`crate::generate::GridConstraint::mask`] builds from host state).
    pub(crate) fn mask(&self, t: &ImageTokens, vocab: i64) -> Tensor {
        let (lo, hi) = self.bounds(t, vocab);
        let ids = Tensor::arange(vocab, (Kind::Int64, self.offset.device())).unsqueeze(0); // [1, V]
        ids.ge_tensor(&lo.unsqueeze(1)).logical_and(&ids.lt_tensor(&hi.unsqueeze(1)))
    }

    /// Feeds the ids [B] just sampled, in place ([`RowConstraint::push`]): inside a grid the offset advances; before
    /// it, `img` starts the grid (offset 1 for the next token).
    pub(crate) fn push_(&self, ids: &Tensor, t: &ImageTokens) {
        let o = &self.offset;
        let started = ids.eq(t.img).where_self(&o.lt(0), &o.ge(0)); // seen before, or `img` now
        let next = (o + 1).where_self(&o.ge(0), &o.full_like(1));
        let next = next.where_self(&started, &o.full_like(-1));
        self.offset.shallow_clone().copy_(&next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::constraint::{Allowed, GridConstraint};

    const T: ImageTokens =
        ImageTokens { img: 10, eol: 11, eof: 12, eoi: 13, eos: 14, pad: 0, first_visual: 20, num_visual: 5 };
    const V: i64 = 30;

    fn host_bounds(rows: &[Option<RowConstraint>]) -> Vec<(i64, i64)> {
        rows.iter()
            .map(|r| r.as_ref().map(|r| r.allowed(&T)).unwrap_or(Allowed { lo: 0, hi: V }))
            .map(|a| (a.lo, a.hi))
            .collect()
    }

    fn device_bounds(g: &DeviceGrid) -> Vec<(i64, i64)> {
        let (lo, hi) = g.bounds(&T, V);
        let lo = Vec::<i64>::try_from(lo).unwrap();
        let hi = Vec::<i64>::try_from(hi).unwrap();
        lo.into_iter().zip(hi).collect()
    }

    /// Feeds every row the same token stream on the host and on the device (state kept on the device throughout,
    /// loaded once) and checks bounds and masks agree before every token.
    fn agree(mut rows: Vec<Option<RowConstraint>>, tokens: &[Vec<i64>]) {
        let g = DeviceGrid::from_rows(&rows.iter().map(|r| r.as_ref()).collect::<Vec<_>>(), Device::Cpu);
        for (step, ids) in tokens.iter().enumerate() {
            assert_eq!(device_bounds(&g), host_bounds(&rows), "bounds differ before step {step}");
            let host = GridConstraint { tokens: T, rows: rows.clone() }.mask(V, Device::Cpu);
            assert!(g.mask(&T, V).equal(&host), "masks differ before step {step}");
            g.push_(&Tensor::from_slice(ids), &T);
            for (r, &id) in rows.iter_mut().zip(ids) {
                if let Some(r) = r {
                    r.push(id, &T);
                }
            }
        }
    }

    fn grid(h: i64, w: i64, prefix: &[i64]) -> Option<RowConstraint> {
        let mut r = RowConstraint::new(h, w).unwrap();
        for &p in prefix {
            r.push(p, &T);
        }
        Some(r)
    }

    #[test]
    fn device_state_follows_the_host_rows_through_whole_grids() {
        // Rows of several sizes, before and after `img`, plus an unconstrained row; each follows its own stream,
        // the first allowed id (which walks a grid to its end and beyond into padding) or text then `img`.
        let mut rows = vec![grid(2, 3, &[10]), grid(1, 1, &[5, 10]), grid(3, 2, &[]), None, grid(2, 2, &[7])];
        let mut streams = vec![Vec::new(); rows.len()];
        for step in 0..24 {
            let mut ids = Vec::new();
            for (i, r) in rows.iter_mut().enumerate() {
                let id = match (i, r.as_ref()) {
                    // Row 2 writes text for three steps, then `img`; row 4 starts its grid with `img` at once.
                    (2, _) if step < 3 => 4,
                    (2, _) if step == 3 => T.img,
                    (4, _) if step == 0 => T.img,
                    (_, Some(r)) => {
                        let a = r.allowed(&T);
                        a.lo + step as i64 % (a.hi - a.lo)
                    }
                    (_, None) => (step * 7 % V as usize) as i64,
                };
                if let Some(r) = r {
                    r.push(id, &T);
                }
                ids.push(id);
            }
            for (s, &id) in streams.iter_mut().zip(&ids) {
                s.push(id);
            }
        }
        rows = vec![grid(2, 3, &[10]), grid(1, 1, &[5, 10]), grid(3, 2, &[]), None, grid(2, 2, &[7])];
        let per_step: Vec<Vec<i64>> = (0..24).map(|s| streams.iter().map(|r| r[s]).collect()).collect();
        agree(rows, &per_step);
    }

    #[test]
    fn img_only_starts_a_grid_once_and_text_before_it_is_free() {
        // Text ids (including eol/eof, which mean nothing before `img`), then `img` twice: only the first counts.
        let seq = [3, 11, 12, 10, 10, 20, 11, 20, 21, 11, 12, 13, 14, 0, 0];
        let rows = vec![grid(2, 1, &[]), grid(1, 3, &[]), grid(4, 4, &[10, 20])];
        agree(rows, &seq.iter().map(|&t| vec![t, t, t]).collect::<Vec<_>>());
    }

    #[test]
    fn the_state_of_prefilled_rows_matches_the_host() {
        let rows = [grid(2, 2, &[10, 20, 21]), grid(1, 2, &[1, 2]), None];
        let g = DeviceGrid::from_rows(&rows.iter().map(|r| r.as_ref()).collect::<Vec<_>>(), Device::Cpu);
        assert_eq!(Vec::<i64>::try_from(&g.offset).unwrap(), vec![3, -1, -1]);
        assert_eq!(device_bounds(&g), vec![(11, 12), (0, 20), (0, V)]);
        assert_eq!(row_state(None), [-1, 1, 1, 0]);
    }
}

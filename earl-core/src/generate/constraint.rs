//! The grid constraint of EARL (the "free-form" variant of Emu3's prefix-constrained logits helper): until the
//! response holds the `img` token only text tokens (ids below the first visual token) may be produced; once it does,
//! at offset o from `img` (o = 1 for the token right after it) the only allowed token is `eol` when o % (w+1) == 0,
//! `eof` at o == (w+1)·h + 1, `eoi` at +2, `eos` at +3, `pad` beyond, and a visual token otherwise — so a response
//! that stops is always an h×w grid of the source image's size. Applied to a whole batch on the device as one
//! boolean mask built from per-row id ranges, never as a host loop over the vocabulary.
//!
//! Deviation, documented: the reference looks for `img` in the tokens the model generated; we look in the whole
//! response including the assistant prefill. The built-in prefills (E, E-legacy, CE, mixed) contain no `img`, so the
//! behaviour is identical for them; a literal prefill that contains `img` starts the grid right away.
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Ids of the tokens that frame an image in the Emu3 vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageTokens {
    /// [`SpecialIds::img`](crate::tokenizer::SpecialIds::img): the grid begins after it.
    pub img: i64,
    /// [`SpecialIds::eol`](crate::tokenizer::SpecialIds::eol): ends each grid row.
    pub eol: i64,
    /// [`SpecialIds::eof`](crate::tokenizer::SpecialIds::eof): follows the last row's `eol`.
    pub eof: i64,
    /// [`SpecialIds::eoi`](crate::tokenizer::SpecialIds::eoi): follows `eof`.
    pub eoi: i64,
    /// [`SpecialIds::eos`](crate::tokenizer::SpecialIds::eos): ends the response, after `eoi`.
    pub eos: i64,
    /// [`SpecialIds::pad`](crate::tokenizer::SpecialIds::pad): the only token allowed once a grid is complete.
    pub pad: i64,
    /// First visual-code id; codes are `first_visual .. first_visual + num_visual`.
    pub first_visual: i64,
    /// Number of visual codes (the VQ codebook size).
    pub num_visual: i64,
}

impl ImageTokens {
    /// The framing ids of a tokenizer's vocabulary (visual ids are its last `codebook_size` ids).
    pub fn from_tokenizer(tok: &crate::tokenizer::Emu3Tokenizer) -> Self {
        let s = tok.special();
        ImageTokens {
            img: s.img as i64,
            eol: s.eol as i64,
            eof: s.eof as i64,
            eoi: s.eoi as i64,
            eos: s.eos as i64,
            pad: s.pad as i64,
            first_visual: tok.first_visual_id() as i64,
            num_visual: tok.codebook_size() as i64,
        }
    }
}

/// What one row may produce next: ids in `lo..hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// First allowed id.
    pub lo: i64,
    /// One past the last allowed id.
    pub hi: i64,
}

/// Per-row state of the constraint. Fields are private: the grid size is checked positive once in
/// [`RowConstraint::new`] (a zero width would divide by zero in [`RowConstraint::allowed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowConstraint {
    /// Grid rows (codes) the image must have; positive.
    height: i64,
    /// Grid columns (codes) per row, `eol` excluded; positive.
    width: i64,
    /// Response length when `img` was seen (its index in the response), if it was.
    img_at: Option<usize>,
    len: usize,
}

impl RowConstraint {
    /// A row that has seen no token yet and must produce a `height`×`width` grid; non-positive sizes are an error.
    ///
    /// ```
    /// use earl_core::generate::constraint::{Allowed, ImageTokens, RowConstraint};
    ///
    /// let t = ImageTokens { img: 10, eol: 11, eof: 12, eoi: 13, eos: 14, pad: 15, first_visual: 100, num_visual: 50 };
    /// let mut row = RowConstraint::new(1, 2)?;
    /// assert_eq!((row.height(), row.width()), (1, 2));
    /// // Before `img`: only text ids (below the first visual id).
    /// assert_eq!(row.allowed(&t), Allowed { lo: 0, hi: 100 });
    /// row.push(t.img, &t);
    /// // Then `width` visual codes, `eol`, and after the last row `eof`, `eoi`, `eos`, and `pad` for ever.
    /// let mut seen = Vec::new();
    /// for _ in 0..7 {
    ///     let a = row.allowed(&t);
    ///     seen.push((a.lo, a.hi));
    ///     row.push(a.lo, &t);
    /// }
    /// assert_eq!(seen, [(100, 150), (100, 150), (11, 12), (12, 13), (13, 14), (14, 15), (15, 16)]);
    /// assert!(RowConstraint::new(0, 2).is_err());
    /// # Ok::<(), earl_core::Error>(())
    /// ```
    pub fn new(height: i64, width: i64) -> Result<Self> {
        if height <= 0 || width <= 0 {
            return Err(Error::input(format!("grid size must be positive, got {height}×{width}")));
        }
        Ok(RowConstraint { height, width, img_at: None, len: 0 })
    }

    /// Grid rows the response must produce.
    pub fn height(&self) -> i64 {
        self.height
    }

    /// Codes per grid row, `eol` excluded.
    pub fn width(&self) -> i64 {
        self.width
    }

    /// Offset from `img` of the next token (1 right after it), or `None` before `img`: the per-row state the graph
    /// engine keeps on the device.
    pub(crate) fn next_offset(&self) -> Option<i64> {
        self.img_at.map(|at| (self.len - at) as i64)
    }

    /// Feeds one response token (prefill tokens included).
    pub fn push(&mut self, token: i64, t: &ImageTokens) {
        if self.img_at.is_none() && token == t.img {
            self.img_at = Some(self.len);
        }
        self.len += 1;
    }

    /// The ids allowed for the next token.
    pub fn allowed(&self, t: &ImageTokens) -> Allowed {
        let single = |id: i64| Allowed { lo: id, hi: id + 1 };
        let Some(at) = self.img_at else {
            return Allowed { lo: 0, hi: t.first_visual };
        };
        let o = (self.len - at) as i64; // offset of the next token from `img`
        let (h, w) = (self.height, self.width);
        let end = (w + 1) * h;
        if o % (w + 1) == 0 && o <= end {
            single(t.eol)
        } else if o == end + 1 {
            single(t.eof)
        } else if o == end + 2 {
            single(t.eoi)
        } else if o == end + 3 {
            single(t.eos)
        } else if o > end + 3 {
            single(t.pad)
        } else {
            Allowed { lo: t.first_visual, hi: t.first_visual + t.num_visual }
        }
    }
}

/// The constraint over a batch; rows without a grid are unconstrained.
#[derive(Debug, Clone)]
pub struct GridConstraint {
    /// The framing ids, shared by all rows.
    pub tokens: ImageTokens,
    /// One entry per batch row, in batch order; `None` leaves the row unconstrained.
    pub rows: Vec<Option<RowConstraint>>,
}

impl GridConstraint {
    /// Boolean mask [B, V] of allowed ids, built on `device`.
    pub fn mask(&self, vocab: i64, device: Device) -> Tensor {
        let mut bounds = Vec::with_capacity(self.rows.len() * 2);
        for r in &self.rows {
            let a = r.as_ref().map(|r| r.allowed(&self.tokens)).unwrap_or(Allowed { lo: 0, hi: vocab });
            bounds.extend([a.lo, a.hi]);
        }
        let b = Tensor::from_slice(&bounds).view([-1, 2]).to_device(device); // [B, 2]
        let ids = Tensor::arange(vocab, (Kind::Int64, device)).unsqueeze(0); // [1, V]
        ids.ge_tensor(&b.narrow(1, 0, 1)).logical_and(&ids.lt_tensor(&b.narrow(1, 1, 1)))
        // [B, V]
    }

    /// Applies the mask: disallowed logits become −∞.
    pub fn apply(&self, logits: &Tensor) -> Tensor {
        let s = logits.size();
        let mask = self.mask(s[1], logits.device());
        logits.masked_fill(&mask.logical_not(), f64::NEG_INFINITY)
    }

    /// Feeds the token batch row `row` just produced (a no-op for unconstrained or out-of-range rows).
    pub fn push(&mut self, row: usize, token: i64) {
        let t = self.tokens;
        if let Some(Some(r)) = self.rows.get_mut(row) {
            r.push(token, &t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ImageTokens =
        ImageTokens { img: 10, eol: 11, eof: 12, eoi: 13, eos: 14, pad: 0, first_visual: 20, num_visual: 5 };

    fn run(h: i64, w: i64, prefix: &[i64], n: usize) -> Vec<Allowed> {
        let mut r = RowConstraint::new(h, w).unwrap();
        for &p in prefix {
            r.push(p, &T);
        }
        let mut out = Vec::new();
        for _ in 0..n {
            let a = r.allowed(&T);
            out.push(a);
            r.push(a.lo, &T); // take the first allowed id
        }
        out
    }

    #[test]
    fn text_until_img_then_a_full_grid() {
        let text = Allowed { lo: 0, hi: 20 };
        let vis = Allowed { lo: 20, hi: 25 };
        let one = |id| Allowed { lo: id, hi: id + 1 };
        assert_eq!(run(2, 3, &[5, 6], 1), vec![text]);
        let seq = run(2, 3, &[5, 10], 13);
        let want = vec![vis, vis, vis, one(11), vis, vis, vis, one(11), one(12), one(13), one(14), one(0), one(0)];
        assert_eq!(seq, want);
    }

    #[test]
    fn only_the_first_img_counts() {
        // An img inside the grid can't happen (visual only), but a second img in text before the grid would not restart.
        let seq = run(1, 1, &[10], 4);
        assert_eq!(seq.iter().map(|a| a.lo).collect::<Vec<_>>(), vec![20, 11, 12, 13]);
    }

    #[test]
    fn batch_mask_matches_rows() {
        let mut rows = vec![Some(RowConstraint::new(1, 2).unwrap()), None, Some(RowConstraint::new(1, 2).unwrap())];
        rows[2].as_mut().unwrap().push(10, &T);
        let g = GridConstraint { tokens: T, rows };
        let m = g.mask(30, Device::Cpu);
        let row = |i: i64| Vec::<bool>::try_from(m.get(i)).unwrap();
        assert_eq!(row(0).iter().filter(|&&x| x).count(), 20);
        assert!(row(1).iter().all(|&x| x));
        assert_eq!(
            row(2).iter().enumerate().filter(|(_, &x)| x).map(|(i, _)| i).collect::<Vec<_>>(),
            vec![20, 21, 22, 23, 24]
        );
        assert!(RowConstraint::new(0, 2).is_err());
    }
}

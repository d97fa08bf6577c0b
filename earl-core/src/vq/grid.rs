//! The on-disk form of a code grid, `codes.json`: `{"height": h, "width": w, "codes": [[…], …]}` with `h` rows of
//! `w` codebook indices — what `earl encode` writes and `earl decode` reads. Parsing rejects ragged or empty grids
//! and non-integer codes with one-line errors; the codebook range is checked by the model on decoding.
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// One image's grid of codes, row-major.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrid {
    pub height: i64,
    pub width: i64,
    pub codes: Vec<Vec<i64>>,
}

impl CodeGrid {
    /// Parses and validates `codes.json` text; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let g: CodeGrid = serde_json::from_str(text)
            .map_err(|e| Error::input(format!("{origin}:{}:{}: not a code grid: {e}", e.line(), e.column())))?;
        g.validate().map_err(|m| Error::input(format!("{origin}: {m}")))?;
        Ok(g)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.height <= 0 || self.width <= 0 {
            return Err(format!("grid size {}×{} must be positive", self.height, self.width));
        }
        if self.codes.len() as i64 != self.height {
            return Err(format!("height is {} but the grid has {} rows", self.height, self.codes.len()));
        }
        if let Some((i, r)) = self.codes.iter().enumerate().find(|(_, r)| r.len() as i64 != self.width) {
            return Err(format!("ragged grid: row {i} has {} codes, width is {}", r.len(), self.width));
        }
        Ok(())
    }

    /// Codes [h, w] (any integer kind, any device) → grid.
    pub fn from_tensor(codes: &Tensor) -> Result<Self> {
        let s = codes.size();
        let [h, w] = s[..] else {
            return Err(Error::input(format!("a code grid is [h, w], got {s:?}")));
        };
        let flat = Vec::<i64>::try_from(codes.to_device(Device::Cpu).to_kind(Kind::Int64).flatten(0, -1))?;
        let codes = flat.chunks(w.max(1) as usize).map(<[i64]>::to_vec).collect();
        Ok(CodeGrid { height: h, width: w, codes })
    }

    /// Grid → codes [1, h, w] i64 on the CPU (a batch of one, ready for `Emu3VqModel::decode`).
    pub fn to_tensor(&self) -> Result<Tensor> {
        self.validate().map_err(Error::input)?;
        let flat: Vec<i64> = self.codes.iter().flatten().copied().collect();
        Ok(Tensor::from_slice(&flat).view([1, self.height, self.width]))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a grid of integers serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_round_trip_and_bad_grids_are_errors() {
        let t = Tensor::arange(6, (Kind::Int64, Device::Cpu)).view([2, 3]);
        let g = CodeGrid::from_tensor(&t).unwrap();
        assert_eq!(g.codes, vec![vec![0, 1, 2], vec![3, 4, 5]]);
        let back = CodeGrid::from_json(&g.to_json(), "x").unwrap();
        assert_eq!(back.to_tensor().unwrap(), t.unsqueeze(0));
        let cases = [
            (r#"{"height":2,"width":2,"codes":[[1,2],[3]]}"#, "ragged grid: row 1 has 1 codes, width is 2"),
            (r#"{"height":3,"width":2,"codes":[[1,2],[3,4]]}"#, "height is 3 but the grid has 2 rows"),
            (r#"{"height":0,"width":2,"codes":[]}"#, "must be positive"),
            (r#"{"height":1,"width":2,"codes":[[1,2.5]]}"#, "not a code grid"),
            (r#"{"height":1,"width":2}"#, "missing field `codes`"),
            ("[1, 2", "not a code grid"),
        ];
        for (json, want) in cases {
            let e = CodeGrid::from_json(json, "codes.json").unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("codes.json"), "{json}: {e}");
        }
    }
}

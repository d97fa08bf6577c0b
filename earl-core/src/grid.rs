//! The one code-grid type: an image as an `h`×`w` grid of VQ codebook indices, row-major ([`CodeGrid`]). The vision
//! tokenizer produces it ([`CodeGrid::from_tensor`]), prompts lay it out, the response parser builds it, rewards
//! compare it, and it is stored in two formats, both kept byte-compatible with what earlier versions wrote:
//!
//! * `codes.json` ([`CodeGrid::to_json`] / [`CodeGrid::from_json`]): `{"height": h, "width": w, "codes": [[…], …]}`,
//!   what `earl encode` writes and `earl decode` reads;
//! * the shard encoding ([`shard`], a serde adapter for `#[serde(with = …)]`): `{"h": h, "w": w, "codes": "<b64>"}`
//!   with the codes as base64 of little-endian u16 (Emu3's codebook has 32768 entries).
//!
//! Codes are u32 (the tokenizer's id type). Every conversion is checked: a negative code, or one that does not fit
//! the target (u32 from the VQ's i64, u16 in a shard), is an error, never a silent truncation. The codebook range
//! itself is checked where it is known (the tokenizer's `visual_id`, the VQ's decoder).
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// An image as a grid of VQ codes, row-major; never empty, never ragged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeGrid {
    h: usize,
    w: usize,
    codes: Vec<u32>,
}

impl CodeGrid {
    /// `h`×`w` codes in row-major order; an empty grid or a wrong number of codes is an error.
    pub fn new(h: usize, w: usize, codes: Vec<u32>) -> Result<Self> {
        if h == 0 || w == 0 {
            return Err(Error::input(format!("image grid must be non-empty, got {h}x{w}")));
        }
        if codes.len() != h * w {
            return Err(Error::input(format!("image grid {h}x{w} needs {} codes, got {}", h * w, codes.len())));
        }
        Ok(Self { h, w, codes })
    }

    /// From rows of codes; ragged rows (a generation that broke the grid) are an error.
    pub fn from_rows(rows: &[Vec<u32>]) -> Result<Self> {
        let w = rows.first().map_or(0, Vec::len);
        if let Some(i) = rows.iter().position(|r| r.len() != w) {
            return Err(Error::input(format!("code grid row {i} has {} codes, row 0 has {w}", rows[i].len())));
        }
        Self::new(rows.len(), w, rows.concat())
    }

    /// Height in rows.
    pub fn h(&self) -> usize {
        self.h
    }

    /// Width in columns.
    pub fn w(&self) -> usize {
        self.w
    }

    /// Codes in row-major order.
    pub fn codes(&self) -> &[u32] {
        &self.codes
    }

    /// The codes in row-major order, consuming the grid.
    pub fn into_codes(self) -> Vec<u32> {
        self.codes
    }

    /// The rows, top to bottom.
    pub fn rows(&self) -> impl Iterator<Item = &[u32]> {
        self.codes.chunks(self.w)
    }

    /// The code at (row, col), if inside the grid.
    pub fn get(&self, row: usize, col: usize) -> Option<u32> {
        (row < self.h && col < self.w).then(|| self.codes[row * self.w + col])
    }

    /// Codes [h, w] (any integer kind, any device; the VQ's encoder output) → grid. A code that is negative or does
    /// not fit u32 is an error.
    pub fn from_tensor(codes: &Tensor) -> Result<Self> {
        let s = codes.size();
        let [h, w] = s[..] else {
            return Err(Error::input(format!("a code grid is [h, w], got {s:?}")));
        };
        let flat = Vec::<i64>::try_from(codes.to_device(Device::Cpu).to_kind(Kind::Int64).flatten(0, -1))?;
        let codes = flat
            .into_iter()
            .map(|c| u32::try_from(c).map_err(|_| Error::input(format!("code {c} is not a codebook index"))))
            .collect::<Result<Vec<u32>>>()?;
        Self::new(h as usize, w as usize, codes)
    }

    /// Grid → codes [1, h, w] i64 on the CPU (a batch of one, ready for `Emu3VqModel::decode`).
    pub fn to_tensor(&self) -> Tensor {
        let flat: Vec<i64> = self.codes.iter().map(|&c| i64::from(c)).collect();
        Tensor::from_slice(&flat).view([1, self.h as i64, self.w as i64])
    }

    /// Parses and validates `codes.json` text; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let g: CodesJson = serde_json::from_str(text)
            .map_err(|e| Error::input(format!("{origin}:{}:{}: not a code grid: {e}", e.line(), e.column())))?;
        g.into_grid().map_err(|m| Error::input(format!("{origin}: {m}")))
    }

    /// The `codes.json` text (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        let rows = self.rows().map(|r| r.iter().map(|&c| i64::from(c)).collect()).collect();
        let j = CodesJson { height: self.h as i64, width: self.w as i64, codes: rows };
        serde_json::to_string(&j).expect("a grid of integers serialises")
    }
}

/// `codes.json` as written (field order kept: the output is byte-compatible with earlier versions).
#[derive(Serialize, Deserialize)]
struct CodesJson {
    height: i64,
    width: i64,
    codes: Vec<Vec<i64>>,
}

impl CodesJson {
    fn into_grid(self) -> std::result::Result<CodeGrid, String> {
        if self.height <= 0 || self.width <= 0 {
            return Err(format!("grid size {}×{} must be positive", self.height, self.width));
        }
        if self.codes.len() as i64 != self.height {
            return Err(format!("height is {} but the grid has {} rows", self.height, self.codes.len()));
        }
        if let Some((i, r)) = self.codes.iter().enumerate().find(|(_, r)| r.len() as i64 != self.width) {
            return Err(format!("ragged grid: row {i} has {} codes, width is {}", r.len(), self.width));
        }
        let mut codes = Vec::with_capacity((self.height * self.width) as usize);
        for (i, &c) in self.codes.iter().flatten().enumerate() {
            let c = u32::try_from(c).map_err(|_| format!("code {c} (position {i}) is not a codebook index"))?;
            codes.push(c);
        }
        CodeGrid::new(self.height as usize, self.width as usize, codes).map_err(|e| e.to_string())
    }
}

/// The shard encoding of a grid, for `#[serde(with = "crate::grid::shard")]`: `{"h", "w", "codes": base64 of
/// little-endian u16}`. A code ≥ 65536 cannot be written (an error, not a wrapped value).
pub mod shard {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::CodeGrid;

    #[derive(Serialize, Deserialize)]
    struct GridJson {
        h: usize,
        w: usize,
        codes: String,
    }

    /// Writes `{h, w, codes}` with `codes` base64 of little-endian u16 codes, row-major; a code above u16 is an error.
    pub fn serialize<S: Serializer>(g: &CodeGrid, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(g.codes.len() * 2);
        for &c in &g.codes {
            let c = u16::try_from(c)
                .map_err(|_| serde::ser::Error::custom(format!("code {c} does not fit the shard format's 16 bits")))?;
            bytes.extend(c.to_le_bytes());
        }
        GridJson { h: g.h, w: g.w, codes: encode(&bytes) }.serialize(s)
    }

    /// Reads the `{h, w, codes}` form written by [`serialize`], checking the shape.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CodeGrid, D::Error> {
        let g = GridJson::deserialize(d)?;
        let bytes = decode(&g.codes).map_err(serde::de::Error::custom)?;
        if bytes.len() % 2 != 0 {
            return Err(serde::de::Error::custom("code bytes are not a whole number of u16"));
        }
        let codes = bytes.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect::<Vec<_>>();
        if g.h == 0 || g.w == 0 || codes.len() != g.h * g.w {
            let msg = format!("a {}×{} code grid needs {} codes, got {}", g.h, g.w, g.h * g.w, codes.len());
            return Err(serde::de::Error::custom(msg));
        }
        CodeGrid::new(g.h, g.w, codes).map_err(serde::de::Error::custom)
    }

    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub(super) fn decode(s: &str) -> Result<Vec<u8>, String> {
        let s = s.trim_end_matches('=');
        let mut out = Vec::with_capacity(s.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes() {
            let v =
                B64.iter().position(|&b| b == c).ok_or_else(|| format!("invalid base64 character {:?}", c as char))?;
            acc = acc << 6 | v as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_round_trip_and_bad_grids_are_errors() {
        let t = Tensor::arange(6, (Kind::Int64, Device::Cpu)).view([2, 3]);
        let g = CodeGrid::from_tensor(&t).unwrap();
        assert_eq!(g.rows().collect::<Vec<_>>(), vec![&[0, 1, 2][..], &[3, 4, 5][..]]);
        assert_eq!(g.to_json(), r#"{"height":2,"width":3,"codes":[[0,1,2],[3,4,5]]}"#);
        let back = CodeGrid::from_json(&g.to_json(), "x").unwrap();
        assert_eq!(back.to_tensor(), t.unsqueeze(0));
        let cases = [
            (r#"{"height":2,"width":2,"codes":[[1,2],[3]]}"#, "ragged grid: row 1 has 1 codes, width is 2"),
            (r#"{"height":3,"width":2,"codes":[[1,2],[3,4]]}"#, "height is 3 but the grid has 2 rows"),
            (r#"{"height":0,"width":2,"codes":[]}"#, "must be positive"),
            (r#"{"height":1,"width":2,"codes":[[1,2.5]]}"#, "not a code grid"),
            (r#"{"height":1,"width":2,"codes":[[1,-2]]}"#, "code -2 (position 1) is not a codebook index"),
            (r#"{"height":1,"width":2}"#, "missing field `codes`"),
            ("[1, 2", "not a code grid"),
        ];
        for (json, want) in cases {
            let e = CodeGrid::from_json(json, "codes.json").unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("codes.json"), "{json}: {e}");
        }
        assert!(CodeGrid::new(0, 3, vec![]).is_err());
        assert!(CodeGrid::new(2, 2, vec![1, 2, 3]).is_err());
        assert!(CodeGrid::from_rows(&[vec![1, 2], vec![3]]).is_err());
        let g = CodeGrid::from_rows(&[vec![1, 2], vec![3, 4]]).unwrap();
        assert_eq!((g.h(), g.w(), g.get(1, 0), g.get(2, 0)), (2, 2, Some(3), None));
    }

    #[test]
    fn vq_output_with_a_code_outside_u32_is_refused() {
        for bad in [-1i64, 1 << 32] {
            let t = Tensor::from_slice(&[0i64, bad]).view([1, 2]);
            let e = CodeGrid::from_tensor(&t).unwrap_err().to_string();
            assert!(e.contains(&format!("code {bad} is not a codebook index")), "{e}");
        }
        assert!(CodeGrid::from_tensor(&Tensor::from_slice(&[1i64, 2])).is_err(), "a grid is 2-d");
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder(#[serde(with = "shard")] CodeGrid);

    #[test]
    fn the_shard_encoding_is_packed_u16_and_refuses_wider_codes() {
        let g = CodeGrid::new(1, 3, vec![0, 1, 65535]).unwrap();
        let line = serde_json::to_string(&Holder(g.clone())).unwrap();
        // 00 00 01 00 ff ff, little-endian u16, base64.
        assert_eq!(line, r#"{"h":1,"w":3,"codes":"AAABAP//"}"#);
        assert_eq!(serde_json::from_str::<Holder>(&line).unwrap().0, g);
        let wide = CodeGrid::new(1, 1, vec![65536]).unwrap();
        let e = serde_json::to_string(&Holder(wide)).unwrap_err().to_string();
        assert!(e.contains("code 65536 does not fit the shard format's 16 bits"), "{e}");
        let odd = serde_json::from_str::<Holder>(r#"{"h":1,"w":1,"codes":"AA=="}"#).unwrap_err().to_string();
        assert!(odd.contains("whole number of u16"), "{odd}");
    }

    #[test]
    fn base64_round_trips_and_matches_rfc4648() {
        assert_eq!(shard::encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(shard::encode(b"fo"), "Zm8=");
        for n in 0..10u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(97)).collect();
            assert_eq!(shard::decode(&shard::encode(&v)).unwrap(), v);
        }
        assert!(shard::decode("a*b").is_err());
    }
}

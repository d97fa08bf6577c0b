//! One tokenized editing example ([`EditRecord`]) and its JSON line form. Visual codes are stored compactly as
//! base64 of little-endian u16 (Emu3's codebook has 32768 entries), with the grid shape beside them; everything else
//! is plain JSON so shards stay greppable. Layout of one line:
//! `{"id":…,"instruction":…,"source":{"h":32,"w":32,"codes":"<b64>"},"edited":{…},"cot":{key: text},"meta":{…}}`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A grid of visual codes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrid {
    pub h: usize,
    pub w: usize,
    pub codes: Vec<u16>,
}

impl CodeGrid {
    pub fn new(h: usize, w: usize, codes: Vec<u16>) -> Result<Self, String> {
        if h == 0 || w == 0 || codes.len() != h * w {
            return Err(format!("a {h}×{w} code grid needs {} codes, got {}", h * w, codes.len()));
        }
        Ok(CodeGrid { h, w, codes })
    }
}

#[derive(Serialize, Deserialize)]
struct GridJson {
    h: usize,
    w: usize,
    codes: String,
}

impl Serialize for CodeGrid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.codes.iter().flat_map(|c| c.to_le_bytes()).collect();
        GridJson { h: self.h, w: self.w, codes: b64_encode(&bytes) }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CodeGrid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let g = GridJson::deserialize(d)?;
        let bytes = b64_decode(&g.codes).map_err(serde::de::Error::custom)?;
        if bytes.len() % 2 != 0 {
            return Err(serde::de::Error::custom("code bytes are not a whole number of u16"));
        }
        let codes = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        CodeGrid::new(g.h, g.w, codes).map_err(serde::de::Error::custom)
    }
}

/// A tokenized editing example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditRecord {
    pub id: String,
    pub instruction: String,
    pub source: CodeGrid,
    pub edited: CodeGrid,
    /// Chain-of-thought texts by key (the reference's `CoT` dict), possibly empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cot: BTreeMap<String, String>,
    /// Free metadata, e.g. `source_dataset`, `edit_type`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(bytes: &[u8]) -> String {
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

fn b64_decode(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c).ok_or_else(|| format!("invalid base64 character {:?}", c as char))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_rfc4648() {
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8=");
        for n in 0..10u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(97)).collect();
            assert_eq!(b64_decode(&b64_encode(&v)).unwrap(), v);
        }
        assert!(b64_decode("a*b").is_err());
    }

    #[test]
    fn record_round_trips_through_json() {
        let r = EditRecord {
            id: "x1".into(),
            instruction: "make it red".into(),
            source: CodeGrid::new(2, 3, vec![0, 1, 2, 32767, 5, 6]).unwrap(),
            edited: CodeGrid::new(1, 1, vec![9]).unwrap(),
            cot: [("thinking".to_string(), "red".to_string())].into(),
            meta: BTreeMap::new(),
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains("meta"));
        assert_eq!(serde_json::from_str::<EditRecord>(&line).unwrap(), r);
        let bad = line.replace("\"h\":2", "\"h\":5");
        assert!(serde_json::from_str::<EditRecord>(&bad).unwrap_err().to_string().contains("5×3"));
    }
}

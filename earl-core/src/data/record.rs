//! One tokenized editing example ([`EditRecord`]) and its JSON line form. Visual codes are stored compactly in the
//! shard encoding of [`crate::grid::shard`] (base64 of little-endian u16, Emu3's codebook has 32768 entries), with
//! the grid shape beside them; everything else is plain JSON so shards stay greppable. Layout of one line:
//! `{"id":…,"instruction":…,"source":{"h":32,"w":32,"codes":"<b64>"},"edited":{…},"cot":{key: text},"meta":{…}}`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::grid::{self, CodeGrid};

/// A tokenized editing example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditRecord {
    /// Record id, unique within the dataset.
    pub id: String,
    /// The edit instruction.
    pub instruction: String,
    /// VQ codes of the source image.
    #[serde(with = "grid::shard")]
    pub source: CodeGrid,
    /// VQ codes of the edited (target) image.
    #[serde(with = "grid::shard")]
    pub edited: CodeGrid,
    /// Chain-of-thought texts by key (the reference's `CoT` dict), possibly empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cot: BTreeMap<String, String>,
    /// Free metadata, e.g. `source_dataset`, `edit_type`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let wide = EditRecord { edited: CodeGrid::new(1, 1, vec![70000]).unwrap(), ..r };
        assert!(serde_json::to_string(&wide).unwrap_err().to_string().contains("code 70000 does not fit"));
    }
}

//! Byte-level BPE by ranks, the algorithm of tiktoken (which Emu3's reference tokenizer wraps): text is split
//! into special tokens (recognised anywhere, tiktoken's `allowed_special="all"`) and ordinary segments; each
//! segment is cut into pieces by the pre-tokenizer regex, and each piece that is not itself a token is merged
//! from single bytes by repeatedly joining the adjacent pair whose concatenation has the lowest rank (leftmost on
//! ties). This module is the simple, exact reference path; speed comes from a per-piece cache, since natural text
//! repeats its words.
use std::collections::HashMap;
use std::sync::Mutex;

use aho_corasick::{AhoCorasick, MatchKind};
use fancy_regex::Regex;

use crate::error::{Error, Result};

/// Pieces longer than this are not cached (they are rare and would bloat the cache).
const CACHE_MAX_PIECE: usize = 64;
/// The cache is cleared when it holds this many pieces, bounding memory on adversarial input.
const CACHE_MAX_ENTRIES: usize = 1 << 16;

pub(crate) struct BytePairEncoder {
    ranks: HashMap<Vec<u8>, u32>,
    /// id -> bytes, for ranks and special tokens alike (specials as their UTF-8 surface form).
    decoder: Vec<Vec<u8>>,
    special_ids: HashMap<String, u32>,
    special_matcher: Option<AhoCorasick>,
    /// Special token surface forms in id order (index = id - n_ranks).
    special_names: Vec<String>,
    pattern: Regex,
    cache: Mutex<HashMap<Vec<u8>, Vec<u32>>>,
}

impl BytePairEncoder {
    /// `ranks[i]` is the byte string of rank `i` (ranks must be exactly 0..n); special tokens get the ids after.
    pub(crate) fn new(ranks: Vec<Vec<u8>>, specials: Vec<String>, pattern: &str) -> Result<Self> {
        let pattern = Regex::new(pattern).map_err(|e| Error::input(format!("invalid pre-tokenizer regex: {e}")))?;
        let mut rank_map = HashMap::with_capacity(ranks.len());
        for (i, bytes) in ranks.iter().enumerate() {
            if rank_map.insert(bytes.clone(), i as u32).is_some() {
                return Err(Error::input(format!("BPE rank {i}: duplicate token bytes {bytes:?}")));
            }
        }
        let n_ranks = ranks.len() as u32;
        let mut special_ids = HashMap::with_capacity(specials.len());
        for (i, name) in specials.iter().enumerate() {
            if name.is_empty() {
                return Err(Error::input("empty special token"));
            }
            if special_ids.insert(name.clone(), n_ranks + i as u32).is_some() {
                return Err(Error::input(format!("special token `{name}` listed twice")));
            }
        }
        // Leftmost-longest: no special token of Emu3 is a prefix of another, so this equals tiktoken's regex
        // alternation; for vocabularies where one is, the longer match is the deterministic choice.
        let special_matcher = if specials.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&specials)
                    .map_err(|e| Error::input(format!("special tokens: {e}")))?,
            )
        };
        let mut decoder = ranks;
        decoder.extend(specials.iter().map(|s| s.as_bytes().to_vec()));
        Ok(Self {
            ranks: rank_map,
            decoder,
            special_ids,
            special_matcher,
            special_names: specials,
            pattern,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn n_ranks(&self) -> usize {
        self.ranks.len()
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.decoder.len()
    }

    pub(crate) fn special_id(&self, name: &str) -> Option<u32> {
        self.special_ids.get(name).copied()
    }

    pub(crate) fn special_names(&self) -> &[String] {
        &self.special_names
    }

    /// Bytes of one id (a rank's bytes or a special token's surface form).
    pub(crate) fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.decoder.get(id as usize).map(Vec::as_slice)
    }

    /// Encodes with special tokens recognised anywhere in `text`.
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let Some(matcher) = &self.special_matcher else {
            return self.encode_ordinary(text, out);
        };
        let mut start = 0;
        for m in matcher.find_iter(text) {
            self.encode_ordinary(&text[start..m.start()], out)?;
            out.push(self.special_ids[&text[m.start()..m.end()]]);
            start = m.end();
        }
        self.encode_ordinary(&text[start..], out)
    }

    /// Encodes `text` as plain text: special token surface forms are split like any other text.
    pub(crate) fn encode_ordinary(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        // The regex runs on this segment alone, so look-ahead at its end sees the end of the text, exactly as
        // tiktoken encodes the text between two special tokens.
        for m in self.pattern.find_iter(text) {
            let m = m.map_err(|e| Error::input(format!("pre-tokenizer regex failed: {e}")))?;
            self.encode_piece(m.as_str().as_bytes(), out)?;
        }
        Ok(())
    }

    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        if let Some(&r) = self.ranks.get(piece) {
            out.push(r);
            return Ok(());
        }
        let cacheable = piece.len() <= CACHE_MAX_PIECE;
        if cacheable {
            if let Some(ids) = self.cache.lock().ok().and_then(|c| c.get(piece).cloned()) {
                out.extend_from_slice(&ids);
                return Ok(());
            }
        }
        let ids = self.merge(piece)?;
        out.extend_from_slice(&ids);
        if cacheable {
            if let Ok(mut cache) = self.cache.lock() {
                if cache.len() >= CACHE_MAX_ENTRIES {
                    cache.clear();
                }
                cache.insert(piece.to_vec(), ids);
            }
        }
        Ok(())
    }

    /// Merges a piece from its bytes: boundaries `b[0] = 0 < b[1] < … < b[n] = len`; each step joins the two
    /// adjacent parts whose concatenation has the lowest rank, the leftmost such pair on ties.
    fn merge(&self, piece: &[u8]) -> Result<Vec<u32>> {
        let mut bounds: Vec<usize> = (0..=piece.len()).collect();
        let rank_of = |b: &[usize], i: usize| -> Option<u32> {
            // rank of parts i and i+1 joined
            b.get(i + 2).and_then(|&end| self.ranks.get(&piece[b[i]..end]).copied())
        };
        let mut pair_ranks: Vec<Option<u32>> = (0..bounds.len() - 1).map(|i| rank_of(&bounds, i)).collect();
        loop {
            let best = pair_ranks.iter().enumerate().filter_map(|(i, r)| r.map(|r| (r, i))).min();
            let Some((_, i)) = best else { break };
            bounds.remove(i + 1);
            pair_ranks.remove(i + 1);
            pair_ranks[i] = rank_of(&bounds, i);
            if i > 0 {
                pair_ranks[i - 1] = rank_of(&bounds, i - 1);
            }
        }
        bounds
            .windows(2)
            .map(|w| {
                self.ranks.get(&piece[w[0]..w[1]]).copied().ok_or_else(|| {
                    Error::input(format!("byte {:#04x} has no BPE rank (vocabulary lacks single bytes)", piece[w[0]]))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> BytePairEncoder {
        let mut ranks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for t in ["ab", "bc", "abc", "cd"] {
            ranks.push(t.as_bytes().to_vec());
        }
        BytePairEncoder::new(ranks, vec!["<|s|>".into(), "<|s2|>".into()], r"\S+|\s+").unwrap()
    }

    #[test]
    fn merges_lowest_rank_first_leftmost_on_ties() {
        let bpe = tiny();
        let mut out = vec![];
        // "abcd": pairs ab(256) bc(257) cd(259) -> ab first, then ab+c = abc(258) beats c+d(259).
        bpe.encode("abcd", &mut out).unwrap();
        assert_eq!(out, vec![258, 100]);
        out.clear();
        // "abab": both `ab` pairs have rank 256; leftmost first, then the second.
        bpe.encode("abab", &mut out).unwrap();
        assert_eq!(out, vec![256, 256]);
        out.clear();
        bpe.encode("bcd", &mut out).unwrap();
        assert_eq!(out, vec![257, 100]);
    }

    #[test]
    fn specials_anywhere_and_ordinary_mode() {
        let bpe = tiny();
        let mut out = vec![];
        bpe.encode("x<|s|><|s2|>y<|s", &mut out).unwrap();
        assert_eq!(out, vec![120, 260, 261, 121, 60, 124, 115]);
        out.clear();
        bpe.encode_ordinary("<|s|>", &mut out).unwrap();
        assert_eq!(out.len(), 5);
        // cached and uncached paths agree
        let mut again = vec![];
        bpe.encode_ordinary("<|s|>", &mut again).unwrap();
        assert_eq!(out, again);
    }

    #[test]
    fn rejects_duplicates() {
        let ranks = vec![b"a".to_vec(), b"a".to_vec()];
        assert!(BytePairEncoder::new(ranks, vec![], r"\S+").is_err());
        let ranks = vec![b"a".to_vec()];
        assert!(BytePairEncoder::new(ranks, vec!["<|x|>".into(), "<|x|>".into()], r"\S+").is_err());
    }
}

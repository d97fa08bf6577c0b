//! Readers for the tokenizer files EARL checkpoints ship: the original Emu3 pair (`emu3.tiktoken`: one
//! `base64(token bytes) rank` per line; `emu3_vision_tokens.txt`: one special token per line) and a HF
//! `tokenizer.json`. Both become a [`BytePairEncoder`] or a `tokenizers::Tokenizer` plus, for every id, the bytes
//! it decodes to, so that decoding (including streaming decode of split UTF-8 sequences) has one implementation.
use std::path::Path;

use base64::Engine;

use super::bpe::BytePairEncoder;
use crate::error::{Error, Result};

/// The Qwen pre-tokenizer regex Emu3 uses (baaivision/Emu3 `tokenization_emu3.py`, `PAT_STR`). Unlike cl100k
/// it splits numbers into single digits (`\p{N}`), and `\s+(?!\S)` needs look-ahead, hence `fancy-regex`.
pub const EMU3_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Special tokens numbered right after the BPE ranks, before the vision file's lines (the reference's order).
pub fn base_special_tokens() -> Vec<String> {
    let mut v: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].iter().map(|s| s.to_string()).collect();
    v.extend((0..205).map(|i| format!("<|extra_{i}|>")));
    v
}

fn tok_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Tokenizer { path: path.to_path_buf(), msg: msg.into() }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Parses `emu3.tiktoken`; ranks must be exactly 0..n (the special ids follow them).
pub(crate) fn read_tiktoken_ranks(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = read(path)?;
    let mut ranks: Vec<Option<Vec<u8>>> = Vec::new();
    for (lineno, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |msg: String| tok_err(path, format!("line {}: {msg}", lineno + 1));
        let mut parts = line.split_whitespace();
        let (Some(b64), Some(rank), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(at("expected `base64 rank`".into()));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| at(format!("bad base64 `{b64}`: {e}")))?;
        let rank: usize = rank.parse().map_err(|_| at(format!("bad rank `{rank}`")))?;
        if rank >= 10_000_000 {
            return Err(at(format!("rank {rank} is implausibly large")));
        }
        if ranks.len() <= rank {
            ranks.resize(rank + 1, None);
        }
        if ranks[rank].replace(bytes).is_some() {
            return Err(at(format!("rank {rank} given twice")));
        }
    }
    let n = ranks.len();
    ranks
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| tok_err(path, format!("rank {i} missing (ranks must be 0..{n})"))))
        .collect()
}

/// Reads `emu3_vision_tokens.txt`: one token per non-empty line, surrounding whitespace trimmed (as the reference).
pub(crate) fn read_vision_tokens(path: &Path) -> Result<Vec<String>> {
    Ok(read(path)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

pub(crate) fn load_tiktoken(bpe_path: &Path, vision_path: &Path) -> Result<BytePairEncoder> {
    let ranks = read_tiktoken_ranks(bpe_path)?;
    let mut specials = base_special_tokens();
    specials.extend(read_vision_tokens(vision_path)?);
    BytePairEncoder::new(ranks, specials, EMU3_PATTERN).map_err(|e| tok_err(bpe_path, e.to_string()))
}

/// GPT-2's byte-level alphabet: printable Latin-1 bytes map to themselves, the others to U+0100.. in byte order.
/// Returns the inverse (char -> byte), used to turn a byte-level BPE token string back into bytes.
fn byte_level_decoder() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut next = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(0x100 + next - 1).expect("valid char")
        };
        map.insert(c, b);
    }
    map
}

/// A HF tokenizer and the bytes of each id (added tokens: their content; model tokens: byte-level decoded).
pub(crate) fn load_tokenizer_json(path: &Path) -> Result<(tokenizers::Tokenizer, Vec<Vec<u8>>)> {
    let tk = tokenizers::Tokenizer::from_file(path).map_err(|e| tok_err(path, e.to_string()))?;
    let n = tk.get_vocab_size(true);
    let added = tk.get_added_tokens_decoder();
    let inv = byte_level_decoder();
    let mut bytes = Vec::with_capacity(n);
    for id in 0..n as u32 {
        if let Some(t) = added.get(&id) {
            bytes.push(t.content.as_bytes().to_vec());
            continue;
        }
        let tok =
            tk.id_to_token(id).ok_or_else(|| tok_err(path, format!("id {id} has no token (ids must be 0..{n})")))?;
        let b: Option<Vec<u8>> = tok.chars().map(|c| inv.get(&c).copied()).collect();
        bytes.push(b.ok_or_else(|| {
            tok_err(path, format!("token {id} `{tok}` is not byte-level BPE (Emu3 tokenizers are byte-level)"))
        })?);
    }
    Ok((tk, bytes))
}

/// Role tokens from a HF `tokenizer_config.json` (`bos_token`, …, `eof_token`; a string or `{"content": …}`),
/// defaults for roles it does not set.
pub(crate) fn read_role_overrides(path: &Path) -> Result<[String; 8]> {
    let text = read(path)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })?;
    let mut roles = super::SpecialIds::default_role_tokens();
    for (slot, (role, _)) in roles.iter_mut().zip(super::SpecialIds::ROLES) {
        let key = format!("{role}_token");
        match v.get(&key) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(s)) => *slot = s.clone(),
            Some(obj) => match obj.get("content").and_then(|c| c.as_str()) {
                Some(s) => *slot = s.to_string(),
                None => return Err(tok_err(path, format!("`{key}` is neither a string nor {{\"content\": …}}"))),
            },
        }
    }
    Ok(roles)
}

//! The Emu3 text tokenizer: text ⇄ ids with exactly the reference's ids (BAAI's `Emu3Tokenizer`, a tiktoken
//! byte-level BPE over the Qwen vocabulary with special tokens allowed anywhere in text), loaded from the original
//! Emu3 files (`emu3.tiktoken` + `emu3_vision_tokens.txt`) or from a HF `tokenizer.json`. It also knows the roles
//! EARL gives special tokens (bos, eos, pad, image delimiters, row/frame ends) and the visual-code ↔ id mapping
//! (code c ↦ `<|visual token {c:06}|>`, a contiguous id range at the end of the vocabulary). Plain `u32` ids, no
//! tensors, so prompt building and tests stay fast.
mod bpe;
mod files;
mod stream;
pub mod train;

use std::ops::Range;
use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};
pub use files::{base_special_tokens, EMU3_PATTERN};
pub use stream::DecodeStream;

/// File names of the original Emu3 tokenizer, as shipped with EARL/BAAI checkpoints.
pub const TIKTOKEN_FILE: &str = "emu3.tiktoken";
/// The visual-token list of the original Emu3 tokenizer (one `<|visual token …|>` per line).
pub const VISION_TOKENS_FILE: &str = "emu3_vision_tokens.txt";
/// A HF `tokenizers` file, used when the original files are absent.
pub const TOKENIZER_JSON: &str = "tokenizer.json";
/// The HF tokenizer config, which may rename the role tokens.
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// Surface form of visual code `code`.
pub fn visual_token(code: u32) -> String {
    format!("<|visual token {code:06}|>")
}

/// Ids of the special tokens EARL gives a role (reference defaults of `Emu3Tokenizer.__init__`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// `<|extra_203|>`
    pub bos: u32,
    /// `<|extra_204|>`
    pub eos: u32,
    /// `<|endoftext|>`
    pub pad: u32,
    /// `<|image token|>`: starts the grid of visual tokens.
    pub img: u32,
    /// `<|image start|>`: starts an image block (followed by the `"{h}*{w}"` text).
    pub boi: u32,
    /// `<|image end|>`
    pub eoi: u32,
    /// `<|extra_200|>`: end of a row of visual tokens.
    pub eol: u32,
    /// `<|extra_201|>`: end of the frame.
    pub eof: u32,
}

impl SpecialIds {
    /// (role, default token) of each role, in the order of the fields above.
    pub const ROLES: [(&'static str, &'static str); 8] = [
        ("bos", "<|extra_203|>"),
        ("eos", "<|extra_204|>"),
        ("pad", "<|endoftext|>"),
        ("img", "<|image token|>"),
        ("boi", "<|image start|>"),
        ("eoi", "<|image end|>"),
        ("eol", "<|extra_200|>"),
        ("eof", "<|extra_201|>"),
    ];

    /// The reference's default token of each role, in [`Self::ROLES`] order.
    pub fn default_role_tokens() -> [String; 8] {
        Self::ROLES.map(|(_, t)| t.to_string())
    }
}

enum Backend {
    Tiktoken(Box<bpe::BytePairEncoder>),
    Hf(Box<tokenizers::Tokenizer>),
}

/// Emu3 text tokenizer (immutable, `Send + Sync`; encoding caches BPE pieces internally).
pub struct Emu3Tokenizer {
    backend: Backend,
    /// Bytes of every id (specials as their UTF-8 surface form).
    bytes: Vec<Vec<u8>>,
    special: SpecialIds,
    visual: Range<u32>,
    source: PathBuf,
}

impl std::fmt::Debug for Emu3Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emu3Tokenizer")
            .field("source", &self.source)
            .field("format", &self.format())
            .field("vocab_size", &self.vocab_size())
            .field("visual", &self.visual)
            .finish()
    }
}

impl Emu3Tokenizer {
    /// Loads from a directory: the original Emu3 files if present (what EARL checkpoints ship), else
    /// `tokenizer.json`.
    /// `tokenizer.json`. Role tokens set in the directory's `tokenizer_config.json` (`bos_token`, `img_token`, …)
    /// override the reference defaults, as `AutoTokenizer.from_pretrained` would apply them.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let (bpe, vision) = (dir.join(TIKTOKEN_FILE), dir.join(VISION_TOKENS_FILE));
        let mut tok = if bpe.is_file() && vision.is_file() {
            Self::from_tiktoken_files(&bpe, &vision)?
        } else if dir.join(TOKENIZER_JSON).is_file() {
            Self::from_tokenizer_json(dir.join(TOKENIZER_JSON))?
        } else {
            return Err(Error::Tokenizer {
                path: dir.to_path_buf(),
                msg: format!(
                    "no tokenizer found: expected {TIKTOKEN_FILE} + {VISION_TOKENS_FILE}, or {TOKENIZER_JSON}"
                ),
            });
        };
        let config = dir.join(TOKENIZER_CONFIG);
        if config.is_file() {
            let roles = files::read_role_overrides(&config)?;
            if roles != SpecialIds::default_role_tokens() {
                let lookup = |s: &str| tok.token_to_id(s);
                tok.special = resolve_roles(&lookup, &roles, tok.vocab_size(), &config)?.0;
            }
        }
        Ok(tok)
    }

    /// Loads the original Emu3 pair of files.
    pub fn from_tiktoken_files(bpe: impl AsRef<Path>, vision: impl AsRef<Path>) -> Result<Self> {
        let span = tracing::info_span!("load_tokenizer", path = %bpe.as_ref().display());
        let _g = span.enter();
        let enc = files::load_tiktoken(bpe.as_ref(), vision.as_ref())?;
        let bytes = (0..enc.vocab_size() as u32).map(|i| enc.token_bytes(i).unwrap_or_default().to_vec()).collect();
        let lookup = |s: &str| enc.special_id(s);
        let roles = SpecialIds::default_role_tokens();
        let (special, visual) = resolve_roles(&lookup, &roles, enc.vocab_size(), vision.as_ref())?;
        tracing::debug!(n_ranks = enc.n_ranks(), specials = enc.special_names().len(), "tiktoken tokenizer loaded");
        Ok(Self {
            backend: Backend::Tiktoken(Box::new(enc)),
            bytes,
            special,
            visual,
            source: bpe.as_ref().to_path_buf(),
        })
    }

    /// Loads a HF `tokenizer.json` (byte-level BPE with the Emu3 special tokens as added tokens).
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let span = tracing::info_span!("load_tokenizer", path = %path.display());
        let _g = span.enter();
        let (tk, bytes) = files::load_tokenizer_json(path)?;
        let lookup = |s: &str| tk.token_to_id(s);
        let roles = SpecialIds::default_role_tokens();
        let (special, visual) = resolve_roles(&lookup, &roles, bytes.len(), path)?;
        Ok(Self { backend: Backend::Hf(Box::new(tk)), bytes, special, visual, source: path.to_path_buf() })
    }

    /// `"tiktoken"` or `"tokenizer.json"`.
    pub fn format(&self) -> &'static str {
        match self.backend {
            Backend::Tiktoken(_) => "tiktoken",
            Backend::Hf(_) => "tokenizer.json",
        }
    }

    /// The file it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Number of ids (BPE ranks + all special tokens).
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// Ids of the role tokens (bos, eos, pad, image delimiters, row/frame ends).
    pub fn special(&self) -> &SpecialIds {
        &self.special
    }

    /// Encodes text the way the reference does: NFC normalization, then special tokens recognised anywhere in the
    /// text (`allowed_special="all"`), then BPE. No bos/eos is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.backend {
            Backend::Tiktoken(enc) => {
                let text: String = text.nfc().collect();
                let mut out = Vec::with_capacity(text.len() / 3 + 1);
                enc.encode(&text, &mut out)?;
                Ok(out)
            }
            // tokenizer.json carries its own normalizer and added-token handling.
            Backend::Hf(tk) => tk
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| Error::input(format!("tokenizer.json encode failed: {e}"))),
        }
    }

    /// Encodes text with special-token surface forms treated as plain text (for user text that must not inject
    /// control tokens). Only the tiktoken format supports this; tokenizer.json always splits out added tokens.
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<u32>> {
        match &self.backend {
            Backend::Tiktoken(enc) => {
                let text: String = text.nfc().collect();
                let mut out = Vec::new();
                enc.encode_ordinary(&text, &mut out)?;
                Ok(out)
            }
            Backend::Hf(_) => Err(Error::input("encode_ordinary needs the emu3.tiktoken tokenizer format")),
        }
    }

    /// The bytes the ids stand for, specials as their surface form.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id)?);
        }
        Ok(out)
    }

    /// Decodes to text; invalid or incomplete UTF-8 becomes U+FFFD per maximal invalid subsequence (the
    /// reference's `errors="replace"`). Lossless for ids that encode valid UTF-8. For token-by-token output use
    /// [`DecodeStream`], which holds back an incomplete multi-byte sequence until it is complete.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    /// Bytes of one id; an error for an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Result<&[u8]> {
        self.bytes.get(id as usize).map(Vec::as_slice).ok_or_else(|| {
            Error::input(format!("token id {id} is outside the vocabulary (size {})", self.vocab_size()))
        })
    }

    /// Id of a special token or of a single-token text (`None` if `token` is not one token).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match &self.backend {
            Backend::Tiktoken(enc) => enc.special_id(token).or_else(|| {
                let mut out = vec![];
                enc.encode_ordinary(token, &mut out).ok()?;
                (out.len() == 1 && self.bytes[out[0] as usize] == token.as_bytes()).then(|| out[0])
            }),
            Backend::Hf(tk) => tk.token_to_id(token).filter(|&id| self.bytes[id as usize] == token.as_bytes()),
        }
    }

    /// Ids `first_visual_id()..vocab_size()`: every id from the first visual token on is visual.
    pub fn visual_ids(&self) -> Range<u32> {
        self.visual.clone()
    }

    /// Id of `<|visual token 000000|>`; ids below it are text (and special) tokens.
    pub fn first_visual_id(&self) -> u32 {
        self.visual.start
    }

    /// Number of visual codes (the VQ codebook size this tokenizer can express).
    pub fn codebook_size(&self) -> u32 {
        self.visual.end - self.visual.start
    }

    /// Id of visual code `code`.
    pub fn visual_id(&self, code: u32) -> Result<u32> {
        if code < self.codebook_size() {
            Ok(self.visual.start + code)
        } else {
            Err(Error::input(format!("visual code {code} outside the codebook (size {})", self.codebook_size())))
        }
    }

    /// Visual code of an id, `None` for non-visual ids.
    pub fn visual_code(&self, id: u32) -> Option<u32> {
        self.visual.contains(&id).then(|| id - self.visual.start)
    }

    /// Whether `id` is a visual-code token.
    pub fn is_visual(&self, id: u32) -> bool {
        self.visual.contains(&id)
    }
}

/// Finds the role ids and checks that visual tokens `000000..` form one contiguous id range at the end of the
/// vocabulary (the grid constraint allows "every id ≥ first visual id" as visual).
fn resolve_roles(
    lookup: &dyn Fn(&str) -> Option<u32>,
    roles: &[String; 8],
    vocab: usize,
    path: &Path,
) -> Result<(SpecialIds, Range<u32>)> {
    let err = |msg: String| Error::Tokenizer { path: path.to_path_buf(), msg };
    let mut ids = [0u32; 8];
    for ((slot, (role, _)), tok) in ids.iter_mut().zip(SpecialIds::ROLES).zip(roles) {
        *slot = lookup(tok).ok_or_else(|| err(format!("special token {tok} (role {role}) is missing")))?;
    }
    let [bos, eos, pad, img, boi, eoi, eol, eof] = ids;
    let first = lookup(&visual_token(0)).ok_or_else(|| err(format!("{} is missing", visual_token(0))))?;
    let codebook = vocab as u32 - first;
    for code in 0..codebook {
        if lookup(&visual_token(code)) != Some(first + code) {
            return Err(err(format!(
                "id {} is not {} (visual tokens must be contiguous and last in the vocabulary)",
                first + code,
                visual_token(code)
            )));
        }
    }
    if let Some(&id) = ids.iter().find(|&&id| id >= first) {
        return Err(err(format!("role token id {id} lies inside the visual range {first}..{vocab}")));
    }
    Ok((SpecialIds { bos, eos, pad, img, boi, eoi, eol, eof }, first..vocab as u32))
}

#[cfg(test)]
pub(crate) mod tests;

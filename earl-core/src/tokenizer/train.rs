//! Training a small Emu3-layout text tokenizer from scratch, with the `tokenizers` crate's BPE trainer: texts are
//! NFC-normalised and pre-tokenized exactly as Emu3 does ([`EMU3_PATTERN`], the Qwen regex), mapped to GPT-2's
//! byte-level alphabet, and `merges` merges are learned on top of all 256 byte symbols (so any text round-trips).
//! The Emu3 special tokens follow the BPE ids in the reference's order — [`base_special_tokens`] (`<|endoftext|>`,
//! `<|im_start|>`, `<|im_end|>`, `<|extra_0|>`…`<|extra_204|>`), then the vision file's `<|image token|>`,
//! `<|image start|>`, `<|image end|>` and `codebook` visual tokens `<|visual token 000000|>`… — the layout
//! `fixtures/tok-tiny/tokenizer.json` has and [`Emu3Tokenizer::from_dir`] expects (visual ids contiguous and last).
//! The result is one `tokenizer.json`; training is deterministic (the trainer breaks count ties by pair ids, which
//! come from the sorted alphabet), so the same texts give a byte-identical file.
use std::path::{Path, PathBuf};

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::normalizers::{NormalizerWrapper, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, TokenizerBuilder, TokenizerImpl};

use super::{base_special_tokens, visual_token, Emu3Tokenizer, EMU3_PATTERN, TOKENIZER_JSON};
use crate::error::{Error, Result};

/// The head of Emu3's vision-token file: image delimiters, before the visual tokens.
pub const VISION_HEAD: [&str; 3] = ["<|image token|>", "<|image start|>", "<|image end|>"];

/// Number of byte symbols every byte-level vocabulary starts with.
const BYTE_SYMBOLS: usize = 256;

/// What to train.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeTrainConfig {
    /// Merges to learn on top of the 256 byte symbols (fewer if the texts run out of pairs).
    pub merges: usize,
    /// A pair seen fewer times than this is never merged.
    pub min_frequency: u64,
    /// Visual tokens to append (the VQ codebook size).
    pub codebook: u32,
}

impl Default for BpeTrainConfig {
    fn default() -> Self {
        BpeTrainConfig { merges: 1024, min_frequency: 2, codebook: 1024 }
    }
}

/// What [`train_bpe`] produced.
#[derive(Debug, Clone)]
pub struct BpeTrainReport {
    /// The written `tokenizer.json`.
    pub path: PathBuf,
    /// Ids of the BPE part: 256 byte symbols plus the merges learned.
    pub bpe_vocab: usize,
    /// Total ids: BPE, specials and visual tokens.
    pub vocab_size: usize,
    /// Id of `<|visual token 000000|>`.
    pub first_visual_id: u32,
    /// Texts the trainer saw.
    pub texts: usize,
}

type Trainable = TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer { path: path.to_path_buf(), msg: e.to_string() }
}

/// The untrained pipeline: NFC, the Emu3 split regex (isolated pieces), byte-level mapping without its own regex,
/// byte-level decoding (as `fixtures/tok-tiny/tokenizer.json`, which transformers' converter wrote).
fn pipeline(out: &Path) -> Result<Trainable> {
    let split = Split::new(SplitPattern::Regex(EMU3_PATTERN.into()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| tok_err(out, e))?;
    let pre = Sequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()]);
    TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(Some(NFC.into()))
        .with_pre_tokenizer(Some(pre.into()))
        .with_post_processor(Some(ByteLevel::new(true, false, true).into()))
        .with_decoder(Some(ByteLevel::new(true, true, true).into()))
        .build()
        .map_err(|e| tok_err(out, e))
}

/// Every special token in id order: the base specials, the vision head, then the visual tokens.
pub fn special_tokens(codebook: u32) -> Vec<String> {
    let mut v = base_special_tokens();
    v.extend(VISION_HEAD.iter().map(|s| s.to_string()));
    v.extend((0..codebook).map(visual_token));
    v
}

/// Trains on `texts` and writes `out_dir/tokenizer.json`; then loads it back with [`Emu3Tokenizer::from_dir`] as a
/// check that the layout is one the rest of the project reads.
pub fn train_bpe<I, S>(texts: I, cfg: &BpeTrainConfig, out_dir: &Path) -> Result<BpeTrainReport>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    if cfg.codebook == 0 {
        return Err(Error::input("the codebook must have at least one visual token"));
    }
    let path = out_dir.join(TOKENIZER_JSON);
    let _span = tracing::info_span!("train_bpe", merges = cfg.merges, codebook = cfg.codebook).entered();
    let texts: Vec<String> = texts.into_iter().map(|t| t.as_ref().to_string()).collect();
    if texts.iter().all(|t| t.is_empty()) {
        return Err(Error::input("no training text (every text is empty)"));
    }
    let mut tk = pipeline(&path)?;
    let mut trainer = BpeTrainer::builder()
        .vocab_size(BYTE_SYMBOLS + cfg.merges)
        .min_frequency(cfg.min_frequency)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build();
    tk.train(&mut trainer, texts.iter()).map_err(|e| tok_err(&path, e))?;
    let bpe_vocab = tk.get_vocab_size(false);
    let specials: Vec<AddedToken> =
        special_tokens(cfg.codebook).into_iter().map(|s| AddedToken::from(s, true)).collect();
    tk.add_special_tokens(specials).map_err(|e| tok_err(&path, e))?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let json = tk.to_string(false).map_err(|e| tok_err(&path, e))?;
    crate::fsio::write_atomic(&path, json.as_bytes())?;
    let loaded = Emu3Tokenizer::from_dir(out_dir)?;
    let report = BpeTrainReport {
        path,
        bpe_vocab,
        vocab_size: loaded.vocab_size(),
        first_visual_id: loaded.first_visual_id(),
        texts: texts.len(),
    };
    tracing::info!(bpe = bpe_vocab, vocab = report.vocab_size, texts = report.texts, "trained BPE tokenizer");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let colours = ["red", "blue", "green", "yellow", "purple", "orange"];
        let shapes = ["circle", "square", "triangle", "star", "ring"];
        let mut v = Vec::new();
        for (i, c) in colours.iter().enumerate() {
            for (j, s) in shapes.iter().enumerate() {
                v.push(format!("Recolour the {c} {s} to {}.", colours[(i + j + 1) % colours.len()]));
                v.push(format!("The {s} at ({}, {}) is {c}; move it left of the star.", 8 * i, 16 * j));
            }
        }
        v
    }

    #[test]
    fn trained_tokenizer_loads_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BpeTrainConfig { merges: 300, min_frequency: 2, codebook: 64 };
        let r = train_bpe(corpus(), &cfg, dir.path()).unwrap();
        let tok = Emu3Tokenizer::from_dir(dir.path()).unwrap();
        // 256 bytes + merges (the corpus may run out of frequent pairs first), 208 + 3 specials, 64 visual tokens.
        assert!(r.bpe_vocab > BYTE_SYMBOLS && r.bpe_vocab <= BYTE_SYMBOLS + 300, "{}", r.bpe_vocab);
        assert_eq!(tok.vocab_size(), r.bpe_vocab + 208 + 3 + 64);
        assert_eq!(tok.first_visual_id() as usize, r.bpe_vocab + 211);
        assert_eq!(tok.codebook_size(), 64);
        let s = tok.special();
        assert_eq!(s.pad as usize, r.bpe_vocab);
        assert_eq!((s.bos as usize, s.eos as usize), (r.bpe_vocab + 3 + 203, r.bpe_vocab + 3 + 204));
        assert_eq!(s.img as usize, r.bpe_vocab + 208);
        for text in ["Recolour the red circle to blue.", "unseen wörds ✨ 123\n\ttabs", ""] {
            let ids = tok.encode(text).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), text);
        }
        // Merges were learned: a frequent word is a single token.
        assert_eq!(tok.encode(" circle").unwrap().len(), 1);
        let ids = tok.encode("<|image start|>1*2<|image token|><|visual token 000063|>").unwrap();
        assert_eq!(ids.first(), Some(&s.boi));
        assert_eq!(ids.last(), Some(&tok.visual_id(63).unwrap()));
    }

    #[test]
    fn training_is_deterministic() {
        let cfg = BpeTrainConfig { merges: 200, min_frequency: 1, codebook: 16 };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        train_bpe(corpus(), &cfg, a.path()).unwrap();
        train_bpe(corpus(), &cfg, b.path()).unwrap();
        let read = |d: &Path| std::fs::read(d.join(TOKENIZER_JSON)).unwrap();
        assert_eq!(read(a.path()), read(b.path()));
        // Other texts give other merges: the file depends on the data.
        let c = tempfile::tempdir().unwrap();
        train_bpe(corpus().iter().map(|t| t.to_uppercase()), &cfg, c.path()).unwrap();
        assert_ne!(read(a.path()), read(c.path()));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BpeTrainConfig { codebook: 0, ..BpeTrainConfig::default() };
        assert!(train_bpe(corpus(), &cfg, dir.path()).unwrap_err().to_string().contains("at least one visual"));
        let e = train_bpe(["", ""], &BpeTrainConfig::default(), dir.path()).unwrap_err().to_string();
        assert!(e.contains("no training text"), "{e}");
    }
}

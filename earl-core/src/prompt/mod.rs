//! EARL's prompt layouts, built directly as ids (one module shared by generation, SFT, RL and evaluation), and
//! the parser of generated responses. The layouts reproduce mair-lab/EARL, which formats strings and tokenizes them
//! (`emu3/train_image_editing/my_datasets.py` for SFT, `rl/data.py` for RL, `emu3/mllm/processing_emu3.py` for
//! evaluation):
//!
//! * image block: `boi` `"{h}*{w}"` `img` row₀ `eol` row₁ … `eol` row_{h-1} `eol` `eof` `eoi` (rows of visual tokens);
//! * edit prompt: `bos` image-block(source) instruction prefill — the instruction follows the image block with no
//!   separator, and instruction + prefill are one tokenized string (they can share a BPE piece);
//! * SFT example: prompt = `bos` image-block(source) instruction (no prefill), target = \[reasoning\] image-block(edited)
//!   `eos`, tokenized separately, labels −100 over the prompt.
//!
//! Image blocks are built from ids (no string formatting of thousands of visual tokens and re-tokenization); text
//! parts go through the tokenizer, so ids equal the reference's string path (tests cross-check both).
mod parse;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grid::CodeGrid;
use crate::tokenizer::Emu3Tokenizer;
pub use parse::{GridError, ParsedResponse};

/// Label value that the loss ignores (PyTorch's `ignore_index`, EARL's `args.ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// EARL's chain-of-thought opening. `<|start thinking|>`/`<|end thinking|>` are not special tokens of the Emu3
/// vocabulary: the reference tokenizes them as plain text, and so do we.
pub const THINK_PREFIX: &str = " Let's think step by step. <|start thinking|>";
/// EARL's chain-of-thought closing (plain text, as [`THINK_PREFIX`]).
pub const THINK_END: &str = "<|end thinking|>";
/// EARL cuts the joined chain of thought at this many characters (Unicode scalar values, as Python slicing).
pub const MAX_COT_CHARS: usize = 1750;

/// What follows the instruction in an edit prompt (EARL calls it the assistant prefill).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Prefill {
    /// `boi` + `"{h}*{w}"`: direct editing, the current reference evaluation (`processing_emu3.py`, mode E).
    #[default]
    E,
    /// `boi` only: EARL's RL configs (`assistant_prefill: "<|image start|>"`); the model writes the size itself.
    ELegacy,
    /// `" Let's think step by step. <|start thinking|>"`: reason first, then edit (mode CE).
    CE,
    /// Nothing: the model decides whether to reason (mode mixed).
    Mixed,
    /// Any literal text (tokenized with special tokens recognised, like the reference); `{h}`/`{w}` are replaced by
    /// the source grid size.
    Literal(String),
}

impl Prefill {
    /// The prefill as the reference writes it, for a source image of `h`×`w` codes.
    pub fn text(&self, h: usize, w: usize) -> String {
        match self {
            Prefill::E => format!("<|image start|>{h}*{w}"),
            Prefill::ELegacy => "<|image start|>".into(),
            Prefill::CE => THINK_PREFIX.into(),
            Prefill::Mixed => String::new(),
            // `{h}` and `{w}` stand for the source grid size, e.g. `text:<|image start|>{h}*{w}<|image token|>`.
            Prefill::Literal(s) => s.replace("{h}", &h.to_string()).replace("{w}", &w.to_string()),
        }
    }
}

impl FromStr for Prefill {
    type Err = Error;

    /// `E`, `E-legacy`, `CE`, `mixed`, or `text:<literal prefill>`.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "E" => Prefill::E,
            "E-legacy" => Prefill::ELegacy,
            "CE" => Prefill::CE,
            "mixed" => Prefill::Mixed,
            _ => match s.strip_prefix("text:") {
                Some(lit) => Prefill::Literal(lit.to_string()),
                None => {
                    return Err(Error::input(format!(
                        "unknown prefill `{s}`: expected E, E-legacy, CE, mixed or text:<literal>"
                    )))
                }
            },
        })
    }
}

impl fmt::Display for Prefill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefill::E => f.write_str("E"),
            Prefill::ELegacy => f.write_str("E-legacy"),
            Prefill::CE => f.write_str("CE"),
            Prefill::Mixed => f.write_str("mixed"),
            Prefill::Literal(s) => write!(f, "text:{s}"),
        }
    }
}

impl TryFrom<String> for Prefill {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Prefill> for String {
    fn from(p: Prefill) -> String {
        p.to_string()
    }
}

/// One supervised fine-tuning example: `labels` equals `input_ids` with the prompt masked by [`IGNORE_INDEX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftExample {
    /// Prompt and target ids.
    pub input_ids: Vec<i64>,
    /// `input_ids` with the prompt replaced by [`IGNORE_INDEX`].
    pub labels: Vec<i64>,
    /// Number of prompt ids (the masked prefix).
    pub prompt_len: usize,
}

/// Builds EARL's layouts with one tokenizer.
#[derive(Debug, Clone, Copy)]
pub struct PromptBuilder<'a> {
    tok: &'a Emu3Tokenizer,
}

impl<'a> PromptBuilder<'a> {
    /// A builder over `tok`.
    pub fn new(tok: &'a Emu3Tokenizer) -> Self {
        Self { tok }
    }

    /// The tokenizer the layouts are built with.
    pub fn tokenizer(&self) -> &'a Emu3Tokenizer {
        self.tok
    }

    /// Appends the image block of `grid` to `out`.
    pub fn push_image_block(&self, grid: &CodeGrid, out: &mut Vec<u32>) -> Result<()> {
        let s = self.tok.special();
        out.reserve(grid.h() * (grid.w() + 1) + 8);
        out.push(s.boi);
        out.extend(self.tok.encode(&format!("{}*{}", grid.h(), grid.w()))?);
        out.push(s.img);
        for row in grid.rows() {
            for &c in row {
                out.push(self.tok.visual_id(c)?);
            }
            out.push(s.eol);
        }
        out.extend([s.eof, s.eoi]);
        Ok(())
    }

    /// The image block of `grid`.
    pub fn image_block(&self, grid: &CodeGrid) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        self.push_image_block(grid, &mut out)?;
        Ok(out)
    }

    /// `bos` + image block(source) + instruction + prefill: the prompt of editing (generation, RL, evaluation).
    pub fn edit_prompt(&self, source: &CodeGrid, instruction: &str, prefill: &Prefill) -> Result<Vec<u32>> {
        let mut out = vec![self.tok.special().bos];
        self.push_image_block(source, &mut out)?;
        // One string, as the reference tokenizes `instruction + prefill` together.
        out.extend(self.tok.encode(&format!("{instruction}{}", prefill.text(source.h(), source.w())))?);
        Ok(out)
    }

    /// An SFT example. `reasoning`: `None` trains direct editing (target = edited image block + `eos`);
    /// `Some(steps)` trains reasoning first: `" Let's think step by step. <|start thinking|> {k1}: {v1} {k2}: {v2}<|end
    /// thinking|>"` + image block + `eos`, values trimmed and the joined `k: v` text cut at [`MAX_COT_CHARS`]
    /// characters (EARL `my_datasets.py`). An empty `steps` gives the reference's empty thinking span.
    pub fn sft_example(
        &self,
        source: &CodeGrid,
        instruction: &str,
        edited: &CodeGrid,
        reasoning: Option<&[(String, String)]>,
    ) -> Result<SftExample> {
        let mut ids = vec![self.tok.special().bos];
        self.push_image_block(source, &mut ids)?;
        ids.extend(self.tok.encode(instruction)?);
        let prompt_len = ids.len();
        if let Some(steps) = reasoning {
            ids.extend(self.tok.encode(&reasoning_text(steps))?);
        }
        self.push_image_block(edited, &mut ids)?;
        ids.push(self.tok.special().eos);
        let input_ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let labels =
            input_ids.iter().enumerate().map(|(i, &t)| if i < prompt_len { IGNORE_INDEX } else { t }).collect();
        Ok(SftExample { input_ids, labels, prompt_len })
    }

    /// Parses generated ids (the response only, without the prompt); see [`ParsedResponse`].
    pub fn parse_response<T: Copy + Into<i64>>(&self, ids: &[T], expected: Option<(usize, usize)>) -> ParsedResponse {
        parse::parse(self.tok, ids, expected)
    }
}

/// The chain-of-thought text of an SFT target, before the image block.
pub fn reasoning_text(steps: &[(String, String)]) -> String {
    let joined = steps.iter().map(|(k, v)| format!("{k}: {}", v.trim())).collect::<Vec<_>>().join(" ");
    let cut: String = joined.chars().take(MAX_COT_CHARS).collect();
    if cut.len() < joined.len() {
        tracing::warn!(chars = joined.chars().count(), "chain of thought cut to {MAX_COT_CHARS} characters");
    }
    format!("{THINK_PREFIX} {cut}{THINK_END}")
}

#[cfg(test)]
mod tests;

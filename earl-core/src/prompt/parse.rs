//! Parser of generated responses: the reasoning text before the image, the image header (`boi` `"{h}*{w}"`) if
//! the response wrote it, and the image grid — or the first place where the response departs from the image block
//! layout. Stricter than the reference (which regex-splits the decoded text and fails only when rows are ragged):
//! a response is a valid image only if it is exactly the block the grid constraint allows.
use crate::grid::CodeGrid;
use crate::tokenizer::Emu3Tokenizer;

/// Why a response does not hold a well-formed image block. Positions index the response ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    #[error("no <|image token|> in the response")]
    /// The response has no `img` token, so no image.
    MissingImg,
    #[error("the response ends inside the image at position {pos} after {rows} complete rows")]
    /// The response ends before the image's `eof`.
    Truncated {
        /// Response length (the position just past the last id).
        pos: usize,
        /// Complete rows before the end.
        rows: usize,
    },
    #[error("position {pos}: token {id} is not a visual token, <|extra_200|> (eol) or <|extra_201|> (eof) (row {row}, column {col})")]
    /// A token the layout does not allow there: not visual, not `eol`, or an `eof` inside a row.
    UnexpectedToken {
        /// Position of the token.
        pos: usize,
        /// The token id.
        id: i64,
        /// Grid row it fell in (0-based).
        row: usize,
        /// Grid column it fell in (0-based).
        col: usize,
    },
    #[error("position {pos}: row {row} has {found} visual tokens, expected {expected}")]
    /// A row whose visual-token count differs from the grid width.
    RowLength {
        /// Position of the row's `eol`, or of the visual token one past the width.
        pos: usize,
        /// The row (0-based).
        row: usize,
        /// Grid width.
        expected: usize,
        /// Visual tokens in the row (width + 1 when it overflows).
        found: usize,
    },
    #[error("position {pos}: the image has more than the expected {expected} rows")]
    /// More rows than the grid height.
    TooManyRows {
        /// Position where the extra row starts.
        pos: usize,
        /// Grid height.
        expected: usize,
    },
    #[error("position {pos}: <|extra_201|> (eof) after {found} rows, expected {expected}")]
    /// `eof` before the grid height was reached.
    TooFewRows {
        /// Position of the `eof`.
        pos: usize,
        /// Grid height.
        expected: usize,
        /// Rows written.
        found: usize,
    },
    #[error("the image block is empty (no visual token after <|image token|>)")]
    /// `img` followed by no visual token.
    Empty,
    #[error("position {pos}: expected <|image end|> after eof, found {found:?}")]
    /// `eof` not followed by `eoi`.
    MissingEoi {
        /// Position after the `eof`.
        pos: usize,
        /// The token found there; `None` at the end of the response.
        found: Option<i64>,
    },
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    /// Decoded text before the image header (`boi "{h}*{w}"`) or, without a header, before `img`; all the text
    /// when there is no image.
    pub reasoning: String,
    /// The size the response declared in its header, when it wrote one.
    pub declared_size: Option<(usize, usize)>,
    /// The image, or why it is not a valid image.
    pub image: Result<CodeGrid, GridError>,
    /// Index just past `eoi` when the image is valid.
    pub image_end: Option<usize>,
    /// Whether `eos` directly follows `eoi`.
    pub eos_after_image: bool,
}

/// `expected` is the grid size the constraint enforced (the source image's); without it, the declared size, and
/// without that, the first row's length and the number of rows up to `eof`.
pub(super) fn parse<T: Copy + Into<i64>>(
    tok: &Emu3Tokenizer,
    ids: &[T],
    expected: Option<(usize, usize)>,
) -> ParsedResponse {
    let ids: Vec<i64> = ids.iter().map(|&t| t.into()).collect();
    let s = *tok.special();
    let img_pos = ids.iter().position(|&t| t == s.img as i64);
    let text_of = |r: &[i64]| -> String {
        // Out-of-vocabulary ids cannot come from the model; render them visibly rather than fail the parse.
        let valid: Vec<u32> = r.iter().filter_map(|&t| u32::try_from(t).ok()).collect();
        tok.decode(&valid).unwrap_or_else(|e| format!("<undecodable: {e}>"))
    };
    let Some(p) = img_pos else {
        return ParsedResponse {
            reasoning: text_of(&ids),
            declared_size: None,
            image: Err(GridError::MissingImg),
            image_end: None,
            eos_after_image: false,
        };
    };
    // The header: `boi "{h}*{w}"` right before img (prefill E-legacy leaves only `"{h}*{w}"`, at the very start).
    let boi = ids[..p].iter().rposition(|&t| t == s.boi as i64);
    let header_start = boi.map_or(0, |b| b + 1);
    let declared_size = parse_size(&text_of(&ids[header_start..p]));
    let reasoning = match (declared_size, boi) {
        (Some(_), Some(b)) => text_of(&ids[..b]),
        (Some(_), None) => String::new(),
        (None, Some(b)) if b + 1 == p => text_of(&ids[..b]),
        (None, _) => text_of(&ids[..p]),
    };
    let (image, image_end) = match parse_grid(tok, &ids, p + 1, expected.or(declared_size)) {
        Ok((g, end)) => (Ok(g), Some(end)),
        Err(e) => (Err(e), None),
    };
    let eos_after_image = image_end.is_some_and(|e| ids.get(e) == Some(&(s.eos as i64)));
    ParsedResponse { reasoning, declared_size, image, image_end, eos_after_image }
}

/// `"{h}*{w}"` with positive decimal sizes.
fn parse_size(text: &str) -> Option<(usize, usize)> {
    let (h, w) = text.split_once('*')?;
    let num =
        |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<usize>().ok()).flatten();
    let (h, w) = (num(h)?, num(w)?);
    (h > 0 && w > 0).then_some((h, w))
}

/// Reads rows from `start` (just after img) to `eoi`; returns the grid and the index past `eoi`.
fn parse_grid(
    tok: &Emu3Tokenizer,
    ids: &[i64],
    start: usize,
    expected: Option<(usize, usize)>,
) -> Result<(CodeGrid, usize), GridError> {
    let s = *tok.special();
    let (eol, eof, eoi) = (s.eol as i64, s.eof as i64, s.eoi as i64);
    let mut codes = Vec::new();
    let mut width = expected.map(|(_, w)| w);
    let (mut rows, mut col, mut pos) = (0usize, 0usize, start);
    loop {
        let Some(&id) = ids.get(pos) else { return Err(GridError::Truncated { pos, rows }) };
        if let Some(code) = u32::try_from(id).ok().and_then(|i| tok.visual_code(i)) {
            if let Some((h, _)) = expected {
                if rows == h {
                    return Err(GridError::TooManyRows { pos, expected: h });
                }
            }
            if width.is_some_and(|w| col == w) {
                return Err(GridError::RowLength { pos, row: rows, expected: col, found: col + 1 });
            }
            codes.push(code);
            col += 1;
        } else if id == eol {
            let w = *width.get_or_insert(col);
            if col != w || col == 0 {
                return Err(if col == 0 && rows == 0 {
                    GridError::Empty
                } else {
                    GridError::RowLength { pos, row: rows, expected: w, found: col }
                });
            }
            rows += 1;
            col = 0;
        } else if id == eof && col == 0 {
            if rows == 0 {
                return Err(GridError::Empty);
            }
            if let Some((h, _)) = expected {
                if rows != h {
                    return Err(GridError::TooFewRows { pos, expected: h, found: rows });
                }
            }
            return match ids.get(pos + 1) {
                Some(&t) if t == eoi => {
                    let w = width.unwrap_or(col);
                    // Never fails: rows > 0 and each row closed with w > 0 codes.
                    let grid = CodeGrid::new(rows, w, codes).map_err(|_| GridError::Empty)?;
                    Ok((grid, pos + 2))
                }
                other => Err(GridError::MissingEoi { pos: pos + 1, found: other.copied() }),
            };
        } else {
            return Err(GridError::UnexpectedToken { pos, id, row: rows, col });
        }
        pos += 1;
    }
}

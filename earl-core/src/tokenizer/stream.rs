//! Incremental decoding for token-by-token output (progress display, streaming): a byte-level BPE token can end
//! in the middle of a multi-byte UTF-8 character, so the bytes of an incomplete trailing sequence are held back
//! until the next token completes them. Invalid bytes become U+FFFD exactly as in [`super::Emu3Tokenizer::decode`],
//! so the concatenated pieces always equal the one-shot decode of all ids.
use super::Emu3Tokenizer;
use crate::error::Result;

/// Streaming decoder state for one sequence.
#[derive(Debug, Default, Clone)]
pub struct DecodeStream {
    pending: Vec<u8>,
}

impl DecodeStream {
    /// A stream with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one id; returns the text that became complete (possibly empty).
    pub fn step(&mut self, tok: &Emu3Tokenizer, id: u32) -> Result<String> {
        self.pending.extend_from_slice(tok.token_bytes(id)?);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return Ok(out);
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe: the prefix up to `valid_up_to` is valid UTF-8 by definition.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return Ok(out);
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the sequence: a still incomplete trailing sequence becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

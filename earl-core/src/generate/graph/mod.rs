//! The graph decode engine: the same generation as [`super::engine`] (same inputs, same [`GeneratedSample`]s), with
//! every decoding step replayed from a CUDA graph captured once per batch-size bucket. The eager path stays the
//! reference; [`super::Engine`] selects between them.
//!
//! How a batch runs: the prompts are left-padded and prefilled eagerly into one KV cache, exactly as the eager
//! engine does. The rows (request × sample) are then cut into chunks of at most the largest bucket; a chunk between
//! two buckets is padded up to the next one with dummy rows (copies of a real row whose outputs are dropped). Each
//! chunk's rows are copied into the bucket's static buffers ([`step::StepBuffers`]) and decoded by replaying the
//! bucket's graph, one step per replay: sampling (grid mask from device state, warp, softmax, inverse CDF of the
//! row's uniform), then the decoder on the sampled token, with positions, slot validity and the cache write index
//! advanced on the device. The host uploads each row's next `read_every` uniforms (drawn ahead from the row's own
//! ChaCha stream, which does not depend on the logits) and reads back the sampled ids once per block of
//! `read_every` steps; finished rows keep running in the graph and their extra tokens are discarded, so the result
//! is the same as checking every step. A row's stream is keyed by (seed, request key, sample), never by its place
//! in a chunk, and its numbers go through the same ops as the eager path's.
mod decoder;
mod grid;
mod sample;
mod step;
#[cfg(test)]
mod tests;

pub use decoder::GraphDecoder;

use super::engine::{GeneratedSample, GenerationConfig, GenerationRequest};
use crate::error::{Error, Result};
use crate::model::Emu3ForCausalLM;

/// The batch-size buckets captured by default (issue 14: powers of two up to 128).
pub const DEFAULT_BUCKETS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// Settings of the graph engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphConfig {
    /// Batch sizes a step is captured for, strictly increasing; larger batches are split across them.
    pub buckets: Vec<usize>,
    /// Decoding steps between two host reads of the sampled ids (finished-row checks).
    pub read_every: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig { buckets: DEFAULT_BUCKETS.to_vec(), read_every: 16 }
    }
}

impl GraphConfig {
    /// Checks the buckets are positive and strictly increasing and `read_every` is positive.
    pub fn validate(&self) -> Result<()> {
        if self.buckets.is_empty() || self.buckets[0] == 0 || self.buckets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::input(format!(
                "graph buckets must be positive and strictly increasing, got {:?}",
                self.buckets
            )));
        }
        if self.read_every == 0 {
            return Err(Error::input("graph read_every must be positive"));
        }
        Ok(())
    }
}

/// One chunk of a batch: rows `start .. start + rows` run in a bucket of `bucket` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub(crate) start: usize,
    pub(crate) rows: usize,
    pub(crate) bucket: usize,
}

/// Cuts `n` rows into full chunks of the largest bucket, then the rest in the smallest bucket that holds it.
pub(crate) fn plan_chunks(n: usize, buckets: &[usize]) -> Vec<Chunk> {
    let largest = *buckets.last().expect("validated buckets");
    let mut out = Vec::new();
    let mut start = 0;
    while n - start > largest {
        out.push(Chunk { start, rows: largest, bucket: largest });
        start += largest;
    }
    if n > start {
        let rows = n - start;
        let bucket = *buckets.iter().find(|&&b| b >= rows).expect("rest fits the largest bucket");
        out.push(Chunk { start, rows, bucket });
    }
    out
}

/// [`super::generate_keyed`] on the graph engine, with the default buckets. The graphs are captured for this call
/// and dropped after it; a caller that generates repeatedly keeps a [`GraphDecoder`] instead.
pub fn generate_keyed(
    model: &Emu3ForCausalLM,
    requests: &[GenerationRequest],
    stream_keys: &[u64],
    cfg: &GenerationConfig,
    on_step: &mut dyn FnMut(usize, usize),
) -> Result<Vec<GeneratedSample>> {
    GraphDecoder::new(model, GraphConfig::default())?.generate_keyed(requests, stream_keys, cfg, on_step)
}

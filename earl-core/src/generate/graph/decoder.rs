//! [`GraphDecoder`]: owns the captured step of every bucket it has met (with its static buffers) and runs a batch
//! through them: eager prefill, then chunk by chunk, blocks of graph replays between host reads. A step is
//! recaptured only when what it bakes in changes (capacity, sampling, grid ids, block length).
use std::collections::BTreeMap;

use earl_torch_sys::{CudaGraph, CudaStream, GraphPool, StreamGuard};
use rand_chacha::ChaCha20Rng;
use tch::{Device, Tensor};

use super::sample::draw_uniforms;
use super::step::{StepBuffers, StepKey};
use super::{plan_chunks, Chunk, GraphConfig};
use crate::collate::LeftPadded;
use crate::error::{guard, Error, Result};
use crate::generate::constraint::RowConstraint;
use crate::generate::engine::{
    response_budget, validate, validate_keys, FinishReason, GeneratedSample, GenerationConfig, GenerationRequest,
};
use crate::generate::sampling::sample_stream;
use crate::kv_cache::KvCache;
use crate::model::{Emu3ForCausalLM, ForwardArgs};

const CONTEXT: &str = "the graph decode engine";

fn sys(e: earl_torch_sys::Error) -> Error {
    Error::torch(CONTEXT, e)
}

/// The CUDA side: the stream every step of the engine runs on (capture needs a non-default one) and the memory
/// pool the buckets' graphs share (they never run concurrently, and their outputs live in static buffers).
struct Cuda {
    stream: CudaStream,
    pool: GraphPool,
}

/// One bucket: its graph (dropped first) and buffers.
struct Slot {
    graph: Option<CudaGraph>,
    bufs: StepBuffers,
}

/// The graph decode engine for one model. Without CUDA it cannot be built ([`GraphDecoder::new`] says so); the
/// CPU tests run the same steps uncaptured.
pub struct GraphDecoder<'m> {
    model: &'m Emu3ForCausalLM,
    cfg: GraphConfig,
    /// `None`: steps run eagerly instead of being replayed (tests on the CPU).
    cuda: Option<Cuda>,
    slots: BTreeMap<usize, Slot>,
}

/// The prefilled batch a chunk is cut from.
struct Batch<'a> {
    cfg: &'a GenerationConfig,
    cache: KvCache,
    last: Tensor,
    /// (request, sample) and stream key of each row.
    rows: Vec<(usize, usize, u64)>,
    constraints: Vec<Option<RowConstraint>>,
    budget: Vec<usize>,
}

impl<'m> GraphDecoder<'m> {
    /// An engine for `model`, which must be on a CUDA device.
    pub fn new(model: &'m Emu3ForCausalLM, cfg: GraphConfig) -> Result<Self> {
        cfg.validate()?;
        let Device::Cuda(device) = model.device() else {
            return Err(super::super::Engine::needs_cuda(model.device()));
        };
        let stream = CudaStream::from_pool(device, false).map_err(sys)?;
        let pool = GraphPool::new().map_err(sys)?;
        Ok(GraphDecoder { model, cfg, cuda: Some(Cuda { stream, pool }), slots: BTreeMap::new() })
    }

    /// An engine whose steps run uncaptured, on any device: the CPU tests of the whole driver.
    #[cfg(test)]
    pub(crate) fn uncaptured(model: &'m Emu3ForCausalLM, cfg: GraphConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(GraphDecoder { model, cfg, cuda: None, slots: BTreeMap::new() })
    }

    /// As [`crate::generate::generate_keyed`], through the captured steps. `on_step(step, live)` follows each
    /// chunk's steps in turn (`live` counts the chunk's live rows and the rows of later chunks); for a batch within
    /// the largest bucket that is exactly the eager engine's sequence of calls.
    pub fn generate_keyed(
        &mut self,
        requests: &[GenerationRequest],
        stream_keys: &[u64],
        cfg: &GenerationConfig,
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<GeneratedSample>> {
        if let Some(c) = &self.cuda {
            // The engine's stream does not wait for the caller's on its own: work queued there (weights created
            // on the device, an optimizer step) must be done before the prefill reads it.
            CudaStream::current(c.stream.device()).and_then(|s| s.synchronize()).map_err(sys)?;
        }
        let _stream = self.cuda.as_ref().map(|c| StreamGuard::new(c.stream)).transpose().map_err(sys)?;
        let _no_grad = tch::no_grad_guard();
        let _span = tracing::info_span!("generate_graph", requests = requests.len()).entered();
        guard(CONTEXT, || {
            let batch = self.prefill(requests, stream_keys, cfg)?;
            let mut out: Vec<GeneratedSample> = batch
                .rows
                .iter()
                .map(|&(request, sample, _)| GeneratedSample {
                    request,
                    sample,
                    tokens: Vec::new(),
                    finish: FinishReason::Length,
                })
                .collect();
            for chunk in plan_chunks(batch.rows.len(), &self.cfg.buckets) {
                self.run_chunk(&batch, chunk, &mut out, on_step)?;
            }
            Ok(out)
        })
    }

    /// Validation and the eager prefill, as [`crate::generate::generate_keyed`] does them.
    fn prefill<'a>(
        &self,
        requests: &[GenerationRequest],
        stream_keys: &[u64],
        cfg: &'a GenerationConfig,
    ) -> Result<Batch<'a>> {
        validate_keys(requests, stream_keys)?;
        let model = self.model;
        validate(model, requests, cfg)?;
        let (n, device) = (cfg.samples_per_request, model.device());
        let prompts: Vec<&[i64]> = requests.iter().map(|r| r.prompt.as_slice()).collect();
        let LeftPadded { input_ids: ids, attention_mask: mask, .. } = LeftPadded::new(&prompts, cfg.pad_id, device)?;
        let len = ids.size()[1] + cfg.max_new_tokens as i64;
        KvCache::check_fits(&model.cfg, (requests.len() * n) as i64, len, model.kind(), device)?;
        let mut cache = model.new_cache(requests.len() as i64, len)?;
        let args = ForwardArgs { attention_mask: Some(&mask), logits_to_keep: 1, ..Default::default() };
        let last = model.forward(&ids, &args, Some(&mut cache))?.squeeze_dim(1); // [R, V]
        let rows: Vec<(usize, usize, u64)> =
            (0..requests.len()).flat_map(|r| (0..n).map(move |j| (r, j, stream_keys[r]))).collect();
        let mut constraints = Vec::with_capacity(rows.len());
        for &(r, _, _) in &rows {
            let req = &requests[r];
            constraints.push(match (cfg.image_tokens, req.grid) {
                (Some(tokens), Some((h, w))) => {
                    let mut rc = RowConstraint::new(h, w)?;
                    for &p in &req.prompt[req.prompt.len() - req.prefill_len..] {
                        rc.push(p, &tokens);
                    }
                    Some(rc)
                }
                _ => None,
            });
        }
        let budget = rows
            .iter()
            .map(|&(r, _, _)| response_budget(requests[r].prompt.len(), cfg.max_new_tokens, cfg.context_size))
            .collect();
        Ok(Batch { cfg, cache, last, rows, constraints, budget })
    }

    /// The bucket's slot for `key`, built (and captured) unless it exists with the same key.
    fn slot(&mut self, key: StepKey) -> Result<&Slot> {
        let bucket = key.batch as usize;
        if !matches!(self.slots.get(&bucket), Some(s) if s.bufs.key == key) {
            self.slots.remove(&bucket); // frees the old graph and buffers before the new ones are allocated
            let bufs = StepBuffers::new(self.model, key);
            let graph = match &self.cuda {
                Some(cuda) => Some(capture(self.model, &bufs, cuda)?),
                None => None,
            };
            tracing::debug!(bucket, capacity = key.capacity, captured = graph.is_some(), "graph decode step ready");
            self.slots.insert(bucket, Slot { graph, bufs });
        }
        Ok(&self.slots[&bucket])
    }

    /// Decodes one chunk to the end: blocks of steps, each followed by one host read.
    fn run_chunk(
        &mut self,
        batch: &Batch,
        chunk: Chunk,
        out: &mut [GeneratedSample],
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let cfg = batch.cfg;
        let block = self.cfg.read_every.min(cfg.max_new_tokens);
        let key = StepKey {
            batch: chunk.bucket as i64,
            capacity: batch.cache.capacity(),
            block: block as i64,
            sampling: cfg.sampling,
            image_tokens: cfg.image_tokens,
        };
        let model = self.model;
        let slot = self.slot(key)?;
        // Bucket row b holds batch row `member[b]`; dummy rows repeat the chunk's last real row.
        let member: Vec<usize> = (0..chunk.bucket).map(|b| chunk.start + b.min(chunk.rows - 1)).collect();
        let requests: Vec<i64> = member.iter().map(|&i| batch.rows[i].0 as i64).collect();
        slot.bufs.load(&batch.cache, &batch.last, &requests);
        slot.bufs.grid.load(&member.iter().map(|&i| batch.constraints[i].as_ref()).collect::<Vec<_>>());
        let mut streams: Vec<ChaCha20Rng> = (chunk.start..chunk.start + chunk.rows)
            .map(|i| sample_stream(cfg.seed, batch.rows[i].2, batch.rows[i].1 as u64))
            .collect();
        let mut progress =
            Progress { chunk, block, later: batch.rows.len() - chunk.start - chunk.rows, live: vec![true; chunk.rows] };
        let mut step = 0;
        while step < cfg.max_new_tokens && progress.live.contains(&true) {
            let steps = block.min(cfg.max_new_tokens - step);
            slot.bufs.begin_block(&block_uniforms(&mut streams, steps, block, chunk.bucket, &cfg.sampling));
            for _ in 0..steps {
                match &slot.graph {
                    Some(g) => g.replay().map_err(sys)?,
                    None => slot.bufs.step(model),
                }
            }
            let host = Tensor::cat(&[&slot.bufs.tokens, &slot.bufs.bad], 1).to_device(Device::Cpu);
            let host = Vec::<i64>::try_from(host.flatten(0, -1))?; // row b: K tokens, then K flags
            progress.absorb(&host, batch, step, steps, out, on_step)?;
            step += steps;
        }
        Ok(())
    }
}

/// Where a chunk's rows stand between host reads.
struct Progress {
    chunk: Chunk,
    /// Columns of the device block.
    block: usize,
    /// Rows of the chunks after this one (all still to run).
    later: usize,
    /// Per real row of the chunk: still generating.
    live: Vec<bool>,
}

impl Progress {
    /// Hands a block read back (`host`: per bucket row, `block` tokens then `block` non-finite flags) to the live
    /// rows step by step, as the eager engine would have: a row ends at an eos id or its budget and its later tokens
    /// are dropped; `on_step` follows every step until no row is live.
    fn absorb(
        &mut self,
        host: &[i64],
        batch: &Batch,
        first_step: usize,
        steps: usize,
        out: &mut [GeneratedSample],
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let block = self.block;
        for c in 0..steps {
            for (i, alive) in self.live.iter_mut().enumerate().filter(|(_, a)| **a) {
                let (o, k) = (self.chunk.start + i, 2 * block * i);
                if host[k + block + c] != 0 {
                    // Named by its stream key, as the eager sampler names it.
                    let (_, sample, key) = batch.rows[o];
                    return Err(Error::input(format!(
                        "non-finite logits (NaN or +Inf, or no finite value) for request {key}, sample \
                         {sample} at decoding step {}: the model's weights or inputs are damaged \
                         (--check-weights checks the weights)",
                        first_step + c
                    )));
                }
                let tok = host[k + c];
                out[o].tokens.push(tok);
                if batch.cfg.eos_ids.contains(&tok) {
                    out[o].finish = FinishReason::Stop;
                    *alive = false;
                } else if out[o].tokens.len() >= batch.budget[o] {
                    *alive = false;
                }
            }
            let now = self.live.iter().filter(|&&a| a).count();
            on_step(first_step + c + 1, now + self.later);
            if now == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// The uniforms of one block, [bucket × block] row-major: `steps` draws of each real row's stream, zeros for the
/// unused columns and the dummy rows (nothing when greedy, which draws nothing).
fn block_uniforms(
    streams: &mut [ChaCha20Rng],
    steps: usize,
    block: usize,
    bucket: usize,
    sampling: &crate::generate::SamplingParams,
) -> Vec<f64> {
    if sampling.is_greedy() {
        return Vec::new();
    }
    let mut u = vec![0.0; bucket * block];
    for (b, s) in streams.iter_mut().enumerate() {
        u[b * block..b * block + steps].copy_from_slice(&draw_uniforms(std::slice::from_mut(s), steps));
    }
    u
}

/// Warms the step up on the engine's stream (lazy initialisation must not land in the graph), rewinds the block
/// column, then captures the step into the shared pool.
fn capture(model: &Emu3ForCausalLM, bufs: &StepBuffers, cuda: &Cuda) -> Result<CudaGraph> {
    bufs.step(model);
    bufs.begin_block(&vec![0.0; (bufs.key.batch * bufs.key.block) as usize]);
    cuda.stream.synchronize().map_err(sys)?;
    let (graph, ()) = CudaGraph::capture(Some(&cuda.pool), &cuda.stream, || bufs.step(model)).map_err(sys)?;
    Ok(graph)
}

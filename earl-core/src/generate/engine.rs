//! The generation loop: left-pads a batch of prompts, prefills them once into a preallocated KV cache, forks the
//! cache for n samples per prompt, then decodes one token per step under the grid constraint until every row has
//! stopped (an eos id) or used up its budget (`max_new_tokens`, less where `context_size` leaves less room: see
//! [`response_budget`]). Finished rows leave the batch (their cache rows are dropped) so late steps only pay for live
//! rows. Same inputs and seed give the same tokens on the same device; a row's tokens do not depend on the other
//! requests of the batch (see [`super::sampling`]).
use tch::Tensor;

use super::constraint::{GridConstraint, ImageTokens, RowConstraint};
use super::sampling::{SamplingParams, TokenSampler};
use crate::collate::LeftPadded;
use crate::error::{Error, Result};
use crate::model::{Emu3ForCausalLM, ForwardArgs};

/// One prompt to continue.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// Prompt ids, ending with the assistant prefill (if any).
    pub prompt: Vec<i64>,
    /// How many trailing ids of `prompt` are the assistant prefill, i.e. already part of the response (the grid
    /// constraint counts them).
    pub prefill_len: usize,
    /// Grid (height, width) the response image must have; `None` = unconstrained.
    pub grid: Option<(i64, i64)>,
}

/// Settings shared by the whole batch.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    /// Most new tokens per row (the prefill not counted).
    pub max_new_tokens: usize,
    /// Completions per request, sampled from one shared prefill.
    pub samples_per_request: usize,
    /// Temperature, top-p and top-k.
    pub sampling: SamplingParams,
    /// Sampling seed; each (request, sample) row draws from its own stream derived from it.
    pub seed: u64,
    /// Ids that end a response.
    pub eos_ids: Vec<i64>,
    /// Special ids the grid constraint needs; `None` turns the constraint off for every row.
    pub image_tokens: Option<ImageTokens>,
    /// Id written after a row has finished (for rectangular outputs).
    pub pad_id: i64,
    /// Limit on prompt + response per row (vLLM's `max_model_len`, the reference's `model_context_size`); `None` =
    /// only `max_new_tokens`. A prompt longer than this is an error.
    pub context_size: Option<usize>,
    /// Allow prompt + response beyond the model's `max_position_embeddings` (positions it was not trained on, and a
    /// cache sized for them). Off: that is an error before anything is allocated.
    pub allow_overlong: bool,
}

/// The new tokens a row with a `prompt_len`-token prompt may produce: `max_new_tokens`, and with a context size
/// `c` at most `c + 1 − prompt_len` — 0 when the prompt alone is longer than `c`. The `+ 1` is vLLM's rule (the
/// V0 engine the reference's rollouts run on ends a sequence once prompt + output *exceeds* `max_model_len`): the
/// last sampled token is never fed back, so the model still sees at most `c` positions.
pub fn response_budget(prompt_len: usize, max_new_tokens: usize, context_size: Option<usize>) -> usize {
    match context_size {
        None => max_new_tokens,
        Some(c) if prompt_len > c => 0,
        Some(c) => max_new_tokens.min(c + 1 - prompt_len),
    }
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An eos id was produced.
    Stop,
    /// The row's budget (`max_new_tokens` or the context size) was used up without eos.
    Length,
}

impl FinishReason {
    /// The name written in logs and episode dumps (`stop`, `length`).
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// One completion.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedSample {
    /// Index of the request this completion continues.
    pub request: usize,
    /// Index of the sample among that request's completions.
    pub sample: usize,
    /// Generated ids (the prefill excluded), eos included when it stopped.
    pub tokens: Vec<i64>,
    /// Why it ended.
    pub finish: FinishReason,
}

/// Generates `samples_per_request` completions for every request. `on_step(step, live_rows)` is called after
/// every decoding step (progress bars live in the caller). Request `r`'s streams are keyed by `r` (its index in
/// this batch); [`generate_keyed`] keys them by the caller's own ids.
pub fn generate(
    model: &Emu3ForCausalLM,
    requests: &[GenerationRequest],
    cfg: &GenerationConfig,
    on_step: &mut dyn FnMut(usize, usize),
) -> Result<Vec<GeneratedSample>> {
    generate_keyed(model, requests, &batch_keys(requests.len()), cfg, on_step)
}

/// One stream key per request, each fitting the 32 bits the stream id gives it (both engines check this).
pub(super) fn validate_keys(requests: &[GenerationRequest], stream_keys: &[u64]) -> Result<()> {
    if stream_keys.len() != requests.len() {
        return Err(Error::input(format!("{} stream keys for {} requests", stream_keys.len(), requests.len())));
    }
    if let Some(k) = stream_keys.iter().find(|&&k| k > u64::from(u32::MAX)) {
        return Err(Error::input(format!("stream key {k} does not fit in 32 bits")));
    }
    Ok(())
}

/// The stream keys of a batch keyed by position: request `r` is key `r`.
pub(crate) fn batch_keys(n: usize) -> Vec<u64> {
    (0..n as u64).collect()
}

/// As [`generate`], with request `r`'s sampling streams keyed by `stream_keys[r]` instead of its batch index: the
/// stream of (request `r`, sample `j`) is `sample_stream(seed, stream_keys[r], j)`. `earl eval run` keys each
/// sample by its dataset row, so that its tokens do not depend on which other rows share its batch, on `--limit`
/// or on a resume. Keys must fit in 32 bits (the stream id packs key and sample) and be distinct.
pub fn generate_keyed(
    model: &Emu3ForCausalLM,
    requests: &[GenerationRequest],
    stream_keys: &[u64],
    cfg: &GenerationConfig,
    on_step: &mut dyn FnMut(usize, usize),
) -> Result<Vec<GeneratedSample>> {
    validate_keys(requests, stream_keys)?;
    let _span = tracing::info_span!("generate", requests = requests.len(), n = cfg.samples_per_request).entered();
    let _no_grad = tch::no_grad_guard();
    validate(model, requests, cfg)?;
    let n = cfg.samples_per_request;
    let device = model.device();

    // Left-padded prompt batch [R, T].
    let prompts: Vec<&[i64]> = requests.iter().map(|r| r.prompt.as_slice()).collect();
    let LeftPadded { input_ids: ids, attention_mask: mask, .. } = LeftPadded::new(&prompts, cfg.pad_id, device)?;
    let (r_count, t_max) = (requests.len() as i64, ids.size()[1] as usize);

    // Prefill once per request, then fork the cache: row r·n + j is request r, sample j. The forked size is what
    // must fit, so it is checked before the prefill.
    let len = (t_max + cfg.max_new_tokens) as i64;
    crate::kv_cache::KvCache::check_fits(&model.cfg, r_count * n as i64, len, model.kind(), device)?;
    let mut cache = model.new_cache(r_count, (t_max + cfg.max_new_tokens) as i64)?;
    let args = ForwardArgs { attention_mask: Some(&mask), logits_to_keep: 1, ..Default::default() };
    let last = model.forward(&ids, &args, Some(&mut cache))?.squeeze_dim(1); // [R, V]
    let fork = |t: &Tensor| t.repeat_interleave_self_int(n as i64, 0, None);
    let mut logits = if n > 1 { fork(&last) } else { last };
    if n > 1 {
        cache.repeat_rows(n as i64)?;
    }

    let rows: Vec<(usize, usize)> = (0..requests.len()).flat_map(|r| (0..n).map(move |j| (r, j))).collect();
    let stream_ids: Vec<(u64, u64)> = rows.iter().map(|&(r, j)| (stream_keys[r], j as u64)).collect();
    let mut sampler = TokenSampler::new(cfg.sampling, cfg.seed, &stream_ids)?;
    let mut constraint = cfg
        .image_tokens
        .map(|tokens| -> Result<GridConstraint> {
            let mut c = GridConstraint { tokens, rows: Vec::with_capacity(rows.len()) };
            for &(r, _) in &rows {
                let req = &requests[r];
                let row = match req.grid {
                    Some((h, w)) => {
                        let mut rc = RowConstraint::new(h, w)?;
                        for &p in &req.prompt[req.prompt.len() - req.prefill_len..] {
                            rc.push(p, &tokens);
                        }
                        Some(rc)
                    }
                    None => None,
                };
                c.rows.push(row);
            }
            Ok(c)
        })
        .transpose()?;

    let mut out: Vec<GeneratedSample> = rows
        .iter()
        .map(|&(request, sample)| GeneratedSample { request, sample, tokens: Vec::new(), finish: FinishReason::Length })
        .collect();
    let budget: Vec<usize> = rows
        .iter()
        .map(|&(r, _)| response_budget(requests[r].prompt.len(), cfg.max_new_tokens, cfg.context_size))
        .collect();
    let mut live: Vec<usize> = (0..rows.len()).collect(); // batch row → index into `out`
    for step in 0..cfg.max_new_tokens {
        let masked = match &constraint {
            Some(c) => c.apply(&logits),
            None => logits.shallow_clone(),
        };
        let next = sampler.sample(&masked)?;
        let mut keep = Vec::with_capacity(live.len());
        for (b, (&o, &tok)) in live.iter().zip(&next).enumerate() {
            out[o].tokens.push(tok);
            if let Some(c) = constraint.as_mut() {
                c.push(b, tok);
            }
            if cfg.eos_ids.contains(&tok) {
                out[o].finish = FinishReason::Stop;
            } else if out[o].tokens.len() < budget[o] {
                keep.push(b);
            }
        }
        on_step(step + 1, keep.len());
        if keep.is_empty() || step + 1 == cfg.max_new_tokens {
            break;
        }
        let mut next_ids: Vec<i64> = next;
        if keep.len() < live.len() {
            let idx = Tensor::from_slice(&keep.iter().map(|&b| b as i64).collect::<Vec<_>>());
            cache.select_rows(&idx)?;
            sampler.retain_rows(&keep);
            if let Some(c) = constraint.as_mut() {
                c.rows = keep.iter().map(|&b| c.rows[b].clone()).collect();
            }
            next_ids = keep.iter().map(|&b| next_ids[b]).collect();
            live = keep.iter().map(|&b| live[b]).collect();
        }
        // Host ids: the model validates them on the host and copies them over (no device sync for the check).
        let step_ids = Tensor::from_slice(&next_ids).view([live.len() as i64, 1]);
        logits = model.forward(&step_ids, &ForwardArgs::default(), Some(&mut cache))?.squeeze_dim(1);
        // [B, V]
    }
    debug_assert!(out.iter().all(|s| s.tokens.len() <= cfg.max_new_tokens));
    Ok(out)
}

pub(super) fn validate(model: &Emu3ForCausalLM, requests: &[GenerationRequest], cfg: &GenerationConfig) -> Result<()> {
    if requests.is_empty() {
        return Err(Error::input("no generation requests"));
    }
    if cfg.samples_per_request == 0 || cfg.max_new_tokens == 0 {
        return Err(Error::input("samples_per_request and max_new_tokens must be positive"));
    }
    let v = model.cfg.vocab_size;
    for (i, r) in requests.iter().enumerate() {
        if r.prompt.is_empty() {
            return Err(Error::input(format!("request {i}: empty prompt")));
        }
        if r.prefill_len > r.prompt.len() {
            return Err(Error::input(format!("request {i}: prefill longer than the prompt")));
        }
        if let Some(&bad) = r.prompt.iter().find(|&&t| t < 0 || t >= v) {
            return Err(Error::input(format!("request {i}: token id {bad} outside the vocabulary of {v}")));
        }
    }
    if let Some(c) = cfg.context_size {
        if let Some((i, r)) = requests.iter().enumerate().find(|(_, r)| r.prompt.len() > c) {
            let n = r.prompt.len();
            return Err(Error::input(format!("request {i}: a prompt of {n} tokens does not fit context_size {c}")));
        }
    }
    if let Some(t) = &cfg.image_tokens {
        if t.first_visual + t.num_visual > v {
            return Err(Error::input(format!(
                "visual ids end at {} beyond the vocabulary of {v}",
                t.first_visual + t.num_visual
            )));
        }
    }
    let longest = requests
        .iter()
        .map(|r| r.prompt.len() + response_budget(r.prompt.len(), cfg.max_new_tokens, cfg.context_size))
        .max()
        .unwrap_or(0);
    let positions = model.cfg.max_position_embeddings;
    if longest as i64 > positions && !cfg.allow_overlong {
        return Err(Error::input(format!(
            "prompt + new tokens reach {longest} positions but the model has {positions} \
             (max_position_embeddings): lower --max-new-tokens, or pass --allow-overlong"
        )));
    }
    if longest as i64 > positions {
        tracing::warn!(longest, max = positions, "sequence longer than max_position_embeddings (--allow-overlong)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Emu3Config, RandomSource};
    use tch::{Device, Kind};

    fn tiny() -> Emu3ForCausalLM {
        let src = RandomSource { seed: 3, std: 0.3, kind: Kind::Float, device: Device::Cpu };
        Emu3ForCausalLM::load(&src, &Emu3Config::tiny()).unwrap()
    }

    const T: ImageTokens =
        ImageTokens { img: 10, eol: 11, eof: 12, eoi: 13, eos: 2, pad: 0, first_visual: 300, num_visual: 20 };

    fn cfg(sampling: SamplingParams, n: usize) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: 20,
            samples_per_request: n,
            sampling,
            seed: 5,
            eos_ids: vec![2],
            image_tokens: Some(T),
            pad_id: 0,
            context_size: None,
            allow_overlong: false,
        }
    }

    #[test]
    fn a_prefilled_img_yields_a_full_grid_and_stops() {
        let m = tiny();
        let req = GenerationRequest { prompt: vec![1, 5, 6, 7, 10], prefill_len: 1, grid: Some((2, 3)) };
        let out = generate(&m, &[req], &cfg(SamplingParams::reference_eval(), 2), &mut |_, _| {}).unwrap();
        for s in &out {
            assert_eq!(s.finish, FinishReason::Stop);
            assert_eq!(s.tokens.len(), 2 * 4 + 3);
            assert_eq!(&s.tokens[8..], &[12, 13, 2]);
            assert_eq!((s.tokens[3], s.tokens[7]), (11, 11));
            assert!(s
                .tokens
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 4 != 3 && *i < 8)
                .all(|(_, &t)| (300..320).contains(&t)));
        }
        assert_ne!(out[0].tokens, out[1].tokens, "two samples of one prompt draw from different streams");
    }

    #[test]
    fn same_seed_same_tokens_and_batch_invariance() {
        let m = tiny();
        let a = GenerationRequest { prompt: vec![1, 40, 41, 42, 10], prefill_len: 1, grid: Some((2, 2)) };
        let others: Vec<GenerationRequest> = (0..4)
            .map(|i| GenerationRequest { prompt: vec![1, 50 + i, 7, 10], prefill_len: 1, grid: Some((1, 3)) })
            .collect();
        let c = cfg(SamplingParams { temperature: 1.0, top_k: crate::generate::TopK::Off, top_p: 1.0 }, 1);
        let alone = generate(&m, std::slice::from_ref(&a), &c, &mut |_, _| {}).unwrap();
        let again = generate(&m, std::slice::from_ref(&a), &c, &mut |_, _| {}).unwrap();
        assert_eq!(alone, again);
        // Request 0 alone vs. first of a batch of five: the stream is (seed, 0, 0) in both.
        let mut batch = vec![a];
        batch.extend(others);
        let together = generate(&m, &batch, &c, &mut |_, _| {}).unwrap();
        assert_eq!(alone[0].tokens, together[0].tokens);
        let other_seed = generate(&m, &batch[..1], &GenerationConfig { seed: 6, ..c.clone() }, &mut |_, _| {}).unwrap();
        assert_ne!(other_seed[0].tokens, alone[0].tokens);
    }

    #[test]
    fn keyed_streams_follow_the_key_not_the_batch_position() {
        let m = tiny();
        let reqs: Vec<GenerationRequest> = (0..3)
            .map(|i| GenerationRequest { prompt: vec![1, 40 + i, 41, 10], prefill_len: 1, grid: Some((2, 2)) })
            .collect();
        let c = cfg(SamplingParams { temperature: 1.0, top_k: crate::generate::TopK::Off, top_p: 1.0 }, 1);
        // Request 2 keyed 17: alone at position 0, or last of a batch keyed [5, 9, 17], draws the same stream.
        let alone = generate_keyed(&m, &reqs[2..], &[17], &c, &mut |_, _| {}).unwrap();
        let batch = generate_keyed(&m, &reqs, &[5, 9, 17], &c, &mut |_, _| {}).unwrap();
        assert_eq!(alone[0].tokens, batch[2].tokens);
        // Its batch index (0 alone) would give another stream; the default keys are the batch indices.
        let by_index = generate(&m, &reqs[2..], &c, &mut |_, _| {}).unwrap();
        assert_ne!(by_index[0].tokens, alone[0].tokens);
        assert_eq!(generate_keyed(&m, &reqs[2..], &[0], &c, &mut |_, _| {}).unwrap(), by_index);
        assert!(generate_keyed(&m, &reqs, &[1], &c, &mut |_, _| {}).is_err());
        assert!(generate_keyed(&m, &reqs[..1], &[1 << 32], &c, &mut |_, _| {}).is_err());
    }

    #[test]
    fn unconstrained_rows_run_to_length_and_bad_requests_are_errors() {
        let m = tiny();
        let req = GenerationRequest { prompt: vec![1, 2, 3], prefill_len: 0, grid: None };
        let c = GenerationConfig { eos_ids: vec![], ..cfg(SamplingParams::greedy(), 1) };
        let out = generate(&m, &[req], &c, &mut |_, _| {}).unwrap();
        assert_eq!((out[0].tokens.len(), out[0].finish), (20, FinishReason::Length));
        let bad = GenerationRequest { prompt: vec![1, 999], prefill_len: 0, grid: None };
        assert!(generate(&m, &[bad], &c, &mut |_, _| {}).is_err());
        assert!(generate(&m, &[], &c, &mut |_, _| {}).is_err());
    }

    #[test]
    fn the_context_size_caps_prompt_plus_response_as_vllm() {
        // vLLM (V0) ends a sequence once prompt + output exceeds max_model_len: c + 1 − prompt tokens at most.
        assert_eq!(response_budget(10, 2048, None), 2048);
        assert_eq!(response_budget(1100, 2048, Some(3000)), 1901);
        assert_eq!(response_budget(100, 2048, Some(3000)), 2048);
        assert_eq!(response_budget(3000, 2048, Some(3000)), 1);
        assert_eq!(response_budget(3001, 2048, Some(3000)), 0);
        let m = tiny();
        let req = GenerationRequest { prompt: vec![1, 2, 3], prefill_len: 0, grid: None };
        let c = GenerationConfig { eos_ids: vec![], context_size: Some(7), ..cfg(SamplingParams::greedy(), 2) };
        let out = generate(&m, std::slice::from_ref(&req), &c, &mut |_, _| {}).unwrap();
        assert!(out.iter().all(|s| (s.tokens.len(), s.finish) == (5, FinishReason::Length)), "{out:?}");
        let e = generate(&m, &[req], &GenerationConfig { context_size: Some(2), ..c }, &mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("does not fit context_size 2"), "{e}");
    }

    #[test]
    fn budgets_beyond_the_model_positions_are_errors_unless_allowed() {
        let m = tiny(); // 256 positions
        let req = GenerationRequest { prompt: vec![1, 2, 3], prefill_len: 0, grid: None };
        let c = GenerationConfig { eos_ids: vec![], max_new_tokens: 300, ..cfg(SamplingParams::greedy(), 1) };
        let e = generate(&m, std::slice::from_ref(&req), &c, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("303 positions but the model has 256") && e.contains("--allow-overlong"), "{e}");
        // A context size that keeps prompt + response within the positions makes it fit.
        let capped = GenerationConfig { context_size: Some(200), ..c.clone() };
        assert_eq!(generate(&m, std::slice::from_ref(&req), &capped, &mut |_, _| {}).unwrap()[0].tokens.len(), 198);
        let allowed = GenerationConfig { allow_overlong: true, max_new_tokens: 260, ..c };
        assert_eq!(generate(&m, &[req], &allowed, &mut |_, _| {}).unwrap()[0].tokens.len(), 260);
    }
}

//! The editing pipeline EARL runs for `earl edit`, RL rollouts, data tokenization and evaluation: source image → VQ
//! codes ([`ImageCodec::encode_image`]) → EARL edit prompt with the chosen assistant prefill ([`edit_request`]) →
//! grid-constrained seeded generation and parsed responses: reasoning text, the h×w grid or why it is invalid
//! ([`generate_edits`], [`parse_edit`]) → decoded RGB image ([`ImageCodec::decode_grid`]). One [`Editor`] holds the
//! three models and runs the whole path; its steps are public so that the GRPO rollouts (over the policy being
//! trained) and `earl data tokenize` (the vision tokenizer alone) compose the same steps instead of copies.
use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::generate::{Engine, FinishReason, GenerationConfig, GenerationRequest, ImageTokens, SamplingParams};
use crate::grid::CodeGrid;
use crate::imageproc::{self, ImageProcessConfig};
use crate::model::Emu3ForCausalLM;
use crate::prompt::{ParsedResponse, Prefill, PromptBuilder};
use crate::tokenizer::Emu3Tokenizer;
use crate::vq::Emu3VqModel;

/// Language model, vision tokenizer and text tokenizer of one Emu3 checkpoint.
pub struct Editor {
    /// The Emu3 language model.
    pub lm: Emu3ForCausalLM,
    /// Image preprocessing, VQ encoder and decoder.
    pub codec: ImageCodec,
    /// The text tokenizer (with Emu3's special and visual tokens).
    pub tok: Emu3Tokenizer,
}

/// The image side of the pipeline: EARL's preprocessing with the VQ model (encode), and the VQ decoder with the
/// inverse normalisation (decode).
pub struct ImageCodec {
    /// The VQ vision tokenizer.
    pub vq: Emu3VqModel,
    /// Preprocessing settings (target area, spatial factor, pixel limits, normalisation), from
    /// `preprocessor_config.json` when present.
    pub image_cfg: ImageProcessConfig,
}

impl ImageCodec {
    /// The vision tokenizer of `vq_dir` as `kind` on `device`, with its `preprocessor_config.json` (if any).
    pub fn from_dir(vq_dir: &Path, kind: Kind, device: Device) -> Result<Self> {
        let vq = Emu3VqModel::from_dir(vq_dir, kind, device)?;
        let image_cfg = ImageProcessConfig::from_dir(vq_dir, vq.cfg.spatial_factor() as u32)?;
        Ok(ImageCodec { vq, image_cfg })
    }

    /// EARL's preprocessing then VQ encoding of one image.
    pub fn encode_image(&self, img: &RgbImage) -> Result<CodeGrid> {
        let mut grids = self.encode_images(std::slice::from_ref(img))?;
        grids.pop().ok_or_else(|| Error::input("the VQ returned no grid"))
    }

    /// Decodes a grid to an RGB image.
    pub fn decode_grid(&self, grid: &CodeGrid) -> Result<RgbImage> {
        let pixels = tch::no_grad(|| self.vq.decode(&grid.to_tensor()))?;
        Ok(imageproc::to_rgb8(&pixels, &self.image_cfg)?.remove(0))
    }

    /// EARL's preprocessing then VQ encoding of many images: consecutive images that preprocess to one size are
    /// encoded as one batch (dataset tokenization; the codes equal the one-by-one ones up to float summation order).
    /// [`ImageCodec::encode_image`] is this for one image.
    pub fn encode_images(&self, imgs: &[RgbImage]) -> Result<Vec<CodeGrid>> {
        let pixels = imgs.iter().map(|i| imageproc::preprocess(i, &self.image_cfg)).collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(imgs.len());
        let mut start = 0;
        while start < pixels.len() {
            let size = pixels[start].size();
            let end = (start..pixels.len()).find(|&i| pixels[i].size() != size).unwrap_or(pixels.len());
            let codes = crate::error::guard("VQ batch encode", || {
                let batch = Tensor::f_cat(&pixels[start..end], 0)?;
                Ok(tch::no_grad(|| self.vq.encode(&batch)))
            })??;
            for i in 0..(end - start) as i64 {
                out.push(CodeGrid::from_tensor(&codes.get(i))?);
            }
            start = end;
        }
        Ok(out)
    }
}

/// The reference's evaluation budget (`max_new_tokens=3000` in its `baselines/our_eval_on_*.py`): enough for a
/// 1024-token image block after a reasoning chain.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 3000;

/// Generation settings of an edit.
#[derive(Debug, Clone)]
pub struct EditOptions {
    /// Text that opens the assistant turn (default [`Prefill::E`]).
    pub prefill: Prefill,
    /// Completions per input (default 1).
    pub samples: usize,
    /// `None`: [`DEFAULT_MAX_NEW_TOKENS`] (room for reasoning before the image), capped so that prompt + response
    /// fit the model's `max_position_embeddings` (vLLM's default `max_model_len`).
    pub max_new_tokens: Option<usize>,
    /// Temperature, top-p and top-k (default: the reference's evaluation settings).
    pub sampling: SamplingParams,
    /// Sampling seed: the same seed and inputs give the same edits on one device (default 0).
    pub seed: u64,
    /// The grid constraint (EARL's default); off lets the model write anything.
    pub constrain: bool,
    /// Let an explicit `max_new_tokens` run past the model's `max_position_embeddings` (otherwise an error).
    pub allow_overlong: bool,
    /// Limit on prompt + response (the RL config's `model_context_size`, vLLM's `max_model_len`); `None`: none.
    pub context_size: Option<usize>,
    /// Decode path (default [`Engine::Eager`], the reference; `earl edit` takes the graph engine on CUDA).
    pub engine: Engine,
}

impl Default for EditOptions {
    fn default() -> Self {
        EditOptions {
            prefill: Prefill::E,
            samples: 1,
            max_new_tokens: None,
            sampling: SamplingParams::reference_eval(),
            seed: 0,
            constrain: true,
            allow_overlong: false,
            context_size: None,
            engine: Engine::Eager,
        }
    }
}

/// One edit request: a source grid (already encoded) and the instruction.
#[derive(Debug, Clone)]
pub struct EditInput {
    /// The source image's code grid.
    pub source: CodeGrid,
    /// The edit instruction.
    pub instruction: String,
}

/// One sampled edit.
#[derive(Debug, Clone)]
pub struct EditOutput {
    /// Index of the input this edit answers.
    pub request: usize,
    /// Index of the sample among that input's samples.
    pub sample: usize,
    /// The full prompt ids, prefill included.
    pub prompt_ids: Vec<i64>,
    /// Generated ids (prefill excluded).
    pub tokens: Vec<i64>,
    /// Whether the response stopped on eos or ran out of budget.
    pub finish: FinishReason,
    /// Decoded text before the image (the reasoning chain, if any).
    pub reasoning: String,
    /// The edited grid, or why the response holds none.
    pub grid: std::result::Result<CodeGrid, String>,
}

/// Wall-clock split of one [`Editor::edit`] call, and the token budget it ran with.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct EditTimings {
    /// Token budget per response.
    pub max_new_tokens: usize,
    /// Seconds spent generating.
    pub generate_s: f64,
    /// Tokens generated in all samples.
    pub new_tokens: usize,
    /// Decoding steps taken.
    pub steps: usize,
}

impl Editor {
    /// Loads the LM (as `kind`) from `model`, the tokenizer from `tokenizer` and the vision tokenizer (as `vq_kind`,
    /// with its `preprocessor_config.json`, if any) from `vq_dir`. EARL runs the vision tokenizer in f32 even when
    /// the LM runs in bf16, so `vq_kind` is its own setting. Set `codec.image_cfg.area` afterwards to change the area.
    pub fn load(
        model: &Path,
        vq_dir: &Path,
        tokenizer: &Path,
        kind: Kind,
        vq_kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let tok = Emu3Tokenizer::from_dir(tokenizer)?;
        let lm = Emu3ForCausalLM::from_dir(model, kind, device)?;
        let codec = ImageCodec::from_dir(vq_dir, vq_kind, device)?;
        let vq = &codec.vq;
        if lm.cfg.vocab_size < tok.vocab_size() as i64 {
            return Err(Error::input(format!(
                "the tokenizer in {} has {} ids but the model in {} only {}",
                tokenizer.display(),
                tok.vocab_size(),
                model.display(),
                lm.cfg.vocab_size
            )));
        }
        if vq.cfg.codebook_size as u32 != tok.codebook_size() {
            return Err(Error::input(format!(
                "the vision tokenizer has {} codes but the text tokenizer {} visual tokens",
                vq.cfg.codebook_size,
                tok.codebook_size()
            )));
        }
        Ok(Editor { lm, codec, tok })
    }

    /// EARL's preprocessing then VQ encoding of one image ([`ImageCodec::encode_image`]).
    pub fn encode_image(&self, img: &RgbImage) -> Result<CodeGrid> {
        self.codec.encode_image(img)
    }

    /// Decodes a grid to an RGB image ([`ImageCodec::decode_grid`]).
    pub fn decode_grid(&self, grid: &CodeGrid) -> Result<RgbImage> {
        self.codec.decode_grid(grid)
    }

    /// Samples `opts.samples` edits for every input.
    pub fn edit(
        &self,
        inputs: &[EditInput],
        opts: &EditOptions,
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<(Vec<EditOutput>, EditTimings)> {
        let requests = inputs
            .iter()
            .map(|inp| edit_request(&self.tok, &inp.source, &inp.instruction, &opts.prefill))
            .collect::<Result<Vec<_>>>()?;
        generate_edits(&self.lm, &self.tok, &requests, opts, on_step)
    }
}

/// Generates `opts.samples` edits for every request with `lm` (the editor's model, or a policy in training) and
/// parses each response; outputs are in (request, sample) order. `opts.prefill` is not used here: the requests
/// already end in theirs ([`edit_request`]).
pub fn generate_edits(
    lm: &Emu3ForCausalLM,
    tok: &Emu3Tokenizer,
    requests: &[GenerationRequest],
    opts: &EditOptions,
    on_step: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<EditOutput>, EditTimings)> {
    let keys: Vec<u64> = (0..requests.len() as u64).collect();
    generate_edits_keyed(lm, tok, requests, &keys, opts, on_step)
}

/// As [`generate_edits`], with request `r`'s sampling streams keyed by `stream_keys[r]` (see
/// [`crate::generate::generate_keyed`]): `earl eval run` keys each sample by its dataset row.
pub fn generate_edits_keyed(
    lm: &Emu3ForCausalLM,
    tok: &Emu3Tokenizer,
    requests: &[GenerationRequest],
    stream_keys: &[u64],
    opts: &EditOptions,
    on_step: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<EditOutput>, EditTimings)> {
    let longest = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    let max_new =
        opts.max_new_tokens.unwrap_or_else(|| default_max_new_tokens(longest, lm.cfg.max_position_embeddings));
    let s = *tok.special();
    let cfg = GenerationConfig {
        max_new_tokens: max_new,
        samples_per_request: opts.samples,
        sampling: opts.sampling,
        seed: opts.seed,
        eos_ids: vec![s.eos as i64],
        image_tokens: opts.constrain.then(|| ImageTokens::from_tokenizer(tok)),
        pad_id: s.pad as i64,
        context_size: opts.context_size,
        allow_overlong: opts.allow_overlong,
    };
    let t0 = Instant::now();
    let mut steps = 0;
    let samples = opts.engine.generate_keyed(lm, requests, stream_keys, &cfg, &mut |step, live| {
        steps = step;
        on_step(step, live)
    })?;
    let timings = EditTimings {
        max_new_tokens: max_new,
        generate_s: t0.elapsed().as_secs_f64(),
        new_tokens: samples.iter().map(|s| s.tokens.len()).sum(),
        steps,
    };
    let outputs = samples
        .into_iter()
        .map(|g| {
            let req = &requests[g.request];
            let parsed = parse_edit(tok, req, &g.tokens);
            EditOutput {
                request: g.request,
                sample: g.sample,
                prompt_ids: req.prompt.clone(),
                finish: g.finish,
                reasoning: parsed.reasoning,
                grid: parsed.image.map_err(|e| e.to_string()),
                tokens: g.tokens,
            }
        })
        .collect();
    Ok((outputs, timings))
}

/// Parses the `generated` ids of `req` (the prefill joins them, see [`response_ids`]) against the request's grid.
pub fn parse_edit(tok: &Emu3Tokenizer, req: &GenerationRequest, generated: &[i64]) -> ParsedResponse {
    let expected = req.grid.map(|(h, w)| (h as usize, w as usize));
    PromptBuilder::new(tok).parse_response(&response_ids(req, generated), expected)
}

/// The budget of an edit without `max_new_tokens`: [`DEFAULT_MAX_NEW_TOKENS`], or what is left of
/// `max_position_embeddings` after the longest prompt when that is less (small models), but at least one token (a
/// prompt that fills the window gets the engine's warning, not an error).
pub fn default_max_new_tokens(longest_prompt: usize, max_position_embeddings: i64) -> usize {
    let room = usize::try_from(max_position_embeddings).unwrap_or(0).saturating_sub(longest_prompt);
    DEFAULT_MAX_NEW_TOKENS.min(room).max(1)
}

/// The generation request of an EARL edit: the edit prompt ending in the assistant prefill, how many of its ids
/// are that prefill (the grid constraint counts them as response), and the source grid the edit must keep.
pub fn edit_request(
    tok: &Emu3Tokenizer,
    source: &CodeGrid,
    instruction: &str,
    prefill: &Prefill,
) -> Result<GenerationRequest> {
    let prompt: Vec<i64> =
        PromptBuilder::new(tok).edit_prompt(source, instruction, prefill)?.into_iter().map(i64::from).collect();
    let text = prefill.text(source.h(), source.w());
    let prefill_len = if text.is_empty() { 0 } else { tok.encode(&text)?.len() };
    Ok(GenerationRequest { prompt, prefill_len, grid: Some((source.h() as i64, source.w() as i64)) })
}

/// The response as the parser sees it: the assistant prefill (a literal one may already hold the image header)
/// followed by the generated ids.
pub fn response_ids(req: &GenerationRequest, generated: &[i64]) -> Vec<i64> {
    let mut r = req.prompt[req.prompt.len() - req.prefill_len..].to_vec();
    r.extend_from_slice(generated);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_the_reference_evaluations_capped_by_the_position_window() {
        // Emu3 (9216 positions) and a 1100-token prompt: the reference's 3000.
        assert_eq!(default_max_new_tokens(1100, 9216), 3000);
        // A small model: what is left of its window; never less than one token.
        assert_eq!(default_max_new_tokens(300, 1024), 724);
        assert_eq!(default_max_new_tokens(300, 128), 1);
    }
}

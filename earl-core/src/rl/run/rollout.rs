//! The rollout half of a GRPO iteration, composed from the edit pipeline ([`crate::edit`]): the drawn records'
//! edit prompts ([`edit_request`], with the config's assistant prefill), `generations_per_sample` completions each
//! from the *current* policy ([`generate_edits`]: grid constraint, parsing), then the rewards, with images decoded
//! by the pipeline's decode step ([`ImageCodec::decode_grid`]).
use std::collections::BTreeMap;

use image::RgbImage;

use super::RlRunner;
use crate::data::{DataRng, EditRecord};
use crate::edit::{edit_request, generate_edits, EditOptions, ImageCodec};
use crate::error::{Error, Result};
use crate::generate::{FinishReason, GenerationRequest};
use crate::grid::CodeGrid;
use crate::rl::config::RolloutConfig;
use crate::rl::reward::{component_means, RewardInput};

/// One sampled completion of an iteration.
pub(super) struct Episode {
    /// Index of its prompt among the iteration's records.
    pub(super) record: usize,
    pub(super) prompt: Vec<i64>,
    pub(super) prefill_len: usize,
    pub(super) tokens: Vec<i64>,
    pub(super) finish: FinishReason,
    pub(super) grid: Option<CodeGrid>,
}

/// The edit settings of the rollouts of iteration `it`.
fn edit_options(g: &RolloutConfig, runner: &RlRunner, it: u64) -> EditOptions {
    EditOptions {
        prefill: runner.prefill.clone(),
        samples: g.generations_per_sample,
        max_new_tokens: Some(g.max_response_tokens),
        sampling: g.sampling,
        seed: DataRng::derive(runner.cfg.random_seed, "rl-generation", it).next_u64(),
        constrain: g.grid_constraint,
        allow_overlong: false,
        context_size: Some(g.model_context_size),
        engine: runner.engine,
    }
}

impl RlRunner {
    /// Episodes in prompt order, `generations_per_sample` per prompt (the groups of the advantages).
    pub(super) fn rollout(&self, it: u64, g: &RolloutConfig, records: &[EditRecord]) -> Result<Vec<Episode>> {
        let requests = records
            .iter()
            .map(|r| edit_request(&self.tok, &r.source, &r.instruction, &self.prefill))
            .collect::<Result<Vec<_>>>()?;
        // A prompt longer than model_context_size is skipped as the reference's vLLM (V0) scheduler skips it: its
        // completions are empty with finish "length", so they score 0 and carry no tokens to train on.
        let fits: Vec<bool> = requests.iter().map(|r| r.prompt.len() <= g.model_context_size).collect();
        for (k, _) in fits.iter().enumerate().filter(|(_, f)| !**f) {
            let (id, n) = (&records[k].id, requests[k].prompt.len());
            let context = g.model_context_size;
            tracing::warn!(record = %id, prompt_tokens = n, context, "prompt longer than model_context_size: skipped");
        }
        let to_generate: Vec<GenerationRequest> =
            requests.iter().zip(&fits).filter(|(_, f)| **f).map(|(r, _)| r.clone()).collect();
        let opts = edit_options(g, self, it);
        let mut outputs = match to_generate.is_empty() {
            true => Vec::new(),
            false => generate_edits(&self.trainer.model, &self.tok, &to_generate, &opts, &mut |_, _| {})?.0,
        }
        .into_iter();
        let mut episodes = Vec::with_capacity(records.len() * g.generations_per_sample);
        for (k, req) in requests.iter().enumerate() {
            for _ in 0..g.generations_per_sample {
                let (tokens, finish, grid) = if fits[k] {
                    let out = outputs.next().ok_or_else(|| Error::input("generation returned too few samples"))?;
                    (out.tokens, out.finish, out.grid.ok())
                } else {
                    (Vec::new(), FinishReason::Length, None)
                };
                let (prompt, prefill_len) = (req.prompt.clone(), req.prefill_len);
                episodes.push(Episode { record: k, prompt, prefill_len, tokens, finish, grid });
            }
        }
        Ok(episodes)
    }

    /// The decoded image of `grid`, when a vision tokenizer is loaded.
    pub(super) fn decode(&self, grid: &CodeGrid) -> Result<Option<RgbImage>> {
        self.codec.as_ref().map(|c: &ImageCodec| c.decode_grid(grid)).transpose()
    }

    /// Scores every episode; returns the final rewards, the mean of each component and the count of valid images.
    pub(super) fn score(
        &self,
        eps: &[Episode],
        records: &[EditRecord],
    ) -> Result<(Vec<f64>, BTreeMap<String, f64>, usize)> {
        // Stands in for images when no VQ is loaded, which `new` allows only when no reward looks at images.
        let blank = RgbImage::new(1, 1);
        // Source and ground truth are per prompt: decode them once, not once per generation of the group.
        let mut per_record: BTreeMap<usize, (Option<RgbImage>, Option<RgbImage>)> = BTreeMap::new();
        for e in eps {
            if let std::collections::btree_map::Entry::Vacant(slot) = per_record.entry(e.record) {
                let rec = &records[e.record];
                slot.insert((self.decode(&rec.source)?, self.decode(&rec.edited)?));
            }
        }
        let preds: Vec<Option<RgbImage>> = eps
            .iter()
            .map(|e| match &e.grid {
                Some(gr) => self.decode(gr),
                None => Ok(None),
            })
            .collect::<Result<_>>()?;
        let inputs: Vec<RewardInput> = eps
            .iter()
            .zip(&preds)
            .map(|(e, pred)| {
                let (src, gt_img) = &per_record[&e.record];
                let rec = &records[e.record];
                RewardInput {
                    instruction: &rec.instruction,
                    source: src.as_ref().unwrap_or(&blank),
                    predicted: e.grid.as_ref().map(|_| pred.as_ref().unwrap_or(&blank)),
                    ground_truth: gt_img.as_ref(),
                    predicted_codes: e.grid.as_ref(),
                    ground_truth_codes: Some(&rec.edited),
                }
            })
            .collect();
        let stopped: Vec<bool> = eps.iter().map(|e| e.finish == FinishReason::Stop).collect();
        let outs = self.rewards.score(&inputs, &stopped)?;
        let comps = component_means(&outs);
        let valid = eps.iter().filter(|e| e.grid.is_some()).count();
        Ok((outs.iter().map(|o| o.score).collect(), comps, valid))
    }
}

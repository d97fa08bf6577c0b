//! The GRPO loop of EARL (`earl rl`). One iteration: draw `episodes_per_iteration / generations_per_sample` prompts
//! (seeded, without replacement inside the iteration, with replacement across iterations), sample
//! `generations_per_sample` completions each from the *current* policy through the generation engine (grid
//! constraint and assistant prefill from the config), score them (completions that did not stop get 0), compute
//! group advantages, then take one optimizer step: the KL-regularised policy-gradient loss over every completion
//! token, normalised by the iteration's completion tokens, accumulated over micro-batches of
//! `per_device_batch_size`, AdamW (no decay by default), clipping. Log-probs come from temperature-scaled logits of
//! the policy and of a frozen copy of the initial policy; dropout is off. Every random choice derives from
//! (seed, iteration), so a run resumed from a checkpoint continues exactly as the uninterrupted one; the run holds
//! its directory's lock, and a resume first drops the metric lines of iterations the checkpoint does not cover.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use tch::{Device, Kind, Tensor};

use super::bookkeeping::{clean_up, saves_after};
use super::config::RlConfig;
use super::grpo::{self, LogProbOptions, VocabSplit};
use super::reward::{component_means, RewardInput, RewardSet};
use crate::data::{build_mixture, DataRng, EditRecord, ShardReader};
use crate::edit::{edit_request, response_ids};
use crate::error::{guard, Error, Result};
use crate::generate::{generate, FinishReason, GenerationConfig, GenerationRequest, ImageTokens};
use crate::imageproc::{self, ImageProcessConfig};
use crate::model::{Emu3ForCausalLM, ForwardArgs};
use crate::prompt::{ImageGrid, Prefill, PromptBuilder};
use crate::runlock::RunLock;
use crate::tokenizer::Emu3Tokenizer;
use crate::train::checkpoint::{resume_latest, save_checkpoint, TrainerState};
use crate::train::{
    checkpointed_backward, checkpointed_backward_chunked, AdamWConfig, CosineSchedule, LossNorm, Recipe, SftTrainer,
};
use crate::vq::Emu3VqModel;
use crate::weights::SafetensorsStore;

/// Where and how to run (what the TOML file does not say).
#[derive(Debug, Clone)]
pub struct RlOptions {
    pub device: Device,
    /// Compute dtype of policy and reference (masters and optimizer state are f32).
    pub kind: Kind,
    /// Vision tokenizer, needed by pixel-space and verifier rewards and for episode images.
    pub vq_dir: Option<PathBuf>,
    /// Its dtype: f32 in EARL whatever the policy's dtype.
    pub vq_kind: Kind,
    /// Run directory (default: `base_exp_dir/run_name`).
    pub out_dir: Option<PathBuf>,
    /// Stop after this many iterations in total (default: the config's `num_iterations`).
    pub max_iterations: Option<u64>,
}

/// Metrics of one iteration (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IterationReport {
    pub iteration: u64,
    pub reward_mean: f64,
    pub reward_std: f64,
    /// Mean of every reward component over the iteration's completions.
    pub components: BTreeMap<String, f64>,
    pub response_len_mean: f64,
    pub non_stop_rate: f64,
    pub valid_image_rate: f64,
    pub loss: f64,
    pub policy_loss: f64,
    pub kl: f64,
    pub entropy: f64,
    pub near_zero_advantage_share: f64,
    pub grad_norm: f64,
    pub completion_tokens: f64,
    /// Seconds per phase: generation, rewards, reference log-probs, training (policy forward/backward + step).
    pub time_generation_s: f64,
    pub time_rewards_s: f64,
    pub time_reference_s: f64,
    pub time_training_s: f64,
}

/// One sampled completion of an iteration.
struct Episode {
    record: usize,
    prompt: Vec<i64>,
    prefill_len: usize,
    tokens: Vec<i64>,
    finish: FinishReason,
    grid: Option<ImageGrid>,
}

pub struct RlRunner {
    pub cfg: RlConfig,
    pub trainer: SftTrainer,
    reference: Emu3ForCausalLM,
    tok: Emu3Tokenizer,
    vq: Option<(Emu3VqModel, ImageProcessConfig)>,
    rewards: RewardSet,
    records: Vec<EditRecord>,
    /// The training mixture: indices into `records`.
    pool: Vec<usize>,
    out_dir: PathBuf,
    max_iterations: u64,
    prefill: Prefill,
}

fn grid_u32(g: &crate::data::CodeGrid) -> Result<ImageGrid> {
    ImageGrid::new(g.h, g.w, g.codes.iter().map(|&c| c as u32).collect())
}

impl RlRunner {
    pub fn new(cfg: RlConfig, rewards: RewardSet, opts: &RlOptions) -> Result<Self> {
        // Checked before anything loads: without a VQ these rewards would be shown 1×1 stand-ins.
        if let (Some(reward), None) = (cfg.reward.image_rewards().first(), &opts.vq_dir) {
            return Err(Error::Config {
                path: cfg.source.clone(),
                msg: format!("the {reward} reward scores decoded images but no vision tokenizer is set (vq_dir, --vq)"),
            });
        }
        let model_dir = PathBuf::from(&cfg.model_path);
        let tok = Emu3Tokenizer::from_dir(Path::new(&cfg.tokenizer_path))?;
        let lm_cfg = crate::config::Emu3Config::from_dir(&model_dir)?;
        let o = &cfg.optim;
        let recipe = Recipe {
            adamw: AdamWConfig {
                beta1: o.adam_beta1,
                beta2: o.adam_beta2,
                eps: o.adam_epsilon,
                weight_decay: o.weight_decay,
            },
            // EARL's GRPO uses a constant learning rate.
            schedule: CosineSchedule {
                lr: o.learning_rate,
                min_lr: o.learning_rate,
                warmup_steps: 0,
                total_steps: o.num_iterations.max(1),
            },
            max_grad_norm: o.max_grad_norm,
            loss_norm: LossNorm::GlobalTokens,
            seed: cfg.random_seed,
            gradient_checkpointing: o.gradient_checkpointing,
            loss_chunk_tokens: 0,
        };
        let masters = SafetensorsStore::open(&model_dir, Kind::Float, opts.device)?;
        let trainer = SftTrainer::new(&masters, &lm_cfg, opts.kind, recipe)?;
        let reference = Emu3ForCausalLM::from_dir(&model_dir, opts.kind, opts.device)?;
        let vq = match &opts.vq_dir {
            Some(d) => {
                let m = Emu3VqModel::from_dir(d, opts.vq_kind, opts.device)?;
                let ic = ImageProcessConfig::from_dir(d, m.cfg.spatial_factor() as u32)?;
                Some((m, ic))
            }
            None => None,
        };
        let mut records = Vec::new();
        let mut sizes = Vec::new();
        for p in &cfg.data.train_paths {
            let reader = ShardReader::open(p)?;
            sizes.push(reader.len());
            for i in 0..reader.len() {
                records.push(reader.get::<EditRecord>(i)?);
            }
        }
        let coefs = match &cfg.data.train_mixture {
            super::config::Mixture::UpsampleToLargest => None,
            super::config::Mixture::Coefficients(c) => Some(c.clone()),
        };
        let (mix, _) = build_mixture(&sizes, coefs.as_deref(), cfg.random_seed)?;
        let offsets: Vec<usize> = sizes
            .iter()
            .scan(0, |acc, &n| {
                let o = *acc;
                *acc += n;
                Some(o)
            })
            .collect();
        let pool: Vec<usize> = mix.into_iter().map(|(d, i)| offsets[d] + i).collect();
        if pool.len() < cfg.generation.prompts_per_iteration {
            return Err(Error::input(format!(
                "the training mixture has {} prompts, fewer than the {} drawn per iteration",
                pool.len(),
                cfg.generation.prompts_per_iteration
            )));
        }
        let prefill = Prefill::Literal(cfg.generation.assistant_prefill.clone());
        let out_dir = opts.out_dir.clone().unwrap_or_else(|| cfg.base_exp_dir.join(&cfg.run_name));
        let max_iterations = opts.max_iterations.unwrap_or(cfg.optim.num_iterations);
        Ok(RlRunner { cfg, trainer, reference, tok, vq, rewards, records, pool, out_dir, max_iterations, prefill })
    }

    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Runs (or resumes, from the newest checkpoint in `out_dir/checkpoints` that restores) up to the last
    /// iteration. Fails with [`Error::Busy`] while another run holds `out_dir`.
    pub fn run(&mut self, on_iteration: &mut dyn FnMut(&IterationReport)) -> Result<Vec<IterationReport>> {
        let _lock = RunLock::acquire(&self.out_dir)?;
        crate::fsio::remove_leftovers(&self.out_dir)?;
        let ckpts = self.out_dir.join("checkpoints");
        let mut start = 0;
        if let Some((state, dir)) = resume_latest(&ckpts, &mut self.trainer)? {
            start = state.global_step;
            tracing::info!(iteration = start, dir = %dir.display(), "resuming GRPO run");
        }
        self.write_manifest()?;
        let metrics_path = self.out_dir.join("metrics.jsonl");
        crate::train::run::truncate_metrics(&metrics_path, "iteration", start)?;
        let mut reports = Vec::new();
        for it in start..self.max_iterations {
            let report = self.iteration(it)?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&metrics_path)
                .map_err(|e| Error::io(&metrics_path, e))?;
            writeln!(f, "{}", serde_json::to_string(&report).unwrap_or_default())
                .map_err(|e| Error::io(&metrics_path, e))?;
            on_iteration(&report);
            let log = &self.cfg.logging;
            if saves_after(it, self.cfg.optim.num_iterations, log.save_checkpoints_every_n_iterations) {
                let state = TrainerState {
                    global_step: it + 1,
                    samples_seen: (it + 1) * self.cfg.generation.prompts_per_iteration as u64,
                    seed: self.cfg.random_seed,
                    config_hash: String::new(),
                };
                save_checkpoint(&ckpts, &self.trainer, &state, Kind::Float)?;
                clean_up(&ckpts, it + 1, log.keep_checkpoints_every_n_iterations)?;
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// `run_manifest.json`, rewritten at every start: the rewards' own records, e.g. the verifier's prompt files and
    /// their SHA-256, or that it uses the project's own wording (its rewards then differ from the paper's).
    fn write_manifest(&self) -> Result<()> {
        let path = self.out_dir.join("run_manifest.json");
        let manifest = serde_json::json!({
            "run_name": self.cfg.run_name, "random_seed": self.cfg.random_seed, "rewards": self.rewards.manifest(),
        });
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
        crate::fsio::write_atomic(&path, text.as_bytes())
    }

    /// The prompts of iteration `it`: distinct pool entries, drawn from the (seed, iteration) stream.
    pub fn prompts_of(&self, it: u64) -> Vec<usize> {
        let mut rng = DataRng::derive(self.cfg.random_seed, "rl-prompts", it);
        rng.sample(&self.pool, self.cfg.generation.prompts_per_iteration)
    }

    /// One GRPO iteration (generation, rewards, one optimizer step).
    pub fn iteration(&mut self, it: u64) -> Result<IterationReport> {
        let _span = tracing::info_span!("grpo_iteration", it).entered();
        let g = self.cfg.generation.clone();
        let t0 = Instant::now();
        let episodes = self.rollout(it, &g)?;
        let time_generation_s = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let (scores, components, valid) = self.score(&episodes)?;
        let time_rewards_s = t1.elapsed().as_secs_f64();
        let (adv, adv_m) = grpo::group_advantages(&scores, g.generations_per_sample)?;

        let mut report = self.train_step(it, &episodes, &adv)?;
        report.time_generation_s = time_generation_s;
        report.time_rewards_s = time_rewards_s;
        let n = episodes.len() as f64;
        report.reward_mean = adv_m.reward_mean;
        report.reward_std = adv_m.reward_std;
        report.components = components;
        report.response_len_mean = episodes.iter().map(|e| e.tokens.len() as f64).sum::<f64>() / n;
        report.non_stop_rate = episodes.iter().filter(|e| e.finish != FinishReason::Stop).count() as f64 / n;
        report.valid_image_rate = valid as f64 / n;
        let every = self.cfg.logging.log_episodes_every_n_iterations;
        if every > 0 && it.is_multiple_of(every) {
            self.dump_episodes(it, &episodes, &scores)?;
        }
        Ok(report)
    }

    fn rollout(&self, it: u64, g: &super::config::RolloutConfig) -> Result<Vec<Episode>> {
        let pb = PromptBuilder::new(&self.tok);
        let picked = self.prompts_of(it);
        let mut requests = Vec::with_capacity(picked.len());
        for &r in &picked {
            let rec = &self.records[r];
            requests.push(edit_request(&self.tok, &grid_u32(&rec.source)?, &rec.instruction, &self.prefill)?);
        }
        // A prompt longer than model_context_size is skipped as the reference's vLLM (V0) scheduler skips it: its
        // completions are empty with finish "length", so they score 0 and carry no tokens to train on.
        let fits: Vec<bool> = requests.iter().map(|r| r.prompt.len() <= g.model_context_size).collect();
        for (k, _) in fits.iter().enumerate().filter(|(_, f)| !**f) {
            let (id, n) = (&self.records[picked[k]].id, requests[k].prompt.len());
            let context = g.model_context_size;
            tracing::warn!(record = %id, prompt_tokens = n, context, "prompt longer than model_context_size: skipped");
        }
        let to_generate: Vec<GenerationRequest> =
            requests.iter().zip(&fits).filter(|(_, f)| **f).map(|(r, _)| r.clone()).collect();
        let s = *self.tok.special();
        let cfg = GenerationConfig {
            max_new_tokens: g.max_response_tokens,
            samples_per_request: g.generations_per_sample,
            sampling: g.sampling,
            seed: DataRng::derive(self.cfg.random_seed, "rl-generation", it).next_u64(),
            eos_ids: vec![s.eos as i64],
            image_tokens: g.grid_constraint.then(|| ImageTokens::from_tokenizer(&self.tok)),
            pad_id: s.pad as i64,
            context_size: Some(g.model_context_size),
            allow_overlong: false,
        };
        let mut samples = match to_generate.is_empty() {
            true => Vec::new(),
            false => generate(&self.trainer.model, &to_generate, &cfg, &mut |_, _| {})?,
        }
        .into_iter();
        // Episodes in prompt order, `generations_per_sample` per prompt (the groups of the advantages).
        let mut episodes = Vec::with_capacity(picked.len() * g.generations_per_sample);
        for (k, req) in requests.iter().enumerate() {
            for _ in 0..g.generations_per_sample {
                let (tokens, finish, grid) = if fits[k] {
                    let smp = samples.next().ok_or_else(|| Error::input("generation returned too few samples"))?;
                    let (h, w) = req.grid.map(|(h, w)| (h as usize, w as usize)).unwrap_or((0, 0));
                    let grid = pb.parse_response(&response_ids(req, &smp.tokens), Some((h, w))).image.ok();
                    (smp.tokens, smp.finish, grid)
                } else {
                    (Vec::new(), FinishReason::Length, None)
                };
                let (record, prompt, prefill_len) = (picked[k], req.prompt.clone(), req.prefill_len);
                episodes.push(Episode { record, prompt, prefill_len, tokens, finish, grid });
            }
        }
        Ok(episodes)
    }

    fn decode(&self, grid: &ImageGrid) -> Result<Option<RgbImage>> {
        let Some((vq, ic)) = &self.vq else { return Ok(None) };
        let codes: Vec<i64> = grid.codes().iter().map(|&c| c as i64).collect();
        let t = Tensor::from_slice(&codes).view([1, grid.h() as i64, grid.w() as i64]);
        let px = tch::no_grad(|| vq.decode(&t))?;
        Ok(Some(imageproc::to_rgb8(&px, ic)?.remove(0)))
    }

    /// Scores every episode; returns the final rewards, the mean of each component and the count of valid images.
    fn score(&self, eps: &[Episode]) -> Result<(Vec<f64>, BTreeMap<String, f64>, usize)> {
        // Stands in for images when no VQ is loaded, which `new` allows only when no reward looks at images.
        let blank = RgbImage::new(1, 1);
        // Source and ground truth are per record: decode them once, not once per generation of the group.
        let mut per_record: BTreeMap<usize, (Option<RgbImage>, Option<RgbImage>, ImageGrid)> = BTreeMap::new();
        for e in eps {
            if let std::collections::btree_map::Entry::Vacant(slot) = per_record.entry(e.record) {
                let rec = &self.records[e.record];
                let gt = grid_u32(&rec.edited)?;
                slot.insert((self.decode(&grid_u32(&rec.source)?)?, self.decode(&gt)?, gt));
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
                let (src, gt_img, gt) = &per_record[&e.record];
                RewardInput {
                    instruction: &self.records[e.record].instruction,
                    source: src.as_ref().unwrap_or(&blank),
                    predicted: e.grid.as_ref().map(|_| pred.as_ref().unwrap_or(&blank)),
                    ground_truth: gt_img.as_ref(),
                    predicted_codes: e.grid.as_ref(),
                    ground_truth_codes: Some(gt),
                }
            })
            .collect();
        let stopped: Vec<bool> = eps.iter().map(|e| e.finish == FinishReason::Stop).collect();
        let outs = self.rewards.score(&inputs, &stopped)?;
        let comps = component_means(&outs);
        let valid = eps.iter().filter(|e| e.grid.is_some()).count();
        Ok((outs.iter().map(|o| o.score).collect(), comps, valid))
    }

    fn train_step(&mut self, it: u64, eps: &[Episode], adv: &[f64]) -> Result<IterationReport> {
        let device = self.trainer.model.device();
        let g = &self.cfg.generation;
        let vocab = if self.cfg.grpo.separate_language_and_vision_vocabs {
            VocabSplit::Separate { first_visual_id: self.tok.first_visual_id() as i64 }
        } else {
            VocabSplit::Joint
        };
        let lp_opts = LogProbOptions { temperature: g.sampling.temperature.max(1e-6), vocab, compute_entropy: true };
        let total_tokens: f64 = eps.iter().map(|e| e.tokens.len() as f64).sum::<f64>().max(1.0);
        let mb = self.cfg.optim.per_device_batch_size.max(1);
        let chunks: Vec<Vec<usize>> = (0..eps.len()).collect::<Vec<_>>().chunks(mb).map(|c| c.to_vec()).collect();
        let (first_visual, n_visual) = (self.tok.first_visual_id() as i64, self.tok.codebook_size() as i64);
        let (kl_coeff, schedule, pad) =
            (self.cfg.grpo.kl_coeff, self.cfg.grpo.token_schedule, self.tok.special().pad as i64);
        let (lr, checkpointing) = (self.cfg.optim.learning_rate, self.cfg.optim.gradient_checkpointing);
        let chunk = self.cfg.optim.loss_chunk_tokens;
        let mut acc = grpo::GrpoLossMetrics::default();
        let (mut loss_sum, mut entropy_sum, mut ref_s) = (0.0, 0.0, 0.0);
        let reference = &self.reference;
        let t_train = Instant::now();
        let sm = self.trainer.step_with(chunks.len(), lr, |policy, c| {
            let idx = &chunks[c];
            // Left-padded [B, T] of prompt + completion; `cmask` marks the completion tokens as targets.
            let t_max = idx.iter().map(|&i| eps[i].prompt.len() + eps[i].tokens.len()).max().unwrap_or(1);
            let (mut ids, mut mask, mut cmask) = (Vec::new(), Vec::new(), Vec::new());
            for &i in idx {
                let e = &eps[i];
                let n = e.prompt.len() + e.tokens.len();
                let pad_n = t_max - n;
                ids.extend(
                    std::iter::repeat_n(pad, pad_n).chain(e.prompt.iter().copied()).chain(e.tokens.iter().copied()),
                );
                mask.extend(std::iter::repeat_n(0i64, pad_n).chain(std::iter::repeat_n(1, n)));
                cmask.extend(
                    std::iter::repeat_n(0i64, pad_n + e.prompt.len()).chain(std::iter::repeat_n(1, e.tokens.len())),
                );
            }
            let b = idx.len() as i64;
            let shape = [b, t_max as i64];
            let ids = Tensor::from_slice(&ids).view(shape).to_device(device);
            let mask = Tensor::from_slice(&mask).view(shape).to_device(device);
            let cmask = Tensor::from_slice(&cmask).view(shape).to_device(device);
            // Position t predicts token t+1.
            let t = t_max as i64 - 1;
            let targets = ids.narrow(1, 1, t); // [B, T-1]
            let tmask = cmask.narrow(1, 1, t); // [B, T-1]
            let image = grpo::visual_token_mask(&targets, first_visual, n_visual); // [B, T-1]
            let (train_mask, _) = grpo::training_token_mask(&tmask, &image, &schedule, it)?;
            let args = ForwardArgs { attention_mask: Some(&mask), ..Default::default() };
            let tr = Instant::now();
            let ref_lp = tch::no_grad(|| -> Result<Tensor> {
                let logits = reference.forward(&ids, &args, None)?.narrow(1, 0, t); // [B, T-1, V]
                Ok(grpo::token_log_probs(
                    &logits,
                    &targets,
                    &tmask,
                    &image,
                    &LogProbOptions { compute_entropy: false, ..lp_opts },
                )?
                .0)
            })?;
            ref_s += tr.elapsed().as_secs_f64();
            let a: Vec<f64> = idx.iter().map(|&i| adv[i]).collect();
            let a = Tensor::from_slice(&a).to_device(device); // [B]
                                                              // The per-token objective of positions s..s+n (all of them unless the loss is chunked). Every metric is a
                                                              // token sum, so chunks and micro-batches add up.
            let mut objective = |logits: &Tensor, s: i64| -> Result<Tensor> {
                let n = logits.size()[1];
                let part = |x: &Tensor| x.narrow(1, s, n);
                let (lp, lpm) = grpo::token_log_probs(logits, &part(&targets), &part(&tmask), &part(&image), &lp_opts)?;
                let (loss, m) = grpo::grpo_loss(
                    &lp,
                    &part(&ref_lp),
                    &a.to_kind(lp.kind()),
                    &part(&train_mask),
                    kl_coeff,
                    total_tokens,
                )?;
                acc.add(&m);
                entropy_sum += lpm.entropy.unwrap_or(0.0) * lpm.tokens;
                Ok(loss)
            };
            let loss = match (checkpointing, chunk) {
                (true, c) if c > 0 => checkpointed_backward_chunked(policy, &ids, &args, t, c, &mut objective)?,
                (true, _) => {
                    let whole = |logits: &Tensor| Ok((objective(&logits.narrow(1, 0, t), 0)?, ())); // [B, T-1, V]
                    checkpointed_backward(policy, &ids, &args, whole)?.0
                }
                (false, _) => {
                    let loss = objective(&policy.forward(&ids, &args, None)?.narrow(1, 0, t), 0)?; // [B, T-1, V]
                    guard("the GRPO backward pass", || {
                        loss.backward();
                        Ok(())
                    })?;
                    loss
                }
            };
            loss_sum += loss.double_value(&[]);
            Ok(())
        })?;
        let time_training_s = t_train.elapsed().as_secs_f64() - ref_s;
        Ok(IterationReport {
            iteration: it,
            reward_mean: 0.0,
            reward_std: 0.0,
            components: BTreeMap::new(),
            response_len_mean: 0.0,
            non_stop_rate: 0.0,
            valid_image_rate: 0.0,
            loss: loss_sum,
            policy_loss: acc.policy_loss,
            kl: acc.kl_penalty,
            entropy: entropy_sum / total_tokens,
            near_zero_advantage_share: acc.near_zero_advantage_share,
            grad_norm: sm.grad_norm,
            completion_tokens: total_tokens,
            time_generation_s: 0.0,
            time_rewards_s: 0.0,
            time_reference_s: ref_s,
            time_training_s,
        })
    }

    /// `episodes/iter_NNNNN/`: one JSON line per completion (prompt with visual tokens elided, completion, reward)
    /// and, with a VQ, source / ground-truth / predicted PNGs a person can browse.
    fn dump_episodes(&self, it: u64, eps: &[Episode], scores: &[f64]) -> Result<()> {
        let dir = self.out_dir.join("episodes").join(format!("iter_{it:05}"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let elide = |ids: &[i64]| -> String {
            let mut out = String::new();
            let mut run = 0usize;
            let mut text: Vec<u32> = Vec::new();
            let flush = |text: &mut Vec<u32>, out: &mut String| {
                out.push_str(&self.tok.decode(text).unwrap_or_default());
                text.clear();
            };
            for &t in ids {
                if self.tok.is_visual(t as u32) {
                    flush(&mut text, &mut out);
                    run += 1;
                } else {
                    if run > 0 {
                        out.push_str(&format!("<|{run} visual tokens|>"));
                        run = 0;
                    }
                    text.push(t as u32);
                }
            }
            flush(&mut text, &mut out);
            if run > 0 {
                out.push_str(&format!("<|{run} visual tokens|>"));
            }
            out
        };
        let path = dir.join("episodes.jsonl");
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        for (k, (e, s)) in eps.iter().zip(scores).enumerate() {
            let rec = &self.records[e.record];
            let mut line = serde_json::json!({
                "episode": k, "record": rec.id, "instruction": rec.instruction, "reward": s,
                "finish": e.finish.as_str(), "valid_image": e.grid.is_some(),
                "prompt": elide(&e.prompt[..e.prompt.len() - e.prefill_len]),
                "completion": elide(&[&e.prompt[e.prompt.len() - e.prefill_len..], &e.tokens[..]].concat()),
            });
            if self.vq.is_some() {
                let save = |grid: &ImageGrid, name: &str| -> Result<()> {
                    if let Some(img) = self.decode(grid)? {
                        imageproc::save(&img, &dir.join(name))?;
                    }
                    Ok(())
                };
                save(&grid_u32(&rec.source)?, &format!("{k:03}_source.png"))?;
                save(&grid_u32(&rec.edited)?, &format!("{k:03}_ground_truth.png"))?;
                if let Some(gr) = &e.grid {
                    save(gr, &format!("{k:03}_predicted.png"))?;
                }
                line["images"] = serde_json::json!(format!("{k:03}_*.png"));
            }
            writeln!(f, "{line}").map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }
}

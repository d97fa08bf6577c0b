//! The SFT run loop behind `earl sft`: datasets → reference mixture → per-epoch seeded shuffle → left-padded
//! micro-batches → [`SftTrainer::step`] → JSONL metrics and atomic checkpoints, resuming from the newest checkpoint
//! in `output_dir`. Everything random derives from the experiment's one seed: the mixture, each epoch's order
//! (`DataRng::derive(seed, "epoch", e)`) and dropout (re-seeded per step), so the data position is just the number
//! of samples consumed and a resumed run continues bit for bit. A run holds its output directory's lock
//! ([`RunLock`]) throughout; on resume it drops the metric lines after the checkpoint by rewriting the log
//! atomically, so a kill at any moment loses no line of the steps the checkpoint covers and never duplicates one.
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use tch::Kind;

use super::batch::collate_left;
use super::checkpoint::{prune_checkpoints, resume_latest, save_checkpoint, TrainerState};
use super::experiment::SftExperiment;
use super::schedule::CosineSchedule;
pub use super::sources::{
    edit_sequence, open_sources, open_validation_sources, DataStream, EditSequences, SequenceShards, SequenceSource,
    ValidationSet,
};
use super::trainer::{Recipe, SftTrainer, StepReport};
use crate::config::Emu3Config;
use crate::device::parse_device;
use crate::error::{Error, Result};
use crate::fsio;
use crate::runlock::RunLock;
use crate::weights::SafetensorsStore;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepLog {
    /// The trainer's step metrics (loss, accuracy, lr, gradient norm, tokens, …).
    #[serde(flatten)]
    pub report: StepReport,
    /// Optimizer steps the run will take in all.
    pub total_steps: u64,
    /// Epochs consumed so far (samples seen / samples per epoch).
    pub epoch: f64,
    /// Real (unpadded) input tokens per second of this step.
    pub tokens_per_s: f64,
    /// Wall time of this step in seconds.
    pub step_time_s: f64,
    /// Resident host memory (bytes) after the step; GPU memory is reported by `earl bench train`.
    pub rss_bytes: u64,
    /// Validation metrics, on steps that evaluate.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub eval: Option<super::trainer::EvalReport>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Step the run started from (0, or the resumed checkpoint's step).
    pub start_step: u64,
    /// Step reached when the run stopped.
    pub final_step: u64,
    /// Optimizer steps of the full schedule.
    pub total_steps: u64,
    /// Loss of every step this run took.
    pub losses: Vec<f64>,
}

/// Knobs for tests and tools (a real run uses the defaults).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunControl {
    /// Stop after this optimizer step as if killed (checkpoints are only those the schedule wrote).
    pub stop_after: Option<u64>,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Total optimizer steps: `max_steps`, else `num_train_epochs` over the mixture (at least one).
pub fn total_steps(exp: &SftExperiment, epoch_len: usize) -> u64 {
    if exp.max_steps > 0 {
        return exp.max_steps;
    }
    let per_step = (exp.micro_batch * exp.grad_accum) as f64;
    ((exp.num_train_epochs * epoch_len as f64 / per_step).floor() as u64).max(1)
}

/// Runs (or resumes) an experiment; `on_step` sees every step's log line. With a validation set, the model is
/// evaluated every `eval_steps` optimizer steps. Fails with [`Error::Busy`] while another run holds `output_dir`.
pub fn run_sft(
    exp: &SftExperiment,
    stream: &mut DataStream,
    validation: Option<&ValidationSet>,
    control: RunControl,
    on_step: &mut dyn FnMut(&StepLog),
) -> Result<RunSummary> {
    let lock = RunLock::acquire(&exp.output_dir)?;
    run_sft_locked(&lock, exp, stream, validation, control, on_step)
}

/// [`run_sft`] under a lock the caller already holds on `output_dir` (`earl sft` takes it before writing its run
/// manifest there).
pub fn run_sft_locked(
    lock: &RunLock,
    exp: &SftExperiment,
    stream: &mut DataStream,
    validation: Option<&ValidationSet>,
    control: RunControl,
    on_step: &mut dyn FnMut(&StepLog),
) -> Result<RunSummary> {
    if lock.dir() != exp.output_dir {
        return Err(Error::input(format!(
            "the run lock is on {}, not on output_dir {}",
            lock.dir().display(),
            exp.output_dir.display()
        )));
    }
    let device = parse_device(&exp.device)?;
    let kind = if exp.bf16 { Kind::BFloat16 } else { Kind::Float };
    let mut cfg = Emu3Config::from_dir(&exp.model)?;
    if let Some(d) = exp.attention_dropout {
        cfg.attention_dropout = d;
    }
    let total = total_steps(exp, stream.epoch_len());
    let recipe = Recipe {
        adamw: exp.adamw,
        schedule: CosineSchedule { lr: exp.lr, min_lr: exp.min_lr, warmup_steps: exp.warmup_steps, total_steps: total },
        max_grad_norm: exp.max_grad_norm,
        loss_norm: exp.loss_norm,
        seed: exp.seed,
        gradient_checkpointing: exp.gradient_checkpointing,
        loss_chunk_tokens: exp.loss_chunk_tokens,
        nan_policy: exp.nan_policy,
    };
    let store = SafetensorsStore::open(&exp.model, Kind::Float, device)?;
    let mut trainer = SftTrainer::new(&store, &cfg, kind, recipe)?;
    drop(store);
    let fingerprint = exp.fingerprint();
    let mut state = TrainerState {
        global_step: 0,
        samples_seen: 0,
        seed: exp.seed,
        config_hash: fingerprint.hash(),
        config: fingerprint.to_json(),
    };
    if let Some((restored, dir)) = resume_latest(&exp.output_dir, &mut trainer)? {
        fingerprint.check_resume(&restored, &dir)?;
        state = restored;
        // Bookkeeping fields may have changed: the checkpoints written from now on record the current ones.
        (state.config_hash, state.config) = (fingerprint.hash(), fingerprint.to_json());
        tracing::info!(step = state.global_step, dir = %dir.display(), "resuming");
    }
    let metrics_path = exp.output_dir.join("metrics.jsonl");
    truncate_metrics(&metrics_path, "step", state.global_step + 1)?;
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| Error::io(&metrics_path, e))?;
    let save_kind = kind;
    let start = state.global_step;
    let mut losses = Vec::new();
    let per_step = (exp.micro_batch * exp.grad_accum) as u64;
    let eval_batches = match validation {
        Some(v) if !v.is_empty() && exp.eval_steps > 0 => Some(v.batches(exp.eval_batch, device)?),
        _ => None,
    };
    while state.global_step < total {
        let t0 = Instant::now();
        let mut micro = Vec::with_capacity(exp.grad_accum);
        for a in 0..exp.grad_accum {
            let mut seqs = Vec::with_capacity(exp.micro_batch);
            for j in 0..exp.micro_batch {
                let g = state.samples_seen + (a * exp.micro_batch + j) as u64;
                let s = stream.sample(g)?;
                if let Some(max) = exp.max_len {
                    if s.input_ids.len() as i64 > max {
                        return Err(Error::input(format!(
                            "sample {g} has {} tokens, more than max_position_embeddings = {max}",
                            s.input_ids.len()
                        )));
                    }
                }
                seqs.push(s);
            }
            micro.push(collate_left(&seqs, device)?);
        }
        let report = trainer.step(&micro)?;
        state.global_step = report.step;
        state.samples_seen += per_step;
        let dt = t0.elapsed().as_secs_f64();
        let eval = match &eval_batches {
            Some(b) if state.global_step.is_multiple_of(exp.eval_steps) => Some(trainer.evaluate(b)?),
            _ => None,
        };
        let log = StepLog {
            report,
            total_steps: total,
            epoch: state.samples_seen as f64 / stream.epoch_len() as f64,
            tokens_per_s: report.tokens as f64 / dt.max(1e-9),
            step_time_s: dt,
            rss_bytes: rss_bytes(),
            eval,
        };
        losses.push(report.loss);
        if state.global_step.is_multiple_of(exp.logging_steps) || state.global_step == total || log.eval.is_some() {
            let line = serde_json::to_string(&log).expect("json");
            writeln!(metrics, "{line}").map_err(|e| Error::io(&metrics_path, e))?;
        }
        on_step(&log);
        fsio::fault_point(&format!("step-{}", state.global_step));
        let last = state.global_step == total;
        if (exp.save_steps > 0 && state.global_step.is_multiple_of(exp.save_steps)) || last {
            save_checkpoint(&exp.output_dir, &trainer, &state, save_kind)?;
            prune_checkpoints(&exp.output_dir, exp.save_total_limit)?;
        }
        if control.stop_after == Some(state.global_step) {
            break;
        }
    }
    Ok(RunSummary { start_step: start, final_step: state.global_step, total_steps: total, losses })
}

/// Keeps the lines of a JSONL metrics log whose `key` is below `end`, dropping those a resumed run recomputes (and
/// a line cut short by a kill mid-append). The log is rewritten through a temporary and a rename, never in place,
/// so a kill mid-rewrite leaves it whole. Shared by the SFT (`step`) and GRPO (`iteration`) loops.
pub(crate) fn truncate_metrics(path: &Path, key: &str, end: u64) -> Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    // Lossy: a line cut mid-character is dropped below like any other unparsable line.
    let text = String::from_utf8_lossy(&bytes);
    let mut out = String::with_capacity(text.len());
    for l in text.lines() {
        let v = serde_json::from_str::<serde_json::Value>(l).ok();
        if v.and_then(|v| v.get(key)?.as_u64()).is_some_and(|s| s < end) {
            out.push_str(l);
            out.push('\n');
        }
    }
    fsio::write_atomic(path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::batch::Sequence;

    /// Sequences whose single label is (dataset, index), to see what was drawn.
    struct Tagged(usize, usize);
    impl SequenceSource for Tagged {
        fn len(&self) -> usize {
            self.1
        }
        fn get(&self, i: usize) -> Result<Sequence> {
            Ok(Sequence { input_ids: vec![1, 2], labels: vec![self.0 as i64, i as i64] })
        }
    }

    #[test]
    fn metrics_truncation_keeps_the_covered_lines_and_drops_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        truncate_metrics(&p, "step", 3).unwrap();
        assert!(!p.exists(), "no log, nothing to do");
        std::fs::write(&p, "{\"step\":1,\"loss\":2.0}\n{\"step\":2}\n{\"step\":3}\n{\"step\":4}\n{\"st").unwrap();
        truncate_metrics(&p, "step", 3).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"step\":1,\"loss\":2.0}\n{\"step\":2}\n");
        std::fs::write(&p, "{\"iteration\":0}\n{\"iteration\":1}\n{\"iteration\":1}\n\u{e9}\n").unwrap();
        truncate_metrics(&p, "iteration", 1).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"iteration\":0}\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left behind");
    }

    #[test]
    fn validation_draws_size_over_n_from_each_dataset_without_replacement() {
        let sources: Vec<Box<dyn SequenceSource>> =
            vec![Box::new(Tagged(0, 100)), Box::new(Tagged(1, 3)), Box::new(Tagged(2, 40))];
        let v = ValidationSet::sample(&sources, 30, 7).unwrap();
        let tags: Vec<(i64, i64)> = v.sequences.iter().map(|s| (s.labels[0], s.labels[1])).collect();
        // 30 / 3 = 10 per dataset; the second has only 3.
        for (d, want) in [(0, 10), (1, 3), (2, 10)] {
            assert_eq!(tags.iter().filter(|t| t.0 == d).count(), want, "dataset {d}");
        }
        let mut unique = tags.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), tags.len(), "no record drawn twice");
        let again = ValidationSet::sample(&sources, 30, 7).unwrap();
        assert_eq!(again.sequences, v.sequences, "one seed, one sample");
        let other = ValidationSet::sample(&sources, 30, 8).unwrap();
        assert_ne!(other.sequences, v.sequences);
        assert_eq!(v.batches(4, tch::Device::Cpu).unwrap().len(), 6);
    }
}

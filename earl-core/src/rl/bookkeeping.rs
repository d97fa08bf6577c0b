//! Checkpoint bookkeeping of the GRPO loop, as EARL's `rl/nano_aha_moment.py` and `rl/utils.py` do it: which
//! iterations save ([`saves_after`]) and what the clean-up after a save keeps ([`retention`], applied by
//! [`clean_up`]). Iterations are 0-based as in the reference; a checkpoint saved after iteration i holds i + 1
//! updates and is named `checkpoint-{i+1}` (its `global_step`, the iteration a resumed run starts at), so EARL's
//! `ckpt_{i:06}` is our `checkpoint-{i+1}`.
use std::path::Path;

use crate::error::{Error, Result};
use crate::train::checkpoint::list_checkpoints;

/// Whether the loop saves after (0-based) `iteration` of a `num_iterations` run with
/// `save_checkpoints_every_n_iterations = every` (0 = never). The reference's rule: every multiple of `every` and
/// the last iteration, but never iteration 0.
pub fn saves_after(iteration: u64, num_iterations: u64, every: u64) -> bool {
    every > 0 && iteration != 0 && (iteration.is_multiple_of(every) || iteration + 1 == num_iterations)
}

/// What the clean-up after a save does with one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    /// Kept whole (resumable).
    Full,
    /// Only the model is kept (`config.json` + `model.safetensors`, loadable, no longer resumable).
    ModelOnly,
    /// Removed entirely.
    Delete,
}

/// The clean-up after saving `checkpoint-{newest}`, for each listed (resumable) checkpoint step, as EARL's
/// `clean_up_checkpoints`: with `keep_every = 0` (EARL: unset) everything stays; otherwise every checkpoint but
/// the new one is deleted, except that those saved after an iteration that is a multiple of `keep_every` keep their
/// model.
pub fn retention(steps: &[u64], newest: u64, keep_every: u64) -> Vec<(u64, Retain)> {
    steps
        .iter()
        .map(|&step| {
            let iteration = step.saturating_sub(1);
            let what = if keep_every == 0 || step == newest {
                Retain::Full
            } else if iteration % keep_every == 0 {
                Retain::ModelOnly
            } else {
                Retain::Delete
            };
            (step, what)
        })
        .collect()
}

/// Applies [`retention`] to the checkpoints under `root` after `checkpoint-{newest}` was saved. A model-only
/// checkpoint loses `trainer_state.json` first, so it stops being listed (and resumed from) before its optimizer
/// state goes.
pub fn clean_up(root: &Path, newest: u64, keep_every: u64) -> Result<()> {
    let listed = list_checkpoints(root);
    let steps: Vec<u64> = listed.iter().map(|(s, _)| *s).collect();
    for ((_, dir), (step, what)) in listed.iter().zip(retention(&steps, newest, keep_every)) {
        match what {
            Retain::Full => {}
            Retain::ModelOnly => {
                for f in ["trainer_state.json", "optimizer.safetensors"] {
                    let p = dir.join(f);
                    if p.exists() {
                        std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                    }
                }
                tracing::info!(step, dir = %dir.display(), "kept the model of an older checkpoint");
            }
            Retain::Delete => {
                // Renamed to trash first, so a kill mid-delete never leaves a half checkpoint under its name.
                crate::fsio::remove_dir_atomic(dir, "prune")?;
                tracing::info!(step, dir = %dir.display(), "removed an older checkpoint");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_follow_the_reference_iterations() {
        let saved = |n: u64, every: u64| (0..n).filter(|&i| saves_after(i, n, every)).collect::<Vec<_>>();
        // Multiples of `every` and the last iteration; iteration 0 never.
        assert_eq!(saved(20, 5), vec![5, 10, 15, 19]);
        assert_eq!(saved(2000, 100).len(), 20);
        assert_eq!(saved(2000, 100).last(), Some(&1999));
        assert_eq!(saved(10, 5), vec![5, 9]);
        assert_eq!(saved(11, 5), vec![5, 10]);
        assert_eq!(saved(1, 1), Vec::<u64>::new());
        assert_eq!(saved(20, 0), Vec::<u64>::new());
    }

    #[test]
    fn clean_up_keeps_the_newest_and_the_models_at_multiples() {
        // A 20-iteration run saving every 5 and keeping every 10: saves after iterations 5, 10, 15, 19, i.e.
        // checkpoint-6, -11, -16, -20. Replay the clean-ups the loop does after each save.
        let mut listed: Vec<u64> = Vec::new();
        let mut models: Vec<u64> = Vec::new();
        for newest in [6, 11, 16, 20] {
            listed.push(newest);
            let plan = retention(&listed, newest, 10);
            models.extend(plan.iter().filter(|(_, r)| *r == Retain::ModelOnly).map(|(s, _)| *s));
            listed = plan.iter().filter(|(_, r)| *r == Retain::Full).map(|(s, _)| *s).collect();
        }
        // Iteration 10 (checkpoint-11) is a multiple of 10: its model stays; 5 and 15 are gone.
        assert_eq!((listed, models), (vec![20], vec![11]));
        // Unset: nothing is removed.
        assert!(retention(&[6, 11, 16, 20], 20, 0).iter().all(|(_, r)| *r == Retain::Full));
    }

    #[test]
    fn clean_up_on_disk() {
        let d = tempfile::tempdir().unwrap();
        for step in [4, 6, 11, 16] {
            let c = d.path().join(format!("checkpoint-{step}"));
            std::fs::create_dir_all(&c).unwrap();
            for f in ["config.json", "model.safetensors", "optimizer.safetensors"] {
                std::fs::write(c.join(f), "{}").unwrap();
            }
            // A checkpoint is complete (listed) only with a trainer state that parses.
            let state = crate::train::checkpoint::TrainerState {
                global_step: step,
                samples_seen: 0,
                seed: 0,
                config_hash: String::new(),
                config: serde_json::Value::Null,
            };
            std::fs::write(c.join("trainer_state.json"), serde_json::to_string(&state).unwrap()).unwrap();
        }
        clean_up(d.path(), 16, 5).unwrap();
        let files = |step: u64| {
            let mut v: Vec<String> = std::fs::read_dir(d.path().join(format!("checkpoint-{step}")))
                .map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            v.sort();
            v
        };
        assert!(!d.path().join("checkpoint-4").exists(), "iteration 3 is no multiple of 5");
        assert_eq!(files(6), vec!["config.json", "model.safetensors"]);
        assert_eq!(files(11), vec!["config.json", "model.safetensors"]);
        assert_eq!(files(16).len(), 4);
        assert_eq!(list_checkpoints(d.path()).len(), 1, "model-only checkpoints are not resumed from");
    }
}

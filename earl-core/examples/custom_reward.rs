//! Plugs a user-defined reward into GRPO: a [`Reward`] that scores how many distinct visual codes a predicted image
//! uses, trained on with the tiny RL experiment (experiments/rl/tiny.toml: the tiny bundle and fixtures/rl-tiny).
//! Two iterations on the CPU take a few seconds:
//! `cargo run -p earl-core --example custom_reward -- [ITERATIONS]`.
use std::path::Path;

use earl_core::rl::config::RlConfig;
use earl_core::rl::reward::{FinalReward, Reward, RewardInput, RewardOutput, RewardSet};
use earl_core::rl::run::{RlOptions, RlRunner};
use tch::{Device, Kind};

/// Share of distinct codes in the predicted grid (0 without an image), times 10 like the offline rewards.
struct CodeDiversity;

impl Reward for CodeDiversity {
    fn name(&self) -> &str {
        "code_diversity"
    }

    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> earl_core::Result<Vec<RewardOutput>> {
        Ok(inputs
            .iter()
            .map(|inp| {
                let share = inp.predicted_codes.map_or(0.0, |g| {
                    let mut codes = g.codes().to_vec();
                    codes.sort_unstable();
                    codes.dedup();
                    codes.len() as f64 / g.codes().len() as f64
                });
                RewardOutput::from_components([("distinct_share", share), ("overall", 10.0 * share)])
            })
            .collect())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cfg = RlConfig::load_with_env(&root.join("experiments/rl/tiny.toml"), &|_| None)?;
    // The final (trained-on) reward is the custom reward's `overall`.
    let rewards = RewardSet::new(vec![Box::new(CodeDiversity)], FinalReward::Overall("code_diversity".into()))?;
    let out = tempfile::tempdir()?;
    let opts = RlOptions {
        device: Device::Cpu,
        kind: Kind::Float,
        vq_dir: None,
        vq_kind: Kind::Float,
        out_dir: Some(out.path().to_path_buf()),
        max_iterations: Some(iterations),
        engine: earl_core::generate::Engine::Eager,
    };
    let mut runner = RlRunner::new(cfg, rewards, &opts)?;
    runner.run(&mut |r| {
        println!(
            "iteration {}: reward {:.3} ± {:.3}, loss {:.4}, {:?}",
            r.iteration, r.reward_mean, r.reward_std, r.loss, r.components
        )
    })?;
    Ok(())
}

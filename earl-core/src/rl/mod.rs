//! Reinforcement learning pieces that need no generation engine: GRPO math ([`grpo`]), the reward interface and
//! offline rewards ([`reward`]), the RL experiment configuration ([`config`]) and the checkpoint schedule
//! ([`bookkeeping`]). The verifier rewards, which need the network, live in `earl-eval`; the RL loop ([`run`])
//! composes all of them.
pub mod bookkeeping;
pub mod config;
pub mod grpo;
pub mod offline;
pub mod reward;
pub mod run;

pub use offline::{PixelSimilarity, TokenAgreement};
pub use reward::{FinalReward, Reward, RewardInput, RewardOutput, RewardSet};

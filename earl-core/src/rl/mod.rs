//! Reinforcement learning pieces that need no generation engine: GRPO math ([`grpo`]), the reward interface and
//! offline rewards ([`reward`]), and the RL experiment configuration ([`config`]). The verifier rewards, which need
//! the network, live in `earl-eval`; the RL loop composes all of them.
pub mod config;
pub mod grpo;
pub mod offline;
pub mod reward;
pub mod run;

pub use offline::{PixelSimilarity, TokenAgreement};
pub use reward::{CodeGrid, FinalReward, Reward, RewardInput, RewardOutput, RewardSet};

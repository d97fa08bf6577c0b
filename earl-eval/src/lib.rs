//! EARL evaluation and the verifier side of RL: an OpenAI-compatible chat client ([`chat`]), lenient reply
//! parsing ([`parse`]), verifier prompts ([`prompts`]) and the VIEScore / GroundScore rewards ([`verifier`]) that
//! implement `earl_core::rl::Reward`. The verifier section of RL experiments is parsed and validated here
//! ([`config`]); [`rewards::reward_set`] builds the rewards an RL experiment asks for. All network code of the
//! project lives in this crate. `earl eval` is [`bench`] (the benchmarks), [`judge`] (VIEScore and other judges)
//! and [`run`] (the evaluation loop and its run directory); run directories are read back by [`rundir`] into the
//! paper's table ([`table`]) and into self-contained HTML reports and comparisons ([`report`]). Experiment
//! chains (SFT → RL → eval from one file) are [`chain`]. [`mini`] makes the EARL-mini world's test splits
//! benchmarks and its exact verifier a judge.
#![warn(missing_docs)]
mod ask;
pub mod bench;
pub mod chain;
pub mod chat;
pub mod config;
pub mod judge;
pub mod mini;
pub mod parse;
pub mod prompts;
pub mod report;
pub mod rewards;
pub mod run;
pub mod rundir;
pub mod table;
pub mod verifier;

pub use bench::{BenchRow, BenchmarkSource};
pub use chat::{ChatClient, ChatError, ChatRequest, ClientOptions};
pub use config::{PromptSource, RlExperiment, VerifierConfig};
pub use judge::{Judge, JudgeInput, JudgeMode, Verdict, VieScoreJudge, VieScoreJudgeOptions};
pub use rewards::{reward_set, verifier_settings};
pub use verifier::{GroundScore, Unparsable, VerifierOptions, VieScore};

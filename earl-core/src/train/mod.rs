//! Supervised fine-tuning (SFT) as EARL's paper runs it: next-token cross-entropy on the response (edited image and,
//! for "think" runs, the chain of thought) of left-padded batches, AdamW with transformers' parameter groups,
//! warm-up + cosine-to-minimum schedule, global-norm clipping, gradient accumulation, fp32 master weights behind a
//! bf16 (or fp32) compute model, atomic HF-compatible checkpoints with exact resume. Losses, schedule and optimizer
//! are pure functions tested on hand-sized inputs; [`trainer::SftTrainer`] wires them to the model.
pub mod batch;
pub mod checkpoint;
pub mod divergence;
pub mod experiment;
pub mod fingerprint;
pub mod loss;
pub mod optim;
pub mod recompute;
pub mod run;
pub mod schedule;
pub mod sources;
pub mod trainer;

pub use batch::{collate_left, Batch, Sequence};
pub use checkpoint::{restore_checkpoint, resume_latest, save_checkpoint, TrainerState};
pub use divergence::{NanPolicy, SkipReason};
pub use experiment::{DataFormat, SftExperiment};
pub use loss::{sft_loss, LossMetrics, LossNorm, IGNORE_INDEX};
pub use optim::{AdamW, AdamWConfig};
pub use recompute::{checkpointed_backward, checkpointed_backward_chunked};
pub use run::{
    edit_sequence, open_sources, open_validation_sources, run_sft, run_sft_locked, DataStream, RunControl,
    SequenceShards, SequenceSource, StepLog, ValidationSet,
};
pub use schedule::CosineSchedule;
pub use trainer::{EvalReport, Recipe, SftTrainer, StepReport};

//! Grid-constrained, seeded, batched generation: the path `earl edit`, RL rollouts and evaluation sample through.
//! [`constraint`] keeps a response a well-formed h×w image (EARL's free-form prefix constraint), [`sampling`] turns
//! logits into tokens deterministically per (seed, request, sample), and [`engine`] drives the model with a
//! preallocated KV cache (prefill once, fork per sample).
pub mod constraint;
pub mod engine;
pub mod sampling;

pub use constraint::{GridConstraint, ImageTokens, RowConstraint};
pub use engine::{
    generate, generate_keyed, response_budget, FinishReason, GeneratedSample, GenerationConfig, GenerationRequest,
};
pub use sampling::{sample_stream, SamplingParams, TokenSampler, TopK};

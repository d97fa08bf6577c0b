//! Grid-constrained, seeded, batched generation: the path `earl edit`, RL rollouts and evaluation sample through.
//! [`constraint`] keeps a response a well-formed h×w image (EARL's free-form prefix constraint), [`sampling`] turns
//! logits into tokens deterministically per (seed, request, sample), and [`engine`] drives the model with a
//! preallocated KV cache (prefill once, fork per sample). [`graph`] runs the same generation with the decode step
//! replayed from CUDA graphs; [`Engine`] ([`engine_choice`]) picks the path.
pub mod constraint;
pub mod engine;
pub mod engine_choice;
pub mod graph;
pub mod sampling;

pub use constraint::{GridConstraint, ImageTokens, RowConstraint};
pub use engine::{
    generate, generate_keyed, response_budget, FinishReason, GeneratedSample, GenerationConfig, GenerationRequest,
};
pub use engine_choice::Engine;
pub use sampling::{sample_stream, SamplingParams, TokenSampler, TopK};

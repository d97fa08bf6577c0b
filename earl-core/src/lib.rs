//! earl-core: the numerical core of EARL-rs — Emu3 configuration, checkpoint loading, the decoder with its
//! preallocated KV cache, and parity tooling against the reference implementation (transformers 5.17.0 /
//! torch 2.11.0), the VQ vision tokenizer and image processing, the text tokenizer and EARL prompt layouts,
//! grid-constrained seeded generation, SFT and GRPO building blocks. The library
//! has no CLI or network dependencies; it reports through `tracing` and returns typed [`Error`]s.
pub mod collate;
pub mod config;
pub mod data;
pub mod device;
pub mod edit;
pub mod error;
pub mod experiment;
pub mod fsio;
pub mod generate;
pub mod grid;
pub mod imageproc;
pub mod kv_cache;
pub mod model;
pub mod parity;
pub mod prompt;
pub mod rl;
pub mod runlock;
pub mod tokenizer;
pub mod torch_cuda;
pub mod train;
pub mod vq;
pub mod weights;

pub use config::{ConfigDialect, Emu3Config, RawEmu3Config, RopeScaling};
pub use error::{Error, Result};
pub use grid::CodeGrid;
pub use kv_cache::KvCache;
pub use model::{Emu3ForCausalLM, ForwardArgs};
pub use parity::{compare, ParityReport};
pub use prompt::{Prefill, PromptBuilder};
pub use tokenizer::{Emu3Tokenizer, SpecialIds};
pub use vq::{Emu3VqModel, VqConfig, VqLayout, VqRandomSource};
pub use weights::{RandomSource, SafetensorsStore, TensorSource};

/// The README's code (its "Library use" snippet), compiled by `cargo test --doc` so that it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

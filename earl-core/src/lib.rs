//! earl-core: the numerical core of EARL-rs, a Rust implementation of EARL ("The Promise of RL for Autoregressive
//! Image Editing"): image editing with the Emu3 decoder and its VQ vision tokenizer, trained by SFT and then GRPO.
//! The numerical reference is transformers 5.17.0 (`Emu3ForCausalLM`, `Emu3VQVAE`) on torch 2.11.0; EARL's
//! behaviour (prompts, grid constraint, sampling, losses, rewards) follows the public EARL and BAAI Emu3 code.
//!
//! The library has no CLI, `anyhow` or network dependency: it reports through `tracing`, returns one-line typed
//! [`Error`]s (never panics on user input; libtorch failures become [`Error::Torch`]) and writes every file
//! atomically ([`fsio`]). The verifier client and rewards live in `earl-eval`, the `earl` binary in `earl-cli`.
//! A crate that depends on earl-core gets libtorch's CUDA backend when it is installed ([`torch_cuda`]).
//!
//! # Modules
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | [`Emu3Config`]: the decoder's `config.json` in all three dialects → one validated config |
//! | [`weights`] | [`TensorSource`]: memory-mapped safetensors checkpoints ([`SafetensorsStore`]), seeded random weights |
//! | [`model`] | [`Emu3ForCausalLM`]: the decoder (GQA attention, RoPE, SwiGLU), full and cached forward passes |
//! | [`kv_cache`] | [`KvCache`]: the preallocated batched key/value cache, padding mask and position ids |
//! | [`parity`] | comparison with reference outputs (relative L2, max abs error over real positions) |
//! | [`grid`] | [`CodeGrid`]: the one h×w grid of visual codes, its `codes.json` form and shard encoding |
//! | [`vq`] | [`Emu3VqModel`]: the vision tokenizer (encode image → code grid, decode back), its config and layouts |
//! | [`imageproc`] | image loading with decompression-bomb limits, EARL's area resize, Pillow-exact bicubic |
//! | [`tokenizer`] | [`Emu3Tokenizer`]: text ⇄ ids exactly as the reference, role tokens, visual-code ids |
//! | [`prompt`] | [`PromptBuilder`]: EARL's prompt layouts as ids, the assistant prefills, the response parser |
//! | [`bundle`] | [`bundle::Bundle`]: a model bundle's own defaults (`earl-bundle.toml`: VQ, image area, prefill, sampling) |
//! | [`collate`] | the one left-padding collate of generation, SFT and GRPO |
//! | [`generate`](mod@generate) | seeded, batched, grid-constrained generation: sampler, eager and CUDA-graph decoding |
//! | [`edit`] | [`Editor`]: the one edit pipeline (image → codes → prompt → generation → parsed grid → image) |
//! | [`data`] | tokenized edit records, the sharded JSONL dataset format, parquet input, EARL's mixtures |
//! | [`experiment`] | the one experiment-file layer: `extends`, `${VAR}`, errors naming file, line and key |
//! | [`train`] | SFT: loss, AdamW with fp32 masters, schedule, checkpointing, `nan_policy`, checkpoints, the run loop |
//! | [`rl`] | GRPO: advantages, log-probs, loss, token schedules, the reward interface, offline rewards, the loop |
//! | [`device`] | device and dtype names (`auto`), the process-wide TF32 switch |
//! | [`torch_cuda`] | loads libtorch's CUDA library at first use, for crates outside this workspace |
//! | [`fsio`] | crash-safe writes and removals, test fault injection |
//! | [`runlock`] | one run per output directory (`flock`) |
//! | [`error`] | [`Error`] and [`Result`] |
//!
//! # Quick start
//!
//! The README's "Library use" section shows the decoder on its own; an image edit end to end is:
//!
//! ```no_run
//! use earl_core::{EditInput, EditOptions, Editor};
//! use tch::{Device, Kind};
//! # fn main() -> earl_core::Result<()> {
//! let (model, vq) = ("path/to/EARL".as_ref(), "path/to/Emu3-VisionTokenizer".as_ref());
//! let editor = Editor::load(model, vq, model, Kind::BFloat16, Kind::Float, Device::Cuda(0))?;
//! let image = earl_core::imageproc::load_rgb("in.jpg".as_ref(), &Default::default())?;
//! let input = EditInput { source: editor.encode_image(&image)?, instruction: "Make the sky pink".into() };
//! let (outputs, _timings) = editor.edit(&[input], &EditOptions::default(), &mut |_, _| {})?;
//! match &outputs[0].grid {
//!     Ok(grid) => earl_core::imageproc::save(&editor.decode_grid(grid)?, "out.png".as_ref())?,
//!     Err(why) => eprintln!("no image: {why}"),
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
pub mod bundle;
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

// Errors.
pub use error::{Error, Result};

// Editing: the one pipeline.
pub use edit::{EditInput, EditOptions, EditOutput, Editor, ImageCodec};

// Generation.
pub use generate::{
    generate, FinishReason, GeneratedSample, GenerationConfig, GenerationRequest, GridConstraint, ImageTokens,
    SamplingParams, TokenSampler, TopK,
};

// The decoder.
pub use config::{ConfigDialect, Emu3Config, RawEmu3Config, RopeScaling};
pub use kv_cache::KvCache;
pub use model::{Emu3ForCausalLM, ForwardArgs};
pub use parity::{compare, ParityReport};
pub use weights::{RandomSource, SafetensorsStore, TensorSource};

// The vision tokenizer, images and code grids.
pub use grid::CodeGrid;
pub use imageproc::{ImageProcessConfig, LoadLimits};
pub use vq::{Emu3VqModel, VqConfig, VqLayout, VqRandomSource};

// Text tokenizer and prompts.
pub use prompt::{Prefill, PromptBuilder};
pub use tokenizer::{Emu3Tokenizer, SpecialIds};

// Data.
pub use data::{EditRecord, ShardReader, ShardWriter};

// Trainers.
pub use rl::config::RlConfig;
pub use rl::run::{RlOptions, RlRunner};
pub use rl::{Reward, RewardSet};
pub use train::{CosineSchedule, NanPolicy, Recipe, SftExperiment, SftTrainer};

/// The README's code (its "Library use" snippet), compiled by `cargo test --doc` so that it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

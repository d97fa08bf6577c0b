//! The Emu3 decoder (`Emu3ForCausalLM` semantics of transformers 5.17.0): embedding → N × [RMSNorm → GQA attention
//! with rotary embeddings → residual → RMSNorm → SwiGLU MLP → residual] → RMSNorm → `lm_head`. The model is
//! immutable and returns logits; caching lives in [`crate::kv_cache::KvCache`], sampling elsewhere.
mod attention;
mod causal_lm;
pub mod init;
mod layers;

pub(crate) use attention::repeat_kv;
pub use attention::Attention;
pub use causal_lm::{Emu3ForCausalLM, ForwardArgs, LayerInputs};
pub use layers::{Linear, Mlp, RmsNorm, Rotary};

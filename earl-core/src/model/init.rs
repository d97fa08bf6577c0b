//! Fresh, untrained Emu3 decoders for training from scratch (EARL-mini trains its small LM here). The layout is
//! the one every checkpoint of the project has — `config.json` in transformers' `emu3_text_model` dialect plus
//! `model.safetensors` — so SFT, RL, generation and transformers load an initialised model like any other.
//!
//! The initialisation is the usual one of Llama-style decoders (and transformers' `_init_weights` with
//! `initializer_range`): every matrix N(0, std²), RMSNorm weights 1. The two projections that write into the
//! residual stream (`o_proj`, `down_proj`) are further scaled by 1/√(2·layers), as GPT-2 does, so the residual
//! stream's variance does not grow with depth at the start. Each tensor has its own generator seeded by (seed,
//! name): the same seed gives the same file whatever the order of creation.
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::config::Emu3Config;
use crate::error::{guard, Error, Result};
use crate::model::Emu3ForCausalLM;
use crate::train::checkpoint::{hf_config_json, write_safetensors};
use crate::weights::TensorSource;

/// The initialisation of a fresh model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InitConfig {
    /// Seeds every tensor's generator together with its name.
    pub seed: u64,
    /// Standard deviation of the matrices (transformers' `initializer_range`, 0.02 by default).
    pub std: f64,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig { seed: 0, std: 0.02 }
    }
}

/// A [`TensorSource`] that creates the initial weights on the CPU in f32.
struct InitSource {
    init: InitConfig,
    residual_scale: f64,
}

impl TensorSource for InitSource {
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        guard(&format!("initialising `{name}`"), || {
            if name.ends_with("norm.weight") {
                return Ok(Tensor::f_ones(shape, (Kind::Float, Device::Cpu))?);
            }
            if name.ends_with(".bias") {
                // Biases start at zero, as transformers' `_init_weights` sets them.
                return Ok(Tensor::f_zeros(shape, (Kind::Float, Device::Cpu))?);
            }
            let h = name
                .bytes()
                .fold(self.init.seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
            tch::manual_seed((h >> 1) as i64);
            let std = if name.contains("o_proj") || name.contains("down_proj") {
                self.init.std * self.residual_scale
            } else {
                self.init.std
            };
            Ok(Tensor::f_randn(shape, (Kind::Float, Device::Cpu))? * std)
        })
    }
    fn contains(&self, name: &str) -> bool {
        // Every tensor the config needs, biases included when it asks for them: the loader only asks for those.
        !name.is_empty()
    }
    fn is_stored(&self) -> bool {
        false
    }
    fn kind(&self) -> Kind {
        Kind::Float
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
}

/// A freshly initialised model of `cfg` on the CPU, in f32.
pub fn init_model(cfg: &Emu3Config, init: InitConfig) -> Result<Emu3ForCausalLM> {
    cfg.validate().map_err(Error::input)?;
    if !(init.std > 0.0) || !init.std.is_finite() {
        return Err(Error::input(format!("the initial standard deviation must be positive, got {}", init.std)));
    }
    let src = InitSource { init, residual_scale: 1.0 / ((2 * cfg.num_layers.max(1)) as f64).sqrt() };
    let _no_grad = tch::no_grad_guard();
    Emu3ForCausalLM::load(&src, cfg)
}

/// Writes a freshly initialised model of `cfg` to `dir` (`config.json` and `model.safetensors` in `kind`); returns
/// its parameter count. Existing files of those names are replaced.
pub fn write_initial_checkpoint(cfg: &Emu3Config, init: InitConfig, kind: Kind, dir: &Path) -> Result<i64> {
    let model = init_model(cfg, init)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tensors = model.named_parameters();
    let count = tensors.iter().map(|(_, t)| t.numel() as i64).sum();
    write_safetensors(&dir.join("model.safetensors"), &tensors, kind)?;
    let mut config = hf_config_json(cfg, kind);
    config["initializer_range"] = serde_json::json!(init.std);
    let text = serde_json::to_string_pretty(&config).map_err(|e| Error::input(e.to_string()))? + "\n";
    crate::fsio::write_atomic(&dir.join("config.json"), text.as_bytes())?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_model_loads_back_with_unit_norms_and_scaled_residual_projections() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Emu3Config::tiny();
        let n = write_initial_checkpoint(&cfg, InitConfig { seed: 3, std: 0.02 }, Kind::Float, dir.path()).unwrap();
        assert_eq!(n, cfg.num_parameters());
        let m = Emu3ForCausalLM::from_dir(dir.path(), Kind::Float, Device::Cpu).unwrap();
        let p: std::collections::HashMap<String, Tensor> = m.named_parameters().into_iter().collect();
        assert_eq!(p["model.norm.weight"].min().double_value(&[]), 1.0);
        let std = |name: &str| p[name].std(true).double_value(&[]);
        let q = std("model.layers.0.self_attn.q_proj.weight");
        let o = std("model.layers.0.self_attn.o_proj.weight");
        assert!((q - 0.02).abs() < 0.004, "q_proj std {q}");
        let want = 0.02 / ((2 * cfg.num_layers) as f64).sqrt();
        assert!((o - want).abs() < want * 0.25, "o_proj std {o}, want {want}");
    }

    #[test]
    fn the_same_seed_gives_the_same_weights_and_another_seed_others() {
        let cfg = Emu3Config::tiny();
        let w = |seed| init_model(&cfg, InitConfig { seed, std: 0.02 }).unwrap().embed_tokens;
        assert!(w(1).equal(&w(1)));
        assert!(!w(1).equal(&w(2)));
        assert!(init_model(&cfg, InitConfig { seed: 0, std: 0.0 }).is_err());
    }
}

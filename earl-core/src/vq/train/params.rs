//! The trainable weights of a vision tokenizer: one fp32 leaf tensor per transformers `Emu3VQVAE` state-dict entry,
//! under exactly its name. The store is a [`TensorSource`], so the inference modules of `crate::vq` are built from
//! it unchanged (a rebuild per step is cheap: it shares the leaves, and only re-stacks the attention projections),
//! and gradients flow from their outputs back to the leaves. It saves as a transformers checkpoint: `config.json`
//! (`model_type: emu3_vqgan`), `model.safetensors` (with the batch norms' `num_batches_tracked` counters, which
//! `Emu3VQVAE` keeps in its state dict) and `preprocessor_config.json`.
//!
//! The temporal batch norms stay in eval form (running mean 0, variance 1, never updated): the network then computes
//! the same function in training and at inference, in this crate and in transformers, and the norms' affine weights
//! are trained like any other parameter.
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use tch::{Device, Kind, Tensor};

use super::super::{Emu3VqModel, VqConfig, VqLayout};
use crate::error::{guard, Error, Result};
use crate::weights::TensorSource;

/// The fp32 leaves, in the order the model loader asks for them.
#[derive(Debug)]
pub struct ParamStore {
    params: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
    device: Device,
}

/// Whether a state-dict entry is a buffer (batch-norm statistics), not a parameter.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// The initial value of one tensor, drawn from its own generator seeded by (seed, name) so values do not depend
/// on load order: convolution and linear weights as torch's default (`U(±1/√fan_in)`), biases 0, norm scales 1,
/// the spatial norms' predicted scale starting at 1 (bias 1), batch-norm statistics (0, 1), and the codebook
/// `U(±1/K)` (replaced by encoder outputs on the first batch, see `super::step`).
fn init_tensor(seed: u64, name: &str, shape: &[i64]) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    let h = name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    tch::manual_seed((h >> 1) as i64);
    let uniform = |bound: f64| Tensor::rand(shape, opts) * (2.0 * bound) - bound;
    let ones = name.ends_with(".running_var") || name.ends_with("conv_y.bias");
    if ones || (shape.len() == 1 && name.ends_with(".weight")) {
        Tensor::ones(shape, opts) // running variances, SpatialNorm's y-bias, GroupNorm / BatchNorm scales
    } else if shape.len() == 1 {
        Tensor::zeros(shape, opts) // biases and running means
    } else if name.ends_with("quantize.embedding.weight") {
        uniform(1.0 / shape[0] as f64)
    } else {
        let fan_in: i64 = shape[1..].iter().product();
        uniform(1.0 / (fan_in as f64).sqrt())
    }
}

/// Records every tensor the loader asks for while handing out initial values.
struct Recorder {
    seed: u64,
    seen: RefCell<Vec<(String, Tensor)>>,
}

impl TensorSource for Recorder {
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = init_tensor(self.seed, name, shape);
        self.seen.borrow_mut().push((name.to_string(), t.shallow_clone()));
        Ok(t)
    }
    fn contains(&self, _name: &str) -> bool {
        true
    }
    fn kind(&self) -> Kind {
        Kind::Float
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn is_stored(&self) -> bool {
        false
    }
}

impl ParamStore {
    /// Fresh weights for `cfg` (transformers names), drawn from `seed`, on `device`.
    pub fn init(cfg: &VqConfig, seed: u64, device: Device) -> Result<Self> {
        let cfg = VqConfig { layout: VqLayout::Preset, ..cfg.clone() };
        let rec = Recorder { seed, seen: RefCell::new(Vec::new()) };
        tch::no_grad(|| Emu3VqModel::load(&rec, cfg))?;
        let seen = rec.seen.into_inner();
        guard("creating the trainable VQ weights", || {
            let mut params = Vec::with_capacity(seen.len());
            let mut index = HashMap::with_capacity(seen.len());
            for (name, t) in seen {
                let leaf = t.to_device(device).set_requires_grad(!is_buffer(&name));
                index.insert(name.clone(), params.len());
                params.push((name, leaf));
            }
            Ok(ParamStore { params, index, device })
        })
    }

    /// The model over these weights (its tensors are views of the leaves, so gradients reach them).
    pub fn model(&self, cfg: &VqConfig) -> Result<Emu3VqModel> {
        Emu3VqModel::load(self, VqConfig { layout: VqLayout::Preset, ..cfg.clone() })
    }

    /// (name, leaf) of every trainable parameter (buffers excluded), in load order.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        self.params.iter().filter(|(n, _)| !is_buffer(n)).map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
    }

    /// The leaf of `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.params[i].1)
    }

    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> i64 {
        self.params.iter().filter(|(n, _)| !is_buffer(n)).map(|(_, t)| t.numel() as i64).sum()
    }

    /// Clears every parameter's gradient.
    pub fn zero_grads(&self) {
        for (_, t) in &self.params {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Writes `dir/model.safetensors` (fp32, sorted names, plus an i64 `num_batches_tracked` of 0 per batch norm),
    /// `dir/config.json` and `dir/preprocessor_config.json`; returns the weights' size in bytes.
    pub fn save(&self, dir: &Path, cfg: &VqConfig) -> Result<u64> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        guard("saving the VQ weights", || {
            for (name, t) in &self.params {
                let c = t.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
                let mut buf = vec![0u8; c.numel() * 4];
                c.f_copy_data_u8(&mut buf, c.numel())?;
                entries.push((name.clone(), Dtype::F32, c.size().iter().map(|&d| d as usize).collect(), buf));
                if let Some(bn) = name.strip_suffix(".running_mean") {
                    entries.push((format!("{bn}.num_batches_tracked"), Dtype::I64, vec![], vec![0u8; 8]));
                }
            }
            Ok(())
        })?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut views = Vec::with_capacity(entries.len());
        for (n, d, s, b) in &entries {
            views.push((n.as_str(), TensorView::new(*d, s.clone(), b).map_err(|e| Error::input(e.to_string()))?));
        }
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = safetensors::tensor::serialize(views, &Some(meta))
            .map_err(|e| Error::input(format!("serialising the VQ weights: {e}")))?;
        crate::fsio::write_atomic(&dir.join("model.safetensors"), &bytes)?;
        let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("JSON values serialise") + "\n";
        crate::fsio::write_atomic(&dir.join("config.json"), json(&config_json(cfg)).as_bytes())?;
        crate::fsio::write_atomic(&dir.join("preprocessor_config.json"), json(&preprocessor_json(cfg)).as_bytes())?;
        Ok(bytes.len() as u64)
    }
}

impl TensorSource for ParamStore {
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            searched: "the trainable VQ weights".into(),
        })?;
        if t.size() != shape {
            return Err(Error::input(format!("trainable `{name}` is {:?}, the model asks for {shape:?}", t.size())));
        }
        Ok(t.shallow_clone())
    }
    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
    fn kind(&self) -> Kind {
        Kind::Float
    }
    fn device(&self) -> Device {
        self.device
    }
}

/// `config.json` as transformers 5.17.0 `Emu3VQVAEConfig.save_pretrained` writes it (`hidden_size` is the
/// attention width: the innermost level's channels, where the middle blocks attend).
pub fn config_json(cfg: &VqConfig) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["Emu3VQVAE"],
        "attention_dropout": 0.0,
        "attn_resolutions": cfg.attn_resolutions,
        "base_channels": cfg.base_channels,
        "channel_multiplier": cfg.channel_multiplier,
        "codebook_size": cfg.codebook_size,
        "double_latent": false,
        "dtype": "float32",
        "embed_dim": cfg.embed_dim,
        "hidden_size": cfg.inner_channels(),
        "in_channels": cfg.in_channels,
        "latent_channels": cfg.latent_channels,
        "model_type": "emu3_vqgan",
        "num_attention_heads": cfg.num_attention_heads,
        "num_res_blocks": cfg.num_res_blocks,
        "out_channels": cfg.out_channels,
        "temporal_downsample_factor": cfg.temporal_downsample_factor,
        "transformers_version": "5.17.0",
    })
}

/// The Emu3 image processor's config (mean = std = 0.5, rescale 1/255), with pixel bounds that admit small
/// images (the released tokenizer's `min_pixels` is 512²).
pub fn preprocessor_json(cfg: &VqConfig) -> serde_json::Value {
    let f = cfg.spatial_factor();
    serde_json::json!({
        "image_processor_type": "Emu3VisionVQImageProcessor",
        "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "max_pixels": 1_048_576, "min_pixels": f * f, "resample": 3, "rescale_factor": 1.0 / 255.0,
        "spatial_factor": f,
    })
}

//! Emu3 language-model configuration, in two levels: [`RawEmu3Config`] mirrors `config.json` in every dialect users
//! have — the original EARL/BAAI remote-code one (`"model_type": "Emu3"`, top-level `rope_theta`/`rope_scaling`),
//! transformers' text config (`"emu3_text_model"`, `rope_parameters`) and transformers' multimodal config (`"emu3"`
//! with a nested `text_config`) — and converts into the validated [`Emu3Config`], which has no `Option`s.
//! Defaults follow transformers 5.17.0 `Emu3TextConfig` (the 8.5B Emu3 shape).
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Which `config.json` dialect a checkpoint was written in; it also decides where weights live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigDialect {
    /// `"model_type": "Emu3"`, the remote-code config of BAAI/Emu3 and EARL checkpoints.
    Original,
    /// `"model_type": "emu3_text_model"` (transformers `Emu3TextConfig`, `Emu3ForCausalLM`).
    TransformersText,
    /// `"model_type": "emu3"` with `text_config` (transformers `Emu3ForConditionalGeneration`).
    TransformersMultimodal,
    /// Built in code (presets, tests).
    Preset,
}

/// Rotary-embedding variants we implement. Others are rejected with a clear error, never silently ignored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_type: "default"`, or `rope_scaling: null`).
    None,
    /// Position interpolation: inverse frequencies divided by `factor` (transformers `rope_type: "linear"`).
    Linear {
        /// Divisor of the inverse frequencies; positive.
        factor: f64,
    },
}

/// The validated configuration every module is built from. [`Emu3Config::validate`] holds for every value built by
/// [`RawEmu3Config::into_config`] and the presets; code that builds one by hand should call it.
#[derive(Debug, Clone, PartialEq)]
pub struct Emu3Config {
    /// Rows of the embedding and LM head: text tokens, special tokens and the visual codes.
    pub vocab_size: i64,
    /// Width of the residual stream.
    pub hidden_size: i64,
    /// Width of the SwiGLU MLP's gate and up projections.
    pub intermediate_size: i64,
    /// Decoder layers (`num_hidden_layers` in `config.json`).
    pub num_layers: i64,
    /// Query heads (`num_attention_heads`).
    pub num_heads: i64,
    /// Key/value heads (`num_key_value_heads`); divides `num_heads` (grouped-query attention).
    pub num_kv_heads: i64,
    /// Width of one head; even (rotary halves). Defaults to `hidden_size / num_heads`.
    pub head_dim: i64,
    /// Longest sequence the model was trained for; generation refuses to exceed it unless told otherwise.
    pub max_position_embeddings: i64,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// RoPE variant, from `rope_scaling` (original dialect) or `rope_parameters` (transformers 5).
    pub rope_scaling: RopeScaling,
    /// Whether q/k/v/o projections carry a bias.
    pub attention_bias: bool,
    /// Whether the MLP projections carry a bias.
    pub mlp_bias: bool,
    /// Used both inside attention and on the two residual branches in training mode, as the reference does.
    pub attention_dropout: f64,
    /// Whether the LM head shares the embedding matrix (no `lm_head.weight` is read).
    pub tie_word_embeddings: bool,
    /// Padding token id; inside the vocabulary.
    pub pad_token_id: i64,
    /// Beginning-of-sequence token id; inside the vocabulary.
    pub bos_token_id: i64,
    /// Token ids that end generation (`eos_token_id` may be an integer or a list in `config.json`).
    pub eos_token_ids: Vec<i64>,
    /// The `config.json` dialect this came from, which decides the weight names.
    pub dialect: ConfigDialect,
}

/// Serde mirror of `config.json`; unknown fields are ignored, every field is optional here and checked in
/// [`RawEmu3Config::into_config`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawEmu3Config {
    /// `"Emu3"`, `"emu3_text_model"` or `"emu3"`; selects the dialect.
    pub model_type: Option<String>,
    /// The language-model part of a multimodal (`"emu3"`) config.
    pub text_config: Option<Box<RawEmu3Config>>,
    /// See [`Emu3Config::vocab_size`].
    pub vocab_size: Option<i64>,
    /// See [`Emu3Config::hidden_size`].
    pub hidden_size: Option<i64>,
    /// See [`Emu3Config::intermediate_size`].
    pub intermediate_size: Option<i64>,
    /// See [`Emu3Config::num_layers`].
    pub num_hidden_layers: Option<i64>,
    /// See [`Emu3Config::num_heads`].
    pub num_attention_heads: Option<i64>,
    /// See [`Emu3Config::num_kv_heads`]; defaults to `num_attention_heads` (no GQA).
    pub num_key_value_heads: Option<i64>,
    /// See [`Emu3Config::head_dim`].
    pub head_dim: Option<i64>,
    /// Must be `"silu"` when present.
    pub hidden_act: Option<String>,
    /// See [`Emu3Config::max_position_embeddings`].
    pub max_position_embeddings: Option<i64>,
    /// See [`Emu3Config::rms_norm_eps`].
    pub rms_norm_eps: Option<f64>,
    /// RoPE base (original dialect; transformers 5 keeps it in `rope_parameters`).
    pub rope_theta: Option<f64>,
    /// Original-dialect RoPE variant (`{"type": "linear", "factor": f}` or null).
    pub rope_scaling: Option<Value>,
    /// transformers-5 RoPE block (`{rope_type, rope_theta, factor?}`); wins over the top-level fields.
    pub rope_parameters: Option<Value>,
    /// See [`Emu3Config::attention_bias`].
    pub attention_bias: Option<bool>,
    /// See [`Emu3Config::mlp_bias`].
    pub mlp_bias: Option<bool>,
    /// See [`Emu3Config::attention_dropout`].
    pub attention_dropout: Option<f64>,
    /// See [`Emu3Config::tie_word_embeddings`].
    pub tie_word_embeddings: Option<bool>,
    /// See [`Emu3Config::pad_token_id`].
    pub pad_token_id: Option<i64>,
    /// See [`Emu3Config::bos_token_id`].
    pub bos_token_id: Option<i64>,
    /// An integer or a list of integers.
    pub eos_token_id: Option<Value>,
}

fn json_error(path: &Path, e: &serde_json::Error) -> Error {
    Error::Json { path: path.to_path_buf(), line: e.line(), column: e.column(), msg: e.to_string() }
}

impl RawEmu3Config {
    /// Parses `config.json`; syntax and type errors name the file, line and column.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| json_error(path, &e))
    }

    /// Validates and converts; `path` is only used in error messages.
    pub fn into_config(self, path: &Path) -> Result<Emu3Config> {
        let bad = |msg: String| Error::Config { path: path.to_path_buf(), msg };
        let (raw, dialect) = match self.model_type.as_deref() {
            Some("emu3") => {
                let text = self.text_config.ok_or_else(|| bad("model_type \"emu3\" without a text_config".into()))?;
                (*text, ConfigDialect::TransformersMultimodal)
            }
            Some("emu3_text_model") => (self, ConfigDialect::TransformersText),
            Some("Emu3") => (self, ConfigDialect::Original),
            Some(other) => return Err(bad(format!("model_type {other:?} is not an Emu3 language model"))),
            None => return Err(bad("missing model_type".into())),
        };
        let d = Emu3Config::emu3_8b();
        let hidden_size = raw.hidden_size.unwrap_or(d.hidden_size);
        let num_heads = raw.num_attention_heads.unwrap_or(d.num_heads);
        if let Some(act) = raw.hidden_act.as_deref() {
            if act != "silu" {
                return Err(bad(format!("hidden_act {act:?} is not supported (Emu3 uses \"silu\")")));
            }
        }
        let (rope_theta, rope_scaling) = parse_rope(&raw, dialect).map_err(bad)?;
        let eos_token_ids = match raw.eos_token_id {
            None => d.eos_token_ids.clone(),
            Some(Value::Number(n)) => vec![n.as_i64().ok_or_else(|| bad("eos_token_id is not an integer".into()))?],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_i64().ok_or_else(|| bad("eos_token_id list holds a non-integer".into())))
                .collect::<Result<Vec<_>>>()?,
            Some(other) => return Err(bad(format!("eos_token_id {other} is neither an integer nor a list"))),
        };
        let cfg = Emu3Config {
            vocab_size: raw.vocab_size.unwrap_or(d.vocab_size),
            hidden_size,
            intermediate_size: raw.intermediate_size.unwrap_or(d.intermediate_size),
            num_layers: raw.num_hidden_layers.unwrap_or(d.num_layers),
            num_heads,
            num_kv_heads: raw.num_key_value_heads.unwrap_or(num_heads),
            head_dim: raw.head_dim.unwrap_or(if num_heads > 0 { hidden_size / num_heads } else { 0 }),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(d.max_position_embeddings),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(d.rms_norm_eps),
            rope_theta,
            rope_scaling,
            attention_bias: raw.attention_bias.unwrap_or(false),
            mlp_bias: raw.mlp_bias.unwrap_or(false),
            attention_dropout: raw.attention_dropout.unwrap_or(d.attention_dropout),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            pad_token_id: raw.pad_token_id.unwrap_or(d.pad_token_id),
            bos_token_id: raw.bos_token_id.unwrap_or(d.bos_token_id),
            eos_token_ids,
            dialect,
        };
        cfg.validate().map_err(bad)?;
        Ok(cfg)
    }
}

/// Reads theta and scaling from whichever place the dialect keeps them in.
fn parse_rope(raw: &RawEmu3Config, dialect: ConfigDialect) -> std::result::Result<(f64, RopeScaling), String> {
    let default_theta = Emu3Config::emu3_8b().rope_theta;
    // transformers 5: `rope_parameters: {rope_type, rope_theta, factor?}`; original: `rope_theta` + `rope_scaling`.
    let (theta, spec) = match (&raw.rope_parameters, dialect) {
        (Some(p), _) if !p.is_null() => {
            let theta = p.get("rope_theta").and_then(Value::as_f64).or(raw.rope_theta).unwrap_or(default_theta);
            (theta, Some(p.clone()))
        }
        _ => (raw.rope_theta.unwrap_or(default_theta), raw.rope_scaling.clone().filter(|v| !v.is_null())),
    };
    let scaling = match spec {
        None => RopeScaling::None,
        Some(v) => {
            let kind = v.get("rope_type").or_else(|| v.get("type")).and_then(Value::as_str).unwrap_or("default");
            match kind {
                "default" => RopeScaling::None,
                "linear" => {
                    let factor =
                        v.get("factor").and_then(Value::as_f64).ok_or("linear rope scaling without a factor")?;
                    RopeScaling::Linear { factor }
                }
                other => return Err(format!("rope scaling {other:?} is not supported (supported: default, linear)")),
            }
        }
    };
    Ok((theta, scaling))
}

impl Emu3Config {
    /// Reads and validates `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Ok(Self::from_dir_with_defaults(dir)?.0)
    }

    /// [`Self::from_dir`], plus the shape fields that `config.json` leaves out (filled with Emu3-8B's values, as
    /// transformers' `Emu3TextConfig` defaults do), so a later shape mismatch can blame the config.
    pub fn from_dir_with_defaults(dir: &Path) -> Result<(Self, Vec<&'static str>)> {
        let path: PathBuf = dir.join("config.json");
        let raw = RawEmu3Config::from_file(&path)?;
        let text = raw.text_config.as_deref().unwrap_or(&raw);
        let defaulted = [
            ("vocab_size", text.vocab_size),
            ("hidden_size", text.hidden_size),
            ("intermediate_size", text.intermediate_size),
            ("num_hidden_layers", text.num_hidden_layers),
            ("num_attention_heads", text.num_attention_heads),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.is_none().then_some(name))
        .collect();
        Ok((raw.into_config(&path)?, defaulted))
    }

    /// The released 8.5B Emu3 decoder (BAAI/Emu3-Gen, the EARL base model).
    pub fn emu3_8b() -> Self {
        Emu3Config {
            vocab_size: 184_622,
            hidden_size: 4096,
            intermediate_size: 14_336,
            num_layers: 32,
            num_heads: 32,
            num_kv_heads: 8,
            head_dim: 128,
            max_position_embeddings: 9216,
            rms_norm_eps: 1e-5,
            rope_theta: 1_000_000.0,
            rope_scaling: RopeScaling::None,
            attention_bias: false,
            mlp_bias: false,
            attention_dropout: 0.1,
            tie_word_embeddings: false,
            pad_token_id: 151_643,
            bos_token_id: 151_849,
            eos_token_ids: vec![151_850],
            dialect: ConfigDialect::Preset,
        }
    }

    /// A tiny GQA config for unit tests and CPU benchmarks.
    pub fn tiny() -> Self {
        Emu3Config {
            vocab_size: 320,
            hidden_size: 64,
            intermediate_size: 96,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 16,
            max_position_embeddings: 256,
            pad_token_id: 0,
            bos_token_id: 1,
            eos_token_ids: vec![2],
            ..Self::emu3_8b()
        }
    }

    /// An Emu3-shaped decoder of the given width and depth (head_dim 128, GQA 4:1, MLP ratio and vocab of the 8.5B),
    /// for GPU training and RL benchmarks that must fit a session.
    pub fn emu3_shaped(hidden_size: i64, num_layers: i64) -> Self {
        let num_heads = (hidden_size / 128).max(1);
        Emu3Config {
            hidden_size,
            intermediate_size: hidden_size * 14_336 / 4096,
            num_layers,
            num_heads,
            num_kv_heads: (num_heads / 4).max(1),
            head_dim: hidden_size / num_heads,
            ..Self::emu3_8b()
        }
    }

    /// Parameter count of the decoder (embeddings and head included).
    pub fn num_parameters(&self) -> i64 {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let attn = h * self.num_heads * d * 2 + h * self.num_kv_heads * d * 2;
        let attn_bias = if self.attention_bias { (self.num_heads * 2 + self.num_kv_heads * 2) * d } else { 0 };
        let mlp = 3 * h * i;
        let layer = attn + attn_bias + mlp + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { self.vocab_size * h };
        self.vocab_size * h + self.num_layers * layer + h + head
    }

    /// Checks the invariants every module relies on: positive sizes, `num_heads` a multiple of `num_kv_heads`,
    /// an even `head_dim`, positive epsilon/theta/scaling factor, dropout in `[0, 1)`, pad and bos inside the
    /// vocabulary. Returns the first violation as a one-line message.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let pos = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, v) in pos {
            if v <= 0 {
                return Err(format!("{name} must be positive, got {v}"));
            }
        }
        if self.num_heads % self.num_kv_heads != 0 {
            return Err(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.head_dim % 2 != 0 {
            return Err(format!("head_dim {} must be even for rotary embeddings", self.head_dim));
        }
        if !(self.rms_norm_eps > 0.0) || !(self.rope_theta > 0.0) {
            return Err("rms_norm_eps and rope_theta must be positive".into());
        }
        if !(0.0..1.0).contains(&self.attention_dropout) {
            return Err(format!("attention_dropout {} is not in [0, 1)", self.attention_dropout));
        }
        if let RopeScaling::Linear { factor } = self.rope_scaling {
            if !(factor > 0.0) {
                return Err(format!("rope scaling factor {factor} must be positive"));
            }
        }
        for (name, id) in [("pad_token_id", self.pad_token_id), ("bos_token_id", self.bos_token_id)] {
            if id < 0 || id >= self.vocab_size {
                return Err(format!("{name} {id} is outside the vocabulary (size {})", self.vocab_size));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Emu3Config> {
        let raw: RawEmu3Config = serde_json::from_str(json).unwrap();
        raw.into_config(Path::new("config.json"))
    }

    #[test]
    fn original_dialect_reads_top_level_rope_theta() {
        let c =
            parse(r#"{"model_type":"Emu3","rope_theta":10000.0,"rope_scaling":null,"num_key_value_heads":8}"#).unwrap();
        assert_eq!(c.dialect, ConfigDialect::Original);
        assert_eq!(c.rope_theta, 10000.0);
        assert_eq!(c.rope_scaling, RopeScaling::None);
        assert_eq!(c.head_dim, 128);
    }

    #[test]
    fn transformers_dialects_read_rope_parameters() {
        let text = r#"{"model_type":"emu3_text_model","hidden_size":64,"num_attention_heads":4,
            "num_key_value_heads":2,"vocab_size":300,"pad_token_id":0,"bos_token_id":1,"eos_token_id":2,
            "rope_parameters":{"rope_type":"default","rope_theta":500.0}}"#;
        let c = parse(text).unwrap();
        assert_eq!((c.rope_theta, c.head_dim, c.num_kv_heads), (500.0, 16, 2));
        let multi = format!(r#"{{"model_type":"emu3","text_config":{text}}}"#);
        let m = parse(&multi).unwrap();
        assert_eq!(m.dialect, ConfigDialect::TransformersMultimodal);
        assert_eq!(m.rope_theta, 500.0);
    }

    #[test]
    fn unsupported_rope_scaling_is_an_error() {
        let e = parse(r#"{"model_type":"Emu3","rope_scaling":{"type":"dynamic","factor":2.0}}"#).unwrap_err();
        assert!(e.to_string().contains("rope scaling \"dynamic\" is not supported"), "{e}");
        let l = parse(r#"{"model_type":"Emu3","rope_scaling":{"type":"linear","factor":2.0}}"#).unwrap();
        assert_eq!(l.rope_scaling, RopeScaling::Linear { factor: 2.0 });
    }

    #[test]
    fn invalid_shapes_are_rejected() {
        let e = parse(r#"{"model_type":"Emu3","num_attention_heads":32,"num_key_value_heads":5}"#).unwrap_err();
        assert!(e.to_string().contains("not a multiple"), "{e}");
        let e = parse(r#"{"model_type":"llama"}"#).unwrap_err();
        assert!(e.to_string().contains("not an Emu3"), "{e}");
        let e = parse(r#"{"model_type":"Emu3","hidden_act":"gelu"}"#).unwrap_err();
        assert!(e.to_string().contains("hidden_act"), "{e}");
    }

    #[test]
    fn eight_b_preset_has_the_published_size() {
        let n = Emu3Config::emu3_8b().num_parameters();
        assert!((8_400_000_000..8_600_000_000).contains(&n), "{n}");
    }
}

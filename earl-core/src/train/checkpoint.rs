//! Training checkpoints. `checkpoint-{step}/` is a Hugging Face model directory — `config.json` in transformers'
//! `emu3_text_model` dialect and `model.safetensors` with `Emu3ForCausalLM.save_pretrained` tensor names, loadable by
//! `Emu3ForCausalLM.from_pretrained` and by [`crate::Emu3ForCausalLM::from_dir`] — plus the trainer state:
//! `optimizer.safetensors` (AdamW moments `m.<name>`/`v.<name>`, and the fp32 masters `master.<name>` when the model
//! file is saved in a narrower dtype) and `trainer_state.json` (step, samples consumed, seed, config hash). The
//! directory is assembled under a temporary name and renamed into place, so a crash mid-save never leaves a partial
//! checkpoint under a real name and never touches earlier ones; `trainer_state.json`, written last, is the completion
//! marker. Pruning renames a checkpoint to a trash name before deleting it, so a kill mid-prune never leaves a
//! half-deleted checkpoint that still looks complete, and [`resume_latest`] falls back past a newest checkpoint that
//! cannot be restored (truncated or corrupt files) to the previous complete one, saying so.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::trainer::SftTrainer;
use crate::config::{Emu3Config, RopeScaling};
use crate::error::{guard, Error, Result};
use crate::fsio;
use crate::weights::SafetensorsStore;

/// Where a run stands; enough to continue it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Samples of the (epoch-shuffled) mixture stream consumed so far.
    pub samples_seen: u64,
    /// The run's seed ([`super::Recipe::seed`]), recorded for provenance.
    pub seed: u64,
    /// SHA-256 of the run's [`super::fingerprint::Fingerprint`]; resuming under a different one is refused.
    pub config_hash: String,
    /// The fingerprint's fields, so a refused resume can name what changed (absent in older checkpoints).
    #[serde(default)]
    pub config: serde_json::Value,
}

/// `config.json` for `cfg` in transformers' `emu3_text_model` dialect.
pub fn hf_config_json(cfg: &Emu3Config, kind: Kind) -> serde_json::Value {
    let mut rope = serde_json::json!({"rope_type": "default", "rope_theta": cfg.rope_theta});
    if let RopeScaling::Linear { factor } = cfg.rope_scaling {
        rope = serde_json::json!({"rope_type": "linear", "rope_theta": cfg.rope_theta, "factor": factor});
    }
    let mut v = serde_json::json!({
        "architectures": ["Emu3ForCausalLM"],
        "model_type": "emu3_text_model",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_parameters": rope,
        "attention_bias": cfg.attention_bias,
        "mlp_bias": cfg.mlp_bias,
        "attention_dropout": cfg.attention_dropout,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "pad_token_id": cfg.pad_token_id,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": if cfg.eos_token_ids.len() == 1 { serde_json::json!(cfg.eos_token_ids[0]) } else { serde_json::json!(cfg.eos_token_ids) },
        "dtype": match kind { Kind::BFloat16 => "bfloat16", Kind::Half => "float16", _ => "float32" },
        "use_cache": true,
    });
    if cfg.head_dim * cfg.num_heads != cfg.hidden_size {
        v["head_dim"] = serde_json::json!(cfg.head_dim);
    }
    v
}

fn st_dtype(kind: Kind) -> Result<&'static str> {
    Ok(match kind {
        Kind::Float => "F32",
        Kind::BFloat16 => "BF16",
        Kind::Half => "F16",
        Kind::Double => "F64",
        Kind::Int64 => "I64",
        other => return Err(Error::input(format!("cannot save {other:?} tensors"))),
    })
}

/// Streams `tensors` into a safetensors file (metadata `format: pt`, as transformers expects), converting each to
/// `kind` on the CPU one at a time — a model never needs a second full copy in host memory.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)], kind: Kind) -> Result<()> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let elt = kind.elt_size_in_bytes();
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, t) in &sorted {
        let n = t.numel() * elt;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": st_dtype(kind)?, "shape": t.size(), "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let mut h = serde_json::to_vec(&header).map_err(|e| Error::input(e.to_string()))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(f);
    w.write_all(&(h.len() as u64).to_le_bytes()).and_then(|_| w.write_all(&h)).map_err(|e| Error::io(path, e))?;
    for (name, t) in sorted {
        let bytes = guard(&format!("saving `{name}`"), || {
            let c = t.detach().to_device(Device::Cpu).to_kind(kind).contiguous();
            let mut buf = vec![0u8; c.numel() * elt];
            c.f_copy_data_u8(&mut buf, c.numel())?;
            Ok(buf)
        })?;
        w.write_all(&bytes).map_err(|e| Error::io(path, e))?;
    }
    let f = w.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Writes `root/checkpoint-{step}` atomically; the model file holds the masters as `save_kind`.
pub fn save_checkpoint(root: &Path, trainer: &SftTrainer, state: &TrainerState, save_kind: Kind) -> Result<PathBuf> {
    let _span = tracing::info_span!("save_checkpoint", step = state.global_step).entered();
    let final_dir = root.join(format!("checkpoint-{}", state.global_step));
    // A temporary name (`.checkpoint-N.tmp-PID`) that the next run's leftover sweep recognises.
    let tmp = fsio::temp_path(&final_dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let cfg = serde_json::to_string_pretty(&hf_config_json(&trainer.model.cfg, save_kind)).expect("json");
    fsio::write_atomic(&tmp.join("config.json"), (cfg + "\n").as_bytes())?;
    let masters: Vec<(String, Tensor)> =
        trainer.opt.params.iter().map(|p| (p.name.clone(), p.master.shallow_clone())).collect();
    write_safetensors(&tmp.join("model.safetensors"), &masters, save_kind)?;
    let mut opt = Vec::with_capacity(trainer.opt.params.len() * 3);
    for p in &trainer.opt.params {
        opt.push((format!("m.{}", p.name), p.m.shallow_clone()));
        opt.push((format!("v.{}", p.name), p.v.shallow_clone()));
        if save_kind != Kind::Float {
            opt.push((format!("master.{}", p.name), p.master.shallow_clone()));
        }
    }
    write_safetensors(&tmp.join("optimizer.safetensors"), &opt, Kind::Float)?;
    let st = serde_json::to_string_pretty(state).expect("json");
    fsio::write_atomic(&tmp.join("trainer_state.json"), (st + "\n").as_bytes())?;
    // Replacing a checkpoint of the same step (a resumed run redoing it): move the old one aside first, so the real
    // name only ever holds a complete checkpoint.
    let trash = fsio::trash_path(&final_dir);
    if final_dir.exists() {
        if trash.exists() {
            std::fs::remove_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
        }
        std::fs::rename(&final_dir, &trash).map_err(|e| Error::io(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    fsio::sync_dir(root)?;
    if trash.exists() {
        std::fs::remove_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
    }
    Ok(final_dir)
}

fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })
}

/// Completed checkpoints under `root` (a `checkpoint-N` directory whose `trainer_state.json` parses), oldest first.
pub fn list_checkpoints(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            read_state(&e.path()).is_ok().then(|| (step, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// Deletes the oldest checkpoints beyond `keep` (0 keeps all), each renamed to its trash name first.
pub fn prune_checkpoints(root: &Path, keep: usize) -> Result<()> {
    let all = list_checkpoints(root);
    if keep == 0 || all.len() <= keep {
        return Ok(());
    }
    for (_, p) in &all[..all.len() - keep] {
        fsio::remove_dir_atomic(p, "prune")?;
    }
    Ok(())
}

/// Restores the newest checkpoint under `root` that loads, after sweeping what interrupted saves and prunes left
/// (trash and temporary directories). A newest checkpoint that fails (truncated or corrupt files, a state that
/// disagrees with its name) is skipped with a warning giving the reason, and the previous complete one is used;
/// `None` when there is no checkpoint, an error when none of them restores.
pub fn resume_latest(root: &Path, trainer: &mut SftTrainer) -> Result<Option<(TrainerState, PathBuf)>> {
    fsio::remove_leftovers(root)?;
    let all = list_checkpoints(root);
    let mut newest_err = None;
    for (step, dir) in all.iter().rev() {
        // A failed restore may have overwritten part of the trainer; the next one overwrites all of it.
        let restored = restore_checkpoint(dir, trainer).and_then(|s| match s.global_step == *step {
            true => Ok(s),
            false => {
                Err(Error::Data { path: dir.clone(), msg: format!("trainer_state.json says step {}", s.global_step) })
            }
        });
        match restored {
            Ok(state) => {
                if newest_err.is_some() {
                    tracing::warn!(dir = %dir.display(), "resuming from an older checkpoint: the newer ones cannot be restored");
                }
                return Ok(Some((state, dir.clone())));
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "checkpoint cannot be restored; falling back to the previous one");
                newest_err.get_or_insert(e);
            }
        }
    }
    match newest_err {
        Some(e) => Err(Error::Data {
            path: root.to_path_buf(),
            msg: format!("no checkpoint can be restored; the newest: {e}"),
        }),
        None => Ok(None),
    }
}

/// Loads masters, moments and step from `dir` into `trainer`; returns the saved state.
pub fn restore_checkpoint(dir: &Path, trainer: &mut SftTrainer) -> Result<TrainerState> {
    let state = read_state(dir)?;
    let device = trainer.model.device();
    let opt = SafetensorsStore::open(&dir.join("optimizer.safetensors"), Kind::Float, device)?;
    let model = SafetensorsStore::open(&dir.join("model.safetensors"), Kind::Float, device)?;
    use crate::weights::TensorSource;
    let _g = tch::no_grad_guard();
    for p in trainer.opt.params.iter_mut() {
        let shape = p.master.size();
        let master_name = format!("master.{}", p.name);
        let master = if opt.contains(&master_name) {
            opt.tensor(&master_name, &shape)?
        } else {
            model.tensor(&p.name, &shape)?
        };
        p.master.copy_(&master);
        p.m = opt.tensor(&format!("m.{}", p.name), &shape)?;
        p.v = opt.tensor(&format!("v.{}", p.name), &shape)?;
    }
    trainer.opt.step = state.global_step;
    trainer.sync_compute();
    Ok(state)
}

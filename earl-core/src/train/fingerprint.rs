//! What a checkpoint remembers of the configuration that wrote it, so that a resume under another one is refused
//! with the fields that changed, while a resume that only moves the run or changes bookkeeping is accepted. A
//! [`Fingerprint`] is the validated config serialised to JSON and flattened to dotted keys, minus the fields that
//! cannot change a result (where the run writes, how often it logs or saves, how many checkpoints it keeps). Its
//! SHA-256 goes into every checkpoint's `trainer_state.json` (`config_hash`) with the fields themselves (`config`).
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::checkpoint::TrainerState;
use crate::error::{Error, Result};

/// The result-affecting fields of a configuration, flattened to dotted keys (`optim.learning_rate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    fields: BTreeMap<String, Value>,
}

impl Fingerprint {
    /// The fields of `config` except those under a key of `left_out` (a dotted prefix: `logging` drops the whole
    /// section, `output_dir` one field).
    pub fn of(config: &impl serde::Serialize, left_out: &[&str]) -> Self {
        let mut fields = BTreeMap::new();
        flatten("", &serde_json::to_value(config).unwrap_or(Value::Null), &mut fields);
        fields.retain(|k, _| !left_out.iter().any(|p| k == p || k.starts_with(&format!("{p}."))));
        Fingerprint { fields }
    }

    /// SHA-256 (hex) of the fields, in key order.
    pub fn hash(&self) -> String {
        format!("{:x}", Sha256::digest(self.to_json().to_string().as_bytes()))
    }

    /// The fields as one JSON object (what a checkpoint stores).
    pub fn to_json(&self) -> Value {
        Value::Object(self.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// `key: old → new` for every field that differs from `recorded` (a checkpoint's `config`).
    pub fn changes_from(&self, recorded: &Value) -> Vec<String> {
        let empty = serde_json::Map::new();
        let old = recorded.as_object().unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&String> = self.fields.keys().chain(old.keys()).collect();
        let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), |v| v.to_string());
        keys.into_iter()
            .filter(|k| self.fields.get(*k) != old.get(*k))
            .map(|k| format!("{k}: {} → {}", show(old.get(k)), show(self.fields.get(k))))
            .collect()
    }

    /// Refuses to resume from `state` (read from checkpoint `dir`) when it was written under other fields.
    pub fn check_resume(&self, state: &TrainerState, dir: &Path) -> Result<()> {
        if state.config_hash == self.hash() {
            return Ok(());
        }
        let changes = self.changes_from(&state.config);
        let what = match changes.len() {
            0 => "a different configuration".to_string(),
            n => {
                let shown: Vec<&str> = changes.iter().take(6).map(String::as_str).collect();
                let more = if n > 6 { format!(" and {} more", n - 6) } else { String::new() };
                format!("another configuration ({}{more})", shown.join(", "))
            }
        };
        Err(Error::Data {
            path: dir.to_path_buf(),
            msg: format!("was written under {what}; use a new output directory"),
        })
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn left_out_fields_do_not_count_and_changes_are_named() {
        let a = json!({"lr": 1e-4, "seed": 0, "logging": {"every": 10}, "out": "/runs/a", "optim": {"beta1": 0.9}});
        let fa = Fingerprint::of(&a, &["logging", "out"]);
        let moved =
            json!({"lr": 1e-4, "seed": 0, "logging": {"every": 1}, "out": "/elsewhere", "optim": {"beta1": 0.9}});
        assert_eq!(Fingerprint::of(&moved, &["logging", "out"]).hash(), fa.hash());
        let other = json!({"lr": 2e-4, "seed": 0, "optim": {"beta1": 0.95}});
        let fo = Fingerprint::of(&other, &["logging", "out"]);
        assert_ne!(fo.hash(), fa.hash());
        assert_eq!(fo.changes_from(&fa.to_json()), ["lr: 0.0001 → 0.0002", "optim.beta1: 0.9 → 0.95"]);
        let state =
            TrainerState { global_step: 1, samples_seen: 1, seed: 0, config_hash: fa.hash(), config: fa.to_json() };
        assert!(fa.check_resume(&state, Path::new("ckpt")).is_ok());
        let e = fo.check_resume(&state, Path::new("ckpt")).unwrap_err().to_string();
        assert!(e.contains("lr: 0.0001 → 0.0002") && e.contains("new output directory"), "{e}");
    }
}

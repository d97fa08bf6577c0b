//! What identifies an evaluation run: the checkpoint hashes and every setting that changes a sample (the
//! fingerprint, compared on resume so that two runs are never mixed in one directory), and the commit of the code.
//! Checkpoint files are hashed with SHA-256: in full up to 64 MiB, and beyond that over their size and first and
//! last 16 MiB (marked `sampled`), so that resuming a run of a 16 GB model does not reread it; a safetensors file's
//! header (every tensor's name, dtype, shape and offsets) lies in its first bytes and is always covered.
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use earl_core::Result;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const FULL_LIMIT: u64 = 64 << 20;
const CHUNK: u64 = 16 << 20;

/// SHA-256 of one file (see the module header); `(hex, sampled)`.
pub fn file_sha256(path: &Path) -> Result<(String, bool)> {
    let io = |e| super::io_err(path, e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut h = Sha256::new();
    let read = |f: &mut std::fs::File, n: u64, h: &mut Sha256| -> Result<()> {
        let mut buf = Vec::with_capacity(n as usize);
        f.take(n).read_to_end(&mut buf).map_err(io)?;
        h.update(&buf);
        Ok(())
    };
    if len <= FULL_LIMIT {
        read(&mut f, len, &mut h)?;
        return Ok((format!("{:x}", h.finalize()), false));
    }
    h.update(len.to_le_bytes());
    read(&mut f, CHUNK, &mut h)?;
    f.seek(SeekFrom::Start(len - CHUNK)).map_err(io)?;
    read(&mut f, CHUNK, &mut h)?;
    Ok((format!("{:x}", h.finalize()), true))
}

/// The files of a checkpoint directory (not recursive, hidden files skipped, by name) with size and hash, and one
/// `sha256` over all of them.
pub fn dir_hashes(dir: &Path) -> Result<Value> {
    let entries = std::fs::read_dir(dir).map_err(|e| super::io_err(dir, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut all = Sha256::new();
    let mut files = Map::new();
    for name in names {
        let path = dir.join(&name);
        let size = std::fs::metadata(&path).map_err(|e| super::io_err(&path, e))?.len();
        let (sha, sampled) = file_sha256(&path)?;
        all.update(format!("{name}\0{size}\0{sha}\n"));
        files.insert(name, json!({ "size": size, "sha256": sha, "sampled": sampled }));
    }
    Ok(json!({ "path": dir.display().to_string(), "sha256": format!("{:x}", all.finalize()), "files": files }))
}

/// The commit of the code that ran: `EARL_COMMIT` at run time, else at build time; `null` when neither is set (the
/// library does not run git).
pub fn commit() -> Value {
    std::env::var("EARL_COMMIT")
        .ok()
        .or_else(|| option_env!("EARL_COMMIT").map(String::from))
        .filter(|c| !c.is_empty())
        .map_or(Value::Null, Value::String)
}

/// The top-level keys in which two fingerprints differ (both objects), for the refusal message.
pub fn differing_keys(a: &Value, b: &Value) -> Vec<String> {
    let (empty, mut keys) = (Map::new(), Vec::new());
    let (a, b) = (a.as_object().unwrap_or(&empty), b.as_object().unwrap_or(&empty));
    for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        if a.get(k) != b.get(k) {
            keys.push(k.clone());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_hashes_follow_the_bytes_and_fingerprint_diffs_name_keys() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), b"{}").unwrap();
        std::fs::write(d.path().join(".lock"), b"ignored").unwrap();
        let a = dir_hashes(d.path()).unwrap();
        // sha256("{}"), computed independently with sha256sum.
        let sha = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(a["files"]["config.json"]["sha256"], sha);
        assert_eq!(a["files"].as_object().unwrap().len(), 1);
        std::fs::write(d.path().join("config.json"), b"{ }").unwrap();
        assert_ne!(dir_hashes(d.path()).unwrap()["sha256"], a["sha256"]);

        let (x, y) = (json!({"seed": 0, "model": "a", "n": 1}), json!({"seed": 1, "model": "a", "m": 2}));
        assert_eq!(differing_keys(&x, &y), ["n", "seed", "m"]);
    }
}

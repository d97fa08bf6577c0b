//! Which files of a dataset directory a benchmark reads. `--data` is the directory a Hugging Face download leaves
//! (`snapshot_download` or a copy of the hub repository): data files are searched recursively, and either
//! - a split is taken from HF's shard names (`data/test-00000-of-00002.parquet`, `data/dev-00000-of-00001.parquet`):
//!   the split word stands at the start of the file name, or after a `-`, `_`, `.`, space or digit, and is followed
//!   by one of those (the file-name half of `datasets`' default split patterns), so `test` does not match
//!   `latest-…` and `dev` does not match `device-…`; or
//! - the benchmark names its files (MagicBrush's `magicbrush-test-00000.parquet`, VisMin's `counting-00001.parquet`
//!   then `relation-00001.parquet`): each must be found exactly once, and they are read in the order named.
//!
//! Files of a split are read in path order (the shard order), as `load_dataset` concatenates them.
use std::path::{Path, PathBuf};

use earl_core::{Error, Result};

/// How a benchmark picks its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRule {
    /// Every file whose name holds this split word (see the module header), in path order.
    Split(&'static str),
    /// These file names, each exactly once anywhere under the directory, in this order.
    Named(&'static [&'static str]),
    /// Every file (the generic adapter), in path order.
    Any,
}

impl FileRule {
    /// The rule as a run manifest records it.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            FileRule::Split(s) => serde_json::json!({"split": s}),
            FileRule::Named(n) => serde_json::json!({"files": n}),
            FileRule::Any => serde_json::json!("all"),
        }
    }
}

/// Whether file name `name` belongs to split `split` (HF shard naming; see the module header).
pub fn name_has_split(name: &str, split: &str) -> bool {
    let delim = |c: char| matches!(c, '-' | '_' | '.' | ' ') || c.is_ascii_digit();
    name.match_indices(split).any(|(i, _)| {
        let before_ok = name[..i].chars().next_back().is_none_or(delim);
        let after_ok = name[i + split.len()..].chars().next().is_some_and(delim);
        before_ok && after_ok
    })
}

/// Data files with extension `ext` (without the dot) picked from `data` by `rule`. A file given as `data` is
/// taken as it is. No matching file is a one-line error naming the directory and the rule.
pub fn discover(bench: &str, data: &Path, rule: FileRule, exts: &[&str]) -> Result<Vec<PathBuf>> {
    if data.is_file() {
        return Ok(vec![data.to_path_buf()]);
    }
    if !data.is_dir() {
        return Err(Error::Input(format!("{bench}: {}: no such file or directory", data.display())));
    }
    let mut all = Vec::new();
    walk(data, exts, &mut all)?;
    all.sort();
    let name_of = |p: &Path| p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let exts_text = exts.iter().map(|e| format!("*.{e}")).collect::<Vec<_>>().join(" or ");
    match rule {
        FileRule::Any | FileRule::Split(_) => {
            let picked: Vec<PathBuf> = match rule {
                FileRule::Split(split) => all.into_iter().filter(|p| name_has_split(&name_of(p), split)).collect(),
                _ => all,
            };
            if picked.is_empty() {
                let what = match rule {
                    FileRule::Split(split) => format!(" of split {split:?}"),
                    _ => String::new(),
                };
                return Err(Error::Input(format!(
                    "{bench}: no {exts_text} files{what} under {} (an empty benchmark)",
                    data.display()
                )));
            }
            Ok(picked)
        }
        FileRule::Named(names) => {
            let mut picked = Vec::with_capacity(names.len());
            for want in names {
                let hits: Vec<&PathBuf> = all.iter().filter(|p| name_of(p) == *want).collect();
                match hits.as_slice() {
                    [one] => picked.push((*one).clone()),
                    [] => {
                        return Err(Error::Input(format!(
                            "{bench}: no file {want} under {} (the benchmark reads {})",
                            data.display(),
                            names.join(" then ")
                        )))
                    }
                    many => {
                        let list: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
                        return Err(Error::Input(format!(
                            "{bench}: {want} is found {} times under {} ({}); point --data at one copy",
                            many.len(),
                            data.display(),
                            list.join(", ")
                        )));
                    }
                }
            }
            Ok(picked)
        }
    }
}

fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |e: std::io::Error| Error::Input(format!("{}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        // Hidden entries (`.cache/huggingface` of a `local_dir` download, `.git`) hold no data files.
        if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        if p.is_dir() {
            walk(&p, exts, out)?;
        } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e)) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_files_come_in_the_order_named_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("data/train");
        std::fs::create_dir_all(&sub).unwrap();
        for n in ["aa.parquet", "zz.parquet", "other.parquet"] {
            std::fs::write(sub.join(n), b"").unwrap();
        }
        let got = discover("t", dir.path(), FileRule::Named(&["zz.parquet", "aa.parquet"]), &["parquet"]).unwrap();
        assert_eq!(got, [sub.join("zz.parquet"), sub.join("aa.parquet")]);
        std::fs::write(dir.path().join("aa.parquet"), b"").unwrap();
        let e = discover("t", dir.path(), FileRule::Named(&["aa.parquet"]), &["parquet"]).unwrap_err().to_string();
        assert!(e.contains("aa.parquet is found 2 times under"), "{e}");
    }

    #[test]
    fn split_words_in_hf_shard_names() {
        assert!(name_has_split("test-00000-of-00001.parquet", "test"));
        assert!(name_has_split("dev-00000-of-00001.parquet", "dev"));
        assert!(name_has_split("aurora_test.parquet", "test"));
        assert!(name_has_split("magicbrush-test-00000.parquet", "test"));
        assert!(!name_has_split("validation-00000-of-00001.parquet", "test"));
        assert!(!name_has_split("latest-00000.parquet", "test"));
        assert!(!name_has_split("device-00000.parquet", "dev"));
        assert!(!name_has_split("train-00000-of-00002.parquet", "dev"));
    }
}

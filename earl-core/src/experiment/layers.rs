//! Reading experiment files: one file's top-level keys with the line that set each, `extends` chains merged key by
//! key (later files win), each file type-checked on its own, and sections split off for another owner.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Where a merged value was set: the file and the line of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file that set the value.
    pub file: PathBuf,
    /// 1-based line of the key.
    pub line: usize,
    /// 1-based column (in characters) of the key.
    pub column: usize,
}

impl Origin {
    /// The directory `./` and `../` paths of this value are relative to.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new(""))
    }
}

/// The top-level keys of an experiment after `extends`, each with its value and origin. `source` is the file that
/// was loaded (the last layer). `Default` is an empty section (nothing set anywhere).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layers {
    source: PathBuf,
    values: BTreeMap<String, (toml::Value, Origin)>,
}

/// The merged values by key (origins left out): what a run's fingerprint records of a section kept as written.
impl serde::Serialize for Layers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.values.iter().map(|(k, (v, _))| (k, v)))
    }
}

/// `extends = "a.toml"` or `extends = ["a.toml", "b.toml"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Extends {
    One(String),
    Many(Vec<String>),
}

pub(super) fn config_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Config { path: path.to_path_buf(), msg: msg.into() }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, col)
}

/// serde's unknown-field message lists every known field; the key is what the user needs.
fn short(msg: &str) -> String {
    let msg = msg.trim().replace('\n', " ");
    match msg.split_once(", expected one of") {
        Some((head, _)) if head.starts_with("unknown field") => head.to_string(),
        _ => msg,
    }
}

impl Layers {
    /// Loads `path` and everything it extends. Each file is type-checked against the fragment type `F` (every
    /// field optional, unknown fields denied) on its own, leaving out the keys `owned_elsewhere` claims.
    pub fn load<F: DeserializeOwned>(path: &Path, owned_elsewhere: &dyn Fn(&str) -> bool) -> Result<Self> {
        let mut merged = Layers { source: path.to_path_buf(), values: BTreeMap::new() };
        merge_into::<F>(path, owned_elsewhere, &mut Vec::new(), &mut merged)?;
        Ok(merged)
    }

    /// One file on its own, type-checked as [`Layers::load`] does, without following `extends` (how base files
    /// that are not experiments by themselves are checked).
    pub fn parse_fragment<F: DeserializeOwned>(path: &Path, owned_elsewhere: &dyn Fn(&str) -> bool) -> Result<F> {
        let mut file = Layers::read(path)?;
        file.values.remove("extends");
        file.split_off(owned_elsewhere);
        file.deserialize()
    }

    /// The file that was loaded.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The merged value of `key`; `None` if no layer sets it.
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        self.values.get(key).map(|(v, _)| v)
    }

    /// Where `key` was set; `None` if no layer sets it.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.values.get(key).map(|(_, o)| o)
    }

    /// Every key set by some layer, in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The keys of a table inside `file` (whose text is `text`), each with the line of its key: a section of a
    /// file that is not an experiment itself, such as a chain's stage table. Not type-checked here; `source` is
    /// `file`.
    pub fn from_table(file: &Path, text: &str, table: BTreeMap<String, toml::Spanned<toml::Value>>) -> Self {
        let values = table
            .into_iter()
            .map(|(k, v)| {
                let (line, column) = line_col(text, v.span().start);
                (k, (v.into_inner(), Origin { file: file.to_path_buf(), line, column }))
            })
            .collect();
        Layers { source: file.to_path_buf(), values }
    }

    /// Lays `top` over `self`: each key of `top` replaces this one's (with its origin), as a later layer of
    /// `extends` does. The source stays `self`'s. How a chain's stage table overrides the experiment file it names.
    pub fn overlay(&mut self, top: Layers) {
        self.values.extend(top.values);
    }

    /// Sets `key` to `value`, recorded as set at `origin`: a value a caller wires in (a chain sets the model a
    /// stage starts from to the previous stage's output).
    pub fn set(&mut self, key: &str, value: toml::Value, origin: Origin) {
        self.values.insert(key.to_string(), (value, origin));
    }

    /// Moves the keys `pred` selects into their own `Layers` (same source), e.g. a section another crate owns.
    pub fn split_off(&mut self, pred: &dyn Fn(&str) -> bool) -> Layers {
        let (taken, kept) = std::mem::take(&mut self.values).into_iter().partition(|(k, _)| pred(k));
        self.values = kept;
        Layers { source: self.source.clone(), values: taken }
    }

    /// The merged values as the fragment type `F`. A type error is located at the key that causes it (found by
    /// checking key by key, which works because every field of a fragment is optional).
    pub fn deserialize<F: DeserializeOwned>(&self) -> Result<F> {
        let table = |it: &mut dyn Iterator<Item = (&String, &(toml::Value, Origin))>| {
            toml::Value::Table(it.map(|(k, (v, _))| (k.clone(), v.clone())).collect())
        };
        let whole = table(&mut self.values.iter()).try_into::<F>();
        let e = match whole {
            Ok(f) => return Ok(f),
            Err(e) => e,
        };
        for (k, entry) in &self.values {
            if let Err(ek) = table(&mut std::iter::once((k, entry))).try_into::<F>() {
                let o = &entry.1;
                let msg = short(ek.message());
                let msg = if msg.contains(&format!("`{k}`")) { msg } else { format!("{k}: {msg}") };
                return Err(config_err(&o.file, format!("line {}, column {}: {msg}", o.line, o.column)));
            }
        }
        Err(config_err(&self.source, short(e.message())))
    }

    /// One file's top-level keys with their origins (no type check).
    fn read(path: &Path) -> Result<Layers> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let spanned: BTreeMap<String, toml::Spanned<toml::Value>> = toml::from_str(&text).map_err(|e| {
            let msg = short(e.message());
            match e.span().map(|s| line_col(&text, s.start)) {
                Some((l, c)) => config_err(path, format!("line {l}, column {c}: {msg}")),
                None => config_err(path, msg),
            }
        })?;
        let values = spanned
            .into_iter()
            .map(|(k, v)| {
                let (line, column) = line_col(&text, v.span().start);
                (k, (v.into_inner(), Origin { file: path.to_path_buf(), line, column }))
            })
            .collect();
        Ok(Layers { source: path.to_path_buf(), values })
    }
}

fn merge_into<F: DeserializeOwned>(
    path: &Path,
    owned_elsewhere: &dyn Fn(&str) -> bool,
    stack: &mut Vec<PathBuf>,
    merged: &mut Layers,
) -> Result<()> {
    let canonical = path.canonicalize().map_err(|e| Error::io(path, e))?;
    if stack.contains(&canonical) {
        return Err(config_err(path, "`extends` forms a cycle"));
    }
    let mut file = Layers::read(path)?;
    let bases = match file.values.remove("extends") {
        None => vec![],
        Some((v, o)) => match v.try_into::<Extends>() {
            Ok(Extends::One(s)) => vec![s],
            Ok(Extends::Many(v)) => v,
            Err(_) => {
                let msg = format!("line {}: extends must be a file name or a list of file names", o.line);
                return Err(config_err(path, msg));
            }
        },
    };
    let section = file.split_off(owned_elsewhere);
    file.deserialize::<F>()?;
    stack.push(canonical);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for base in bases {
        merge_into::<F>(&dir.join(&base), owned_elsewhere, stack, merged)?;
    }
    stack.pop();
    merged.values.extend(file.values);
    merged.values.extend(section.values);
    Ok(())
}

//! Turning merged values into validated settings: `${VAR}` expansion, paths relative to the file that set them,
//! and errors located at the key's file and line. Every family's validation goes through a [`Resolver`], so all
//! experiment files follow the same rules and report alike.
use std::path::PathBuf;

use super::layers::config_err;
use super::{expand_vars, Layers};
use crate::error::{Error, Result};

/// Validation context of one experiment: its merged layers and the variables `${VAR}` reads.
pub struct Resolver<'a> {
    layers: &'a Layers,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Resolver<'a> {
    /// A resolver over `layers`, reading `${VAR}` through `env`.
    pub fn new(layers: &'a Layers, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Resolver { layers, env }
    }

    /// The merged layers being validated.
    pub fn layers(&self) -> &Layers {
        self.layers
    }

    /// An error about `key`: in the file and at the line that set it, or in the loaded file when no layer sets it.
    pub fn err(&self, key: &str, msg: impl std::fmt::Display) -> Error {
        match self.layers.origin(key) {
            Some(o) => config_err(&o.file, format!("line {}: {key}: {msg}", o.line)),
            None => config_err(self.layers.source(), format!("{key}: {msg}")),
        }
    }

    /// `Ok` if `ok`, else [`Resolver::err`] about `key`.
    pub fn check(&self, ok: bool, key: &str, msg: impl FnOnce() -> String) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(self.err(key, msg()))
        }
    }

    /// A required value.
    pub fn need<T>(&self, v: Option<T>, key: &str) -> Result<T> {
        v.ok_or_else(|| config_err(self.layers.source(), format!("missing required field `{key}`")))
    }

    /// `s` (the value of `key`) with `${VAR}` expanded.
    pub fn expand(&self, key: &str, s: &str) -> Result<String> {
        expand_vars(s, self.env).map_err(|m| self.err(key, m))
    }

    /// `s` (the value of `key`) expanded, as a path: `./x` and `../x` are relative to the file that set `key`;
    /// anything else is taken as written (EARL's scripts resolve them against the working directory).
    pub fn path(&self, key: &str, s: &str) -> Result<PathBuf> {
        let s = self.expand(key, s)?;
        if s.is_empty() {
            return Err(self.err(key, "empty path"));
        }
        let relative_to_file = s.starts_with("./") || s.starts_with("../");
        Ok(match self.layers.origin(key) {
            Some(o) if relative_to_file => o.dir().join(s),
            _ => PathBuf::from(s),
        })
    }

    /// Every entry of the list `key`, as [`Resolver::path`].
    pub fn paths(&self, key: &str, list: &[String]) -> Result<Vec<PathBuf>> {
        list.iter().map(|s| self.path(key, s)).collect()
    }
}

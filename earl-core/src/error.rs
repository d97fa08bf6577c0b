//! Typed errors of earl-core. Every variant carries the context a user needs to fix the problem (file, tensor name,
//! line and column of a bad `config.json`) and renders as one line; binaries add their own context with `anyhow`.
use std::path::PathBuf;

/// The result type of earl-core.
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}:{line}:{column}: malformed JSON: {msg}")]
    Json { path: PathBuf, line: usize, column: usize, msg: String },

    #[error("{path}: invalid config: {msg}")]
    Config { path: PathBuf, msg: String },

    #[error("{path}: not a valid safetensors file: {msg}")]
    Safetensors { path: PathBuf, msg: String },

    #[error("tensor `{name}` not found in {searched}")]
    MissingTensor { name: String, searched: String },

    #[error("tensor `{name}` in {path}: expected shape {expected:?}, found {found:?}")]
    Shape { name: String, path: PathBuf, expected: Vec<i64>, found: Vec<i64> },

    #[error("tensor `{name}` in {path}: unsupported dtype {dtype}")]
    Dtype { name: String, path: PathBuf, dtype: String },

    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },
    #[error("{path}: invalid tokenizer: {msg}")]
    Tokenizer { path: PathBuf, msg: String },

    #[error("invalid input: {0}")]
    Input(String),

    #[error("libtorch error during {context}: {msg}")]
    Torch { context: String, msg: String },

    /// A reward could not score a batch (verifier unreachable after retries, replies never parsable, …).
    #[error("reward `{reward}`: {msg}")]
    Reward { reward: String, msg: String },

    /// Another run holds the run directory's lock ([`crate::runlock::RunLock`]).
    #[error("run directory {path} is in use by {holder}; wait for that run to end or use another output directory")]
    Busy { path: PathBuf, holder: String },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    pub(crate) fn torch(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        // libtorch messages carry a multi-line C++ backtrace; the first line says what went wrong.
        let text = err.to_string();
        let msg = text.lines().next().unwrap_or("unknown error").trim().to_string();
        Error::Torch { context: context.into(), msg }
    }
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::torch("a tensor operation", e)
    }
}

/// Runs a block of tensor code and turns a libtorch failure (which tch reports by panicking in its non-`f_` API,
/// e.g. CUDA out of memory or a device mismatch) into an [`Error::Torch`], so library users never see a panic.
pub(crate) fn guard<T>(context: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else {
                "panic without message".to_string()
            };
            Err(Error::torch(context, msg))
        }
    }
}

//! Typed errors of earl-core. Every variant carries the context a user needs to fix the problem (file, tensor name,
//! line and column of a bad `config.json`) and renders as one line; binaries add their own context with `anyhow`.
use std::path::PathBuf;

/// The result type of earl-core.
pub type Result<T> = std::result::Result<T, Error>;

/// Every failure earl-core reports. Each variant renders as one line that names what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read, written, created or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The path the operation was on.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A JSON file is syntactically malformed or has a field of the wrong type.
    #[error("{path}:{line}:{column}: malformed JSON: {msg}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error, as serde_json reports it.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's message.
        msg: String,
    },

    /// A configuration parses but is invalid (unsupported option, inconsistent sizes, out-of-range value).
    #[error("{path}: invalid config: {msg}")]
    Config {
        /// The config file (or a stand-in such as the flag that supplied the value).
        path: PathBuf,
        /// What is wrong, in one line.
        msg: String,
    },

    /// A `.safetensors` file or its index is unreadable (bad header, truncated data, bad index JSON).
    #[error("{path}: not a valid safetensors file: {msg}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },

    /// A checkpoint lacks a tensor the model needs.
    #[error("tensor `{name}` not found in {searched}")]
    MissingTensor {
        /// The tensor name, as the checkpoint layout spells it.
        name: String,
        /// Where it was looked for (a directory, file list or description).
        searched: String,
    },

    /// A checkpoint tensor has a shape other than the config implies.
    #[error("tensor `{name}` in {path}: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// The tensor name.
        name: String,
        /// The file holding it.
        path: PathBuf,
        /// The shape the config implies.
        expected: Vec<i64>,
        /// The shape stored in the file.
        found: Vec<i64>,
    },

    /// A checkpoint tensor has a dtype we do not load.
    #[error("tensor `{name}` in {path}: unsupported dtype {dtype}")]
    Dtype {
        /// The tensor name.
        name: String,
        /// The file holding it.
        path: PathBuf,
        /// The stored dtype, as safetensors names it.
        dtype: String,
    },

    /// A data file (shard, manifest, parquet table, image, checkpoint state) is malformed or inconsistent.
    #[error("{path}: {msg}")]
    Data {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong, with the record or row where known.
        msg: String,
    },

    /// The text tokenizer files are missing pieces or disagree with each other.
    #[error("{path}: invalid tokenizer: {msg}")]
    Tokenizer {
        /// The tokenizer file or directory.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },

    /// An argument from the caller is invalid (shape, range, empty input, option combination).
    #[error("invalid input: {0}")]
    Input(String),

    /// libtorch failed (out of memory, device mismatch, …).
    #[error("libtorch error during {context}: {msg}")]
    Torch {
        /// What earl-core was doing.
        context: String,
        /// The first meaningful line of libtorch's message.
        msg: String,
        /// The whole message (C++ backtrace included), for `RUST_BACKTRACE=1` ([`Error::detail`]).
        detail: String,
    },

    /// A reward could not score a batch (verifier unreachable after retries, replies never parsable, …).
    #[error("reward `{reward}`: {msg}")]
    Reward {
        /// The reward's name.
        reward: String,
        /// Why scoring failed.
        msg: String,
    },

    /// Another run holds the run directory's lock ([`crate::runlock::RunLock`]).
    #[error("run directory {path} is in use by {holder}; wait for that run to end or use another output directory")]
    Busy {
        /// The run directory.
        path: PathBuf,
        /// Who holds the lock, as its lock file describes it (pid, host, start time).
        holder: String,
    },

    /// Training met a NaN or infinite loss or gradient norm under `nan_policy = "stop"`
    /// ([`crate::train::divergence`]).
    #[error("training diverged: {0}")]
    Diverged(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    pub(crate) fn torch(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        let detail = err.to_string();
        Error::Torch { context: context.into(), msg: headline(&detail), detail }
    }

    /// The full text behind a shortened message (libtorch's, with its C++ backtrace), if there is one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Torch { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

/// The first meaningful line of a libtorch failure. libtorch appends a C++ backtrace ("Exception raised from …",
/// "frame #0: …") to what went wrong, and a tch panic quotes the error in Debug form, where the newlines are
/// `\n` escapes inside `Torch("…")`: both are cut to the statement before them, e.g. "CUDA out of memory. Tried
/// to allocate 2.00 GiB …" or "DefaultCPUAllocator: can't allocate memory: you tried to allocate … bytes".
pub fn headline(text: &str) -> String {
    if let Some(i) = text.find("Torch(\"") {
        let inner = &text[i + "Torch(\"".len()..];
        let end = [inner.find("\\n"), inner.find("\")")].into_iter().flatten().min().unwrap_or(inner.len());
        return inner[..end].trim().to_string();
    }
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("Exception raised from"));
    let mut line = first.unwrap_or("unknown error");
    // tch's "Internal torch error: " and c10's "[enforce fail at FILE:LINE] CONDITION. " say nothing to a user.
    line = line.strip_prefix("Internal torch error: ").unwrap_or(line);
    if let Some(rest) = line.strip_prefix("[enforce fail at").and_then(|r| r.split_once("] ")).map(|(_, r)| r) {
        line = rest.split_once(". ").map_or(rest, |(_, r)| r);
    }
    line.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_messages_are_cut_to_their_first_statement() {
        let cpp = "Internal torch error: [enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't \
                   allocate memory: you tried to allocate 8 bytes.\nframe #0: c10::ThrowEnforceNotMet(char const*)";
        let e = Error::torch("allocating the KV cache", cpp);
        assert_eq!(
            e.to_string(),
            "libtorch error during allocating the KV cache: DefaultCPUAllocator: can't allocate memory: you tried to \
             allocate 8 bytes."
        );
        assert_eq!(e.detail(), Some(cpp));
        let panic = "called `Result::unwrap()` on an `Err` value: Torch(\"mat1 and mat2 shapes cannot be multiplied \
                     (1x4 and 3x4)\\nException raised from meta at x.cpp:2\\nframe #0: f\")";
        assert_eq!(headline(panic), "mat1 and mat2 shapes cannot be multiplied (1x4 and 3x4)");
        assert_eq!(headline("\n  plain\nmore"), "plain");
        assert_eq!(
            headline("CUDA out of memory. Tried to allocate 2.00 GiB\nException raised from"),
            "CUDA out of memory. Tried to allocate 2.00 GiB"
        );
    }
}

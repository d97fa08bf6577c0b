//! The experiment-file layer shared by every TOML experiment family (SFT in `train::experiment`, GRPO in
//! `rl::config`, and next evaluation and experiment chains): one loader, one `${VAR}` rule, one error format.
//!
//! * **Layers** ([`Layers`]): `extends = "base.toml"` or `extends = ["a.toml", "b.toml"]` loads those files first
//!   (paths relative to the extending file), later files overriding earlier ones key by key, the file itself last —
//!   as jsonnet's `(import 'a') + (import 'b')` composes the reference's RL configs. Every file is type-checked on its
//!   own against the family's serde mirror, so a misspelt key or a wrong type is reported with its file, line and
//!   column. A cycle of `extends` is an error.
//! * **Variables** ([`expand_vars`]): string values may use `${VAR}` and `${VAR:-default}`; an unset (or empty)
//!   variable without a default is an error naming the key and the file that set it.
//! * **Paths** ([`Resolver::path`]): a relative path starting with `./` or `../` is relative to the file that set
//!   the key; any other relative path is taken as written (the working directory, or a hub id), as EARL's scripts.
//! * **Errors**: one line, `FILE: invalid config: line N: key: what is wrong`, naming the file that set the key.
//! * **Sections owned elsewhere**: a family may leave a group of keys to another crate ([`Layers::split_off`]):
//!   earl-core keeps them as raw values with their origins, and the owner (earl-eval for the verifier client)
//!   type-checks and validates them with the same [`Resolver`].
mod layers;
mod resolve;
mod vars;

pub use layers::{Layers, Origin};
pub use resolve::Resolver;
pub use vars::expand_vars;

#[cfg(test)]
mod tests;

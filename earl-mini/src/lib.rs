//! EARL-mini: a small synthetic image-editing world in which every edit can be verified exactly. A scene is a plain
//! background and a few flat-coloured shapes ([`scene`]), rendered without anti-aliasing at 128×128 ([`render`], 16×16
//! VQ codes at the Emu3 factor of 8). Edits ([`edits`]) turn a source scene into a target scene; instructions
//! ([`instructions`]) and a chain-of-thought text in the shape of EARL's reasoning data ([`cot`]) describe them.
//! [`splits`] makes every sample a pure function of (split, seed, index), so no dataset is stored. The verifier
//! ([`verify`]) segments an edited image back into a scene graph and scores it against the target, on the 0–10
//! scales of VIEScore (SC, PQ, overall = √(SC·PQ)), and implements earl-core's GRPO reward trait.
pub mod corpus;
pub mod cot;
pub mod edits;
pub mod instructions;
pub mod render;
pub mod rng;
pub mod sample_dir;
pub mod scene;
pub mod splits;
pub mod verify;

pub use scene::{Background, Colour, Object, Scene, Shape, Size};
pub use splits::{Sample, Split};
pub use verify::{Score, Verifier};

/// Width and height of every world image, in pixels.
pub const WORLD_SIZE: u32 = 128;

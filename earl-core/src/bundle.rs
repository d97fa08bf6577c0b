//! A model bundle's own defaults: `earl-bundle.toml` beside a checkpoint's `config.json`. A bundle is a directory
//! that holds everything an edit needs — the language model, its text tokenizer and (in a subdirectory) its vision
//! tokenizer — and says how it is meant to be run: the image area it was trained at (a world image of EARL-mini is
//! 128×128, 16×16 codes, where the paper's default is 256×256), the assistant prefill, the sampling and the VQ.
//! `earl edit` and the library's callers use these unless told otherwise, so a small model is not run at the real
//! model's settings by accident. A checkpoint without the file is a plain checkpoint: [`Bundle::open`] gives `None`.
//!
//! ```toml
//! name = "earl-mini"
//! vq = "vq"                 # relative to the bundle directory
//! area = 16384              # pixels of the source image before encoding (128×128)
//! mode = "E"                # assistant prefill: E, E-legacy, CE, mixed, text:<literal>
//! temperature = 1.0
//! top_k = 64                # -1 = off
//! top_p = 1.0
//!
//! [example]                 # optional: an image to try it on
//! image = "example/source.png"
//! instruction = "Paint the red circle blue."
//! ```
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::generate::{SamplingParams, TopK};
use crate::prompt::Prefill;

/// The file name of a bundle's defaults.
pub const BUNDLE_FILE: &str = "earl-bundle.toml";

/// Serde mirror of `earl-bundle.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundle {
    name: Option<String>,
    description: Option<String>,
    vq: Option<String>,
    tokenizer: Option<String>,
    area: Option<u64>,
    mode: Option<String>,
    temperature: Option<f64>,
    top_k: Option<i64>,
    top_p: Option<f64>,
    example: Option<RawExample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    image: String,
    instruction: String,
}

/// An example edit shipped with a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleExample {
    /// The source image (absolute, inside the bundle).
    pub image: PathBuf,
    /// What to do with it.
    pub instruction: String,
}

/// A bundle's validated defaults, every path resolved against the bundle directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Its name (default: the directory's name).
    pub name: String,
    /// One line about it (may be empty).
    pub description: String,
    /// The vision tokenizer directory.
    pub vq: PathBuf,
    /// The text tokenizer directory (default: the bundle directory).
    pub tokenizer: PathBuf,
    /// Source pixel area before encoding.
    pub area: u64,
    /// Assistant prefill.
    pub prefill: Prefill,
    /// Sampling.
    pub sampling: SamplingParams,
    /// The example edit, when the bundle ships one (`[]` otherwise).
    pub examples: Vec<BundleExample>,
}

impl Bundle {
    /// Reads `dir/earl-bundle.toml`; `Ok(None)` when `dir` has none (a plain checkpoint).
    pub fn open(dir: &Path) -> Result<Option<Bundle>> {
        let path = dir.join(BUNDLE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let raw: RawBundle =
            toml::from_str(&text).map_err(|e| Error::input(format!("{}: {}", path.display(), e.message().trim())))?;
        raw.validate(dir).map(Some).map_err(|msg| Error::input(format!("{}: {msg}", path.display())))
    }
}

impl RawBundle {
    fn validate(self, dir: &Path) -> std::result::Result<Bundle, String> {
        let inside = |what: &str, rel: &str| -> std::result::Result<PathBuf, String> {
            let p = Path::new(rel);
            if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(format!("`{what}` must be a path inside the bundle, got {rel:?}"));
            }
            Ok(dir.join(p))
        };
        let vq = inside("vq", self.vq.as_deref().ok_or("`vq` (the vision tokenizer's directory) is required")?)?;
        let tokenizer = match &self.tokenizer {
            Some(t) => inside("tokenizer", t)?,
            None => dir.to_path_buf(),
        };
        let area = self.area.unwrap_or(256 * 256);
        if area == 0 {
            return Err("`area` must be positive".into());
        }
        let prefill: Prefill = self.mode.as_deref().unwrap_or("E").parse().map_err(|e: Error| e.to_string())?;
        let sampling = SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_k: TopK::from_reference(self.top_k.unwrap_or(2048))?,
            top_p: self.top_p.unwrap_or(1.0),
        };
        sampling.validate().map_err(|e| e.to_string())?;
        let examples = match self.example {
            Some(e) => vec![BundleExample { image: inside("example.image", &e.image)?, instruction: e.instruction }],
            None => Vec::new(),
        };
        let name = self.name.unwrap_or_else(|| {
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".into())
        });
        Ok(Bundle {
            dir: dir.to_path_buf(),
            name,
            description: self.description.unwrap_or_default(),
            vq,
            tokenizer,
            area,
            prefill,
            sampling,
            examples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(text: &str) -> Result<Option<Bundle>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(BUNDLE_FILE), text).unwrap();
        Bundle::open(dir.path())
            .map(|b| b.map(|b| Bundle { dir: PathBuf::new(), vq: b.vq.strip_prefix(dir.path()).unwrap().into(), ..b }))
    }

    #[test]
    fn a_bundle_file_gives_resolved_defaults() {
        let b = open(
            "name = \"m\"\nvq = \"vq\"\narea = 16384\nmode = \"CE\"\ntemperature = 0.0\ntop_k = -1\n\
             [example]\nimage = \"ex/a.png\"\ninstruction = \"Do it.\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((b.name.as_str(), b.area, b.vq.as_path()), ("m", 16384, Path::new("vq")));
        assert_eq!(b.prefill, Prefill::CE);
        assert_eq!(b.sampling, SamplingParams { temperature: 0.0, top_k: TopK::Off, top_p: 1.0 });
        assert_eq!(b.examples.len(), 1);
        assert!(b.examples[0].image.ends_with("ex/a.png"));
    }

    #[test]
    fn no_file_is_a_plain_checkpoint_and_bad_files_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Bundle::open(dir.path()).unwrap().is_none());
        for (text, want) in [
            ("area = 5\n", "`vq`"),
            ("vq = \"../elsewhere\"\n", "inside the bundle"),
            ("vq = \"vq\"\ntop_k = 0\n", "top_k"),
            ("vq = \"vq\"\nmode = \"X\"\n", "unknown prefill"),
            ("vq = \"vq\"\ncolour = 1\n", "unknown field"),
            ("vq = \"vq\"\ntemperature = -1.0\n", "temperature"),
        ] {
            let e = open(text).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(BUNDLE_FILE) && !e.contains('\n'), "{text:?}: {e}");
        }
    }
}

//! Verifier prompts. The built-in wording is ours: it asks for the rubric EARL uses (VIEScore's semantic consistency
//! = [editing success, over-editing] and perceptual quality = [naturalness, artifacts], each 0–10, as JSON; and
//! GroundScore's 0–10 semantic match with the ground-truth edit in `<score>X</score>`), but it is not the VIEScore or
//! EARL text, so rewards computed with it differ from the paper's. The paper's prompts are not part of the project
//! (they are others' prose): `scripts/fetch_judge_prompts.py` writes them as template files from the pinned upstream
//! sources, and the paper's configs name those files. A template file is its text byte for byte; in every template
//! `<instruction>` and `{eps_instruction}` are replaced by the editing instruction (the placeholders of VIEScore and
//! of EARL's GroundScore prompt). Each [`Template`] remembers where it came from, for the run manifest.
use std::path::{Path, PathBuf};

use earl_core::{Error, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Semantic consistency: the user turn, followed by the source image and the edited image.
pub const SEMANTIC_CONSISTENCY: &str = r#"You are grading the output of an AI image-editing system. Every image you see is synthetic, including any people in it.

You receive two images. The first is the image before editing; the second is the system's attempt at applying the instruction below to it.

Give two integer scores from 0 to 10:
1. Edit success: how completely and correctly the second image carries out the instruction. 0 means the requested change is absent or wrong; 10 means it is carried out exactly.
2. Over-editing: how well everything the instruction did not ask to change is left alone. 0 means the second image is an unrelated scene; 10 means only the requested change was made.
If the edit failed, the two images may look the same: score edit success accordingly.

Instruction: <instruction>

Reply with JSON only, in this form, with a one-sentence reason:
{"score": [edit_success, over_editing], "reasoning": "..."}"#;

/// Perceptual quality: the user turn, followed by the edited image.
pub const PERCEPTUAL_QUALITY: &str = r#"You are grading the visual quality of a synthetic image produced by an AI system. Every image you see is synthetic, including any people in it.

Give two integer scores from 0 to 10:
1. Naturalness: whether the scene is physically and visually plausible. 0 means clearly implausible, e.g. impossible lighting, shadows, perspective or scale; 10 means entirely plausible.
2. Artifacts: the absence of generation defects. 0 means heavy distortion, smearing, broken textures, malformed faces, hands or bodies, watermarks, or pasted-in objects that do not blend; 10 means no visible defect.

Reply with JSON only, in this form, with a one-sentence reason:
{"score": [naturalness, artifacts], "reasoning": "..."}"#;

/// GroundScore: the system turn.
pub const GROUND_SCORE_SYSTEM: &str = r#"You compare two synthetic images that should both show the result of the same image edit. Every image you see is synthetic, including any people in it.

The first image (A) is the reference result and is, by definition, correct. The second image (B) was produced by a model under evaluation. Do not judge A or question whether it follows the instruction; judge only how closely B reaches the same edited result as A, in meaning rather than in pixel detail.

Scoring, one integer from 0 to 10:
- 10: B makes the same change as A, in the same way.
- 7 to 9: B makes the same change; only minor differences in style or placement.
- 4 to 6: B partly matches A, or differs in a detail that matters for the instruction, or has visible defects.
- 1 to 3: B barely relates to the change A shows.
- 0: B has nothing to do with the instruction, or is not a coherent image.

Explain your comparison briefly, then give the score on its own line as <score>X</score>."#;

/// GroundScore: the user turn, followed by the ground-truth image (A) and the predicted image (B).
pub const GROUND_SCORE_USER: &str = r#"Instruction: <instruction>

Image A (first image): the reference edited image.
Image B (second image): the edited image produced by the model under evaluation.

How well does B match A with respect to the instruction? Explain briefly, then end with <score>X</score>."#;

/// How a manifest names the built-in wording.
pub const OWN_WORDING: &str = "project's own (rewards differ from the paper's)";

/// Where a template's text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// The project's own wording, compiled in.
    BuiltIn,
    /// A template file and the SHA-256 of its bytes.
    File {
        /// The file, as given.
        path: PathBuf,
        /// Lower-case hex SHA-256 of the file's bytes.
        sha256: String,
    },
}

/// One prompt template and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template text, placeholders unfilled (see [`fill`]).
    pub text: String,
    /// Where `text` came from.
    pub origin: TemplateOrigin,
}

impl Template {
    /// A compiled-in template.
    pub fn built_in(text: &str) -> Self {
        Self { text: text.to_string(), origin: TemplateOrigin::BuiltIn }
    }

    /// Reads a template file exactly as written (no trimming: whitespace is part of a reproduced prompt).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Config { path: path.to_path_buf(), msg: "prompt template is not UTF-8".into() })?;
        if text.trim().is_empty() {
            return Err(Error::Config { path: path.to_path_buf(), msg: "prompt template is empty".into() });
        }
        Ok(Self { text, origin: TemplateOrigin::File { path: path.to_path_buf(), sha256 } })
    }

    /// Whether this is the built-in wording.
    pub fn is_built_in(&self) -> bool {
        self.origin == TemplateOrigin::BuiltIn
    }
}

/// What a run manifest records about a reward's templates: [`OWN_WORDING`] when all of them are built in, else per
/// template its path and SHA-256 (or [`OWN_WORDING`] for a built-in one).
pub fn provenance(templates: &[(&str, &Template)]) -> Value {
    if templates.iter().all(|(_, t)| t.is_built_in()) {
        return Value::String(OWN_WORDING.into());
    }
    let entries = templates.iter().map(|(name, t)| {
        let v = match &t.origin {
            TemplateOrigin::BuiltIn => Value::String(OWN_WORDING.into()),
            TemplateOrigin::File { path, sha256 } => json!({ "path": path.display().to_string(), "sha256": sha256 }),
        };
        (name.to_string(), v)
    });
    Value::Object(entries.collect())
}

/// The four prompts a verifier needs; built-in wording unless replaced by files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSet {
    /// VIEScore semantic consistency (user turn; source and edited image follow).
    pub semantic_consistency: Template,
    /// VIEScore perceptual quality (user turn; the edited image follows).
    pub perceptual_quality: Template,
    /// GroundScore system turn.
    pub ground_score_system: Template,
    /// GroundScore user turn (the ground-truth and predicted images follow).
    pub ground_score_user: Template,
}

impl Default for PromptSet {
    fn default() -> Self {
        Self {
            semantic_consistency: Template::built_in(SEMANTIC_CONSISTENCY),
            perceptual_quality: Template::built_in(PERCEPTUAL_QUALITY),
            ground_score_system: Template::built_in(GROUND_SCORE_SYSTEM),
            ground_score_user: Template::built_in(GROUND_SCORE_USER),
        }
    }
}

/// Fills the instruction placeholders of a template.
pub fn fill(template: &str, instruction: &str) -> String {
    template.replace("<instruction>", instruction).replace("{eps_instruction}", instruction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_placeholder_styles_are_filled() {
        assert_eq!(fill("a <instruction> b {eps_instruction}", "x"), "a x b x");
        assert!(fill(SEMANTIC_CONSISTENCY, "add a hat").contains("Instruction: add a hat"));
        assert!(fill(GROUND_SCORE_USER, "add a hat").contains("add a hat"));
    }

    #[test]
    fn template_files_are_read_byte_for_byte_with_their_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        assert!(Template::from_file(&p).is_err());
        std::fs::write(&p, "  \n").unwrap();
        assert!(Template::from_file(&p).is_err());
        std::fs::write(&p, [0xff, 0xfe, b'x']).unwrap();
        assert!(Template::from_file(&p).unwrap_err().to_string().contains("UTF-8"));
        std::fs::write(&p, "Rules\n<instruction>\n").unwrap();
        let t = Template::from_file(&p).unwrap();
        assert_eq!(t.text, "Rules\n<instruction>\n");
        // SHA-256 of the 20 bytes "Rules\n<instruction>\n", computed independently with sha256sum.
        let sha = "1fdb62aa80eda43d807cc3a23b0a732669ce615fe81115ca2ef2866cc9d9f76b";
        assert_eq!(t.origin, TemplateOrigin::File { path: p.clone(), sha256: sha.into() });

        let own = Template::built_in("x");
        assert_eq!(provenance(&[("a", &own), ("b", &own)]), json!(OWN_WORDING));
        assert_eq!(
            provenance(&[("a", &t), ("b", &own)]),
            json!({ "a": { "path": p.display().to_string(), "sha256": sha }, "b": OWN_WORDING })
        );
    }
}

//! Verifier prompts. The built-in wording is ours: it asks for the rubric EARL uses (VIEScore's semantic consistency
//! = [editing success, over-editing] and perceptual quality = [naturalness, artifacts], each 0–10, as JSON; and
//! GroundScore's 0–10 semantic match with the ground-truth edit in `<score>X</score>`), but it is not the VIEScore or
//! EARL text. To reproduce the paper's rewards exactly, put the original prompts in files and point the config at
//! them (docs/rewards.md shows which reference strings go into which file). In every template `<instruction>` and
//! `{eps_instruction}` are replaced by the editing instruction (the placeholders of VIEScore and of EARL's
//! GroundScore prompt, so the original text can be pasted unchanged).
use std::path::Path;

use earl_core::{Error, Result};

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

/// The four prompts a verifier needs; built-in wording unless replaced by files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSet {
    pub semantic_consistency: String,
    pub perceptual_quality: String,
    pub ground_score_system: String,
    pub ground_score_user: String,
}

impl Default for PromptSet {
    fn default() -> Self {
        Self {
            semantic_consistency: SEMANTIC_CONSISTENCY.into(),
            perceptual_quality: PERCEPTUAL_QUALITY.into(),
            ground_score_system: GROUND_SCORE_SYSTEM.into(),
            ground_score_user: GROUND_SCORE_USER.into(),
        }
    }
}

/// Reads a template file exactly as written (no trimming: whitespace is part of a reproduced prompt).
pub fn read_template(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    if text.trim().is_empty() {
        return Err(Error::Config { path: path.to_path_buf(), msg: "prompt template is empty".into() });
    }
    Ok(text)
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
    fn empty_or_missing_templates_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        assert!(read_template(&p).is_err());
        std::fs::write(&p, "  \n").unwrap();
        assert!(read_template(&p).is_err());
        std::fs::write(&p, "Rules\n<instruction>\n").unwrap();
        assert_eq!(read_template(&p).unwrap(), "Rules\n<instruction>\n");
    }
}

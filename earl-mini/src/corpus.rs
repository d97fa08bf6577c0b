//! What EARL-mini's two tokenizers are trained on: world images and world texts, drawn only from the training
//! splits (`s-train`, `c-train`), so the held-out templates and colour–shape pairs of `ood-test` stay unseen by
//! every trained part, tokenizers included. Both streams are pure functions of a seed, like the samples.
use image::RgbImage;

use crate::render::render;
use crate::splits::{Sample, Split};

/// The training splits, in the order the streams interleave them.
pub const TRAIN_SPLITS: [Split; 2] = [Split::STrain, Split::CTrain];

/// An endless stream of world images for the vision tokenizer: sample `i` of `s-train` and `c-train` in turn,
/// source then target (a target shows the edited scenes the decoder must later reconstruct, so both are seen).
pub fn training_images(seed: u64) -> impl Iterator<Item = RgbImage> {
    (0u64..).flat_map(move |i| {
        TRAIN_SPLITS.into_iter().flat_map(move |split| {
            let s = Sample::generate(split, seed, i);
            [render(&s.source), render(&s.target)]
        })
    })
}

/// The texts of samples `0..count` of both training splits: every instruction and every CoT (one text per line
/// of `cot.txt`), plus the fixed pieces of EARL's prompts (the reasoning markers and the grid header), so the BPE
/// learns the words the language model will read and write.
pub fn training_texts(seed: u64, count: u64) -> Vec<String> {
    let mut texts = vec![
        earl_core::prompt::THINK_PREFIX.to_string(),
        earl_core::prompt::THINK_END.to_string(),
        format!("{0}*{0}", crate::WORLD_SIZE / 8),
    ];
    for i in 0..count {
        for split in TRAIN_SPLITS {
            let s = Sample::generate(split, seed, i);
            texts.push(s.instruction.clone());
            texts.extend(s.cot.values().cloned());
        }
    }
    texts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_stream_alternates_splits_and_pairs_deterministically() {
        let a: Vec<RgbImage> = training_images(3).take(8).collect();
        let b: Vec<RgbImage> = training_images(3).take(8).collect();
        assert_eq!(a, b);
        let s0 = Sample::generate(Split::STrain, 3, 0);
        let c0 = Sample::generate(Split::CTrain, 3, 0);
        assert_eq!(a[0], render(&s0.source));
        assert_eq!(a[1], render(&s0.target));
        assert_eq!(a[2], render(&c0.source));
        assert_eq!(a[4], render(&Sample::generate(Split::STrain, 3, 1).source));
        assert_ne!(a[0], a[1], "a target differs from its source (no edit is a no-op)");
    }

    #[test]
    fn texts_hold_instructions_cot_and_prompt_pieces_of_training_splits_only() {
        let t = training_texts(1, 4);
        assert!(t.contains(&Sample::generate(Split::CTrain, 1, 3).instruction));
        assert!(t.iter().any(|x| x.contains('[')), "CoT boxes are in the corpus");
        assert!(t.contains(&"16*16".to_string()));
        let ood = Sample::generate(Split::OodTest, 1, 0);
        assert!(!t.contains(&ood.instruction));
    }
}

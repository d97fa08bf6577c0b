//! `episodes/iter_NNNNN/`, the browsable record of an iteration's rollouts: one JSON line per completion (prompt
//! with runs of visual tokens elided, completion, reward, finish) and, with a vision tokenizer, the source,
//! ground-truth and predicted images as PNGs.

use super::rollout::Episode;
use super::RlRunner;
use crate::data::EditRecord;
use crate::error::{Error, Result};
use crate::grid::CodeGrid;
use crate::imageproc;

impl RlRunner {
    /// `episodes/iter_NNNNN/`: one JSON line per completion (prompt with visual tokens elided, completion, reward)
    /// and, with a VQ, source / ground-truth / predicted PNGs a person can browse.
    pub(super) fn dump_episodes(&self, it: u64, eps: &[Episode], scores: &[f64], records: &[EditRecord]) -> Result<()> {
        let dir = self.out_dir.join("episodes").join(format!("iter_{it:05}"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let elide = |ids: &[i64]| -> String {
            let mut out = String::new();
            let mut run = 0usize;
            let mut text: Vec<u32> = Vec::new();
            let flush = |text: &mut Vec<u32>, out: &mut String| {
                out.push_str(&self.tok.decode(text).unwrap_or_default());
                text.clear();
            };
            for &t in ids {
                if self.tok.is_visual(t as u32) {
                    flush(&mut text, &mut out);
                    run += 1;
                } else {
                    if run > 0 {
                        out.push_str(&format!("<|{run} visual tokens|>"));
                        run = 0;
                    }
                    text.push(t as u32);
                }
            }
            flush(&mut text, &mut out);
            if run > 0 {
                out.push_str(&format!("<|{run} visual tokens|>"));
            }
            out
        };
        let path = dir.join("episodes.jsonl");
        // Collected, then written atomically: a kill mid-dump leaves the previous file or none, never half of one.
        let mut text = String::new();
        for (k, (e, s)) in eps.iter().zip(scores).enumerate() {
            let rec = &records[e.record];
            let mut line = serde_json::json!({
                "episode": k, "record": rec.id, "instruction": rec.instruction, "reward": s,
                "finish": e.finish.as_str(), "valid_image": e.grid.is_some(),
                "prompt": elide(&e.prompt[..e.prompt.len() - e.prefill_len]),
                "completion": elide(&[&e.prompt[e.prompt.len() - e.prefill_len..], &e.tokens[..]].concat()),
            });
            if self.codec.is_some() {
                let save = |grid: &CodeGrid, name: &str| -> Result<()> {
                    if let Some(img) = self.decode(grid)? {
                        imageproc::save(&img, &dir.join(name))?;
                    }
                    Ok(())
                };
                save(&rec.source, &format!("{k:03}_source.png"))?;
                save(&rec.edited, &format!("{k:03}_ground_truth.png"))?;
                if let Some(gr) = &e.grid {
                    save(gr, &format!("{k:03}_predicted.png"))?;
                }
                line["images"] = serde_json::json!(format!("{k:03}_*.png"));
            }
            text.push_str(&format!("{line}\n"));
        }
        crate::fsio::write_atomic(&path, text.as_bytes())
    }
}

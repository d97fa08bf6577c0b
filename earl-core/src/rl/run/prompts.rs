//! The prompts of GRPO, streamed as SFT streams its data ([`crate::train::sources::DataStream`]): the training mixture
//! is built over the datasets' shard readers and nothing else is read at start; each iteration reads the records of
//! the prompts it draws. The draw is EARL's: `prompts_per_iteration` distinct mixture entries from the
//! (seed, iteration) stream, without replacement inside an iteration and with replacement across iterations.
use std::path::PathBuf;

use crate::data::mixture::MixItem;
use crate::data::{build_mixture, DataRng, EditRecord, ShardReader};
use crate::error::{Error, Result};
use crate::rl::config::Mixture;

/// The training mixture of a GRPO run over open shard readers.
pub(super) struct PromptPool {
    readers: Vec<ShardReader>,
    /// Mixture entries: (dataset, record index).
    pool: Vec<MixItem>,
}

impl PromptPool {
    /// Opens `paths` and builds their mixture; fewer entries than `per_iteration` prompts is an error.
    pub(super) fn open(paths: &[PathBuf], mixture: &Mixture, seed: u64, per_iteration: usize) -> Result<Self> {
        let readers = paths.iter().map(|p| ShardReader::open(p)).collect::<Result<Vec<_>>>()?;
        let sizes: Vec<usize> = readers.iter().map(ShardReader::len).collect();
        let coefs = match mixture {
            Mixture::UpsampleToLargest => None,
            Mixture::Coefficients(c) => Some(c.as_slice()),
        };
        let (pool, _) = build_mixture(&sizes, coefs, seed)?;
        if pool.len() < per_iteration {
            return Err(Error::input(format!(
                "the training mixture has {} prompts, fewer than the {per_iteration} drawn per iteration",
                pool.len(),
            )));
        }
        Ok(PromptPool { readers, pool })
    }

    /// The `n` prompts of iteration `it`: distinct pool entries, drawn from the (seed, iteration) stream.
    pub(super) fn draw(&self, seed: u64, it: u64, n: usize) -> Vec<MixItem> {
        DataRng::derive(seed, "rl-prompts", it).sample(&self.pool, n)
    }

    /// The records of `items`, read from their shards.
    pub(super) fn read(&self, items: &[MixItem]) -> Result<Vec<EditRecord>> {
        items.iter().map(|&(d, i)| self.readers[d].get(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ShardWriter;
    use crate::grid::CodeGrid;

    fn dataset(dir: &std::path::Path, tag: &str, n: usize) -> PathBuf {
        let path = dir.join(tag);
        let mut w = ShardWriter::create_or_resume(&path, "edits", 2).unwrap();
        for i in 0..n {
            let grid = CodeGrid::new(1, 1, vec![i as u32]).unwrap();
            let rec = EditRecord {
                id: format!("{tag}{i}"),
                instruction: String::new(),
                source: grid.clone(),
                edited: grid,
                cot: Default::default(),
                meta: Default::default(),
            };
            w.push(Some(&rec.id), &rec).unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn draws_match_the_in_memory_runner_and_only_drawn_records_are_read() {
        let d = tempfile::tempdir().unwrap();
        let paths = vec![dataset(d.path(), "a", 3), dataset(d.path(), "b", 5)];
        let (seed, n) = (7, 4);
        let pool = PromptPool::open(&paths, &Mixture::UpsampleToLargest, seed, n).unwrap();
        // The runner that held every record drew flat indices into the concatenated datasets from the same stream.
        let (mix, _) = build_mixture(&[3, 5], None, seed).unwrap();
        let flat: Vec<usize> = mix.iter().map(|&(ds, i)| [0, 3][ds] + i).collect();
        let ids: Vec<String> = (0..8).map(|k| if k < 3 { format!("a{k}") } else { format!("b{}", k - 3) }).collect();
        for it in 0..5 {
            let old = DataRng::derive(seed, "rl-prompts", it).sample(&flat, n);
            let got: Vec<String> = pool.read(&pool.draw(seed, it, n)).unwrap().into_iter().map(|r| r.id).collect();
            assert_eq!(got, old.iter().map(|&k| ids[k].clone()).collect::<Vec<_>>(), "iteration {it}");
        }
        let too_many = PromptPool::open(&paths, &Mixture::UpsampleToLargest, seed, 11).err().unwrap().to_string();
        assert!(too_many.contains("has 10 prompts, fewer than the 11"), "{too_many}");
        // A broken record that is never drawn does not stop the run (every record used to be parsed at start).
        let c = dataset(d.path(), "c", 2);
        let shard = c.join("shard-00000.jsonl");
        let text = std::fs::read_to_string(&shard).unwrap();
        let first = text.find('\n').unwrap() + 1;
        let broken = format!("{}{}\n", &text[..first], "x".repeat(text.len() - first - 1));
        std::fs::write(&shard, broken).unwrap();
        let pool = PromptPool::open(&[c], &Mixture::UpsampleToLargest, seed, 1).unwrap();
        assert_eq!(pool.read(&[(0, 0)]).unwrap()[0].id, "c0");
        assert!(pool.read(&[(0, 1)]).is_err());
    }
}

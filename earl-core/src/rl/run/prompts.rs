//! The prompts of GRPO, streamed as SFT streams its data ([`crate::train::run::DataStream`]): the training mixture
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

//! Where SFT's sequences come from: a [`SequenceSource`] per dataset directory (`sequences` records checked against
//! the model's vocabulary as they are read, or `edits` records laid out as EARL's SFT examples), the infinite
//! seeded [`DataStream`] over their mixture, and the fixed [`ValidationSet`]. The run loop in [`super::run`] only
//! draws from these.
use std::path::PathBuf;

use super::batch::{collate_left, Sequence};
use super::experiment::{DataFormat, SftExperiment};
use crate::data::mixture::{build_mixture, MixItem};
use crate::data::{DataRng, EditRecord, ShardReader};
use crate::error::{Error, Result};
use crate::prompt::PromptBuilder;
use crate::tokenizer::Emu3Tokenizer;

/// Anything that yields training sequences by index.
pub trait SequenceSource {
    /// Number of sequences.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sequence `i` (0-based).
    fn get(&self, i: usize) -> Result<Sequence>;
}

/// A `sequences` dataset directory (records `{input_ids, labels}`), each record checked against the model's
/// vocabulary as it is read ([`Sequence::check`]).
pub struct SequenceShards {
    reader: ShardReader,
    vocab: i64,
}

impl SequenceShards {
    /// Sequences of `reader` for a model of `vocab` tokens.
    pub fn new(reader: ShardReader, vocab: i64) -> Self {
        SequenceShards { reader, vocab }
    }
}

impl SequenceSource for SequenceShards {
    fn len(&self) -> usize {
        self.reader.len()
    }
    fn get(&self, i: usize) -> Result<Sequence> {
        let s: Sequence = self.reader.get(i)?;
        s.check(Some(self.vocab)).map_err(|e| self.reader.record_error(i, e))?;
        Ok(s)
    }
}

/// An `edits` dataset laid out as EARL's SFT examples by the prompt module.
pub struct EditSequences<'a> {
    /// The dataset's shards.
    pub reader: ShardReader,
    /// Lays records out as SFT sequences.
    pub prompts: PromptBuilder<'a>,
    /// CoT-map keys written as reasoning before the edited image.
    pub cot_keys: Vec<String>,
}

impl SequenceSource for EditSequences<'_> {
    fn len(&self) -> usize {
        self.reader.len()
    }
    fn get(&self, i: usize) -> Result<Sequence> {
        edit_sequence(&self.prompts, &self.reader.get::<EditRecord>(i)?, &self.cot_keys)
    }
}

/// The SFT sequence of an edit record. As the reference's dataset: with `cot_keys` set and a non-empty CoT map, the
/// target starts with the reasoning over the listed keys that the record has (missing keys are skipped with a
/// warning); otherwise it is the edited image block alone.
pub fn edit_sequence(prompts: &PromptBuilder, r: &EditRecord, cot_keys: &[String]) -> Result<Sequence> {
    let steps: Option<Vec<(String, String)>> = (!cot_keys.is_empty() && !r.cot.is_empty()).then(|| {
        cot_keys
            .iter()
            .filter_map(|k| match r.cot.get(k) {
                Some(v) => Some((k.clone(), v.clone())),
                None => {
                    tracing::warn!(id = %r.id, key = %k, "CoT key missing from record");
                    None
                }
            })
            .collect()
    });
    let ex = prompts.sft_example(&r.source, &r.instruction, &r.edited, steps.as_deref())?;
    Ok(Sequence { input_ids: ex.input_ids, labels: ex.labels })
}

/// Opens the experiment's training datasets as sequence sources (`tok` is needed for `edits` data).
pub fn open_sources<'a>(
    exp: &SftExperiment,
    tok: Option<&'a Emu3Tokenizer>,
) -> Result<Vec<Box<dyn SequenceSource + 'a>>> {
    open_dirs(&exp.data_paths, exp, tok)
}

/// Opens the experiment's validation datasets (`validation_paths`) as sequence sources.
pub fn open_validation_sources<'a>(
    exp: &SftExperiment,
    tok: Option<&'a Emu3Tokenizer>,
) -> Result<Vec<Box<dyn SequenceSource + 'a>>> {
    open_dirs(&exp.validation_paths, exp, tok)
}

fn open_dirs<'a>(
    dirs: &[PathBuf],
    exp: &SftExperiment,
    tok: Option<&'a Emu3Tokenizer>,
) -> Result<Vec<Box<dyn SequenceSource + 'a>>> {
    let mut out: Vec<Box<dyn SequenceSource + 'a>> = Vec::new();
    for dir in dirs {
        let reader = ShardReader::open(dir)?;
        if reader.manifest.kind != exp.data_format.as_str() {
            return Err(Error::Data {
                path: dir.clone(),
                msg: format!(
                    "holds {:?} records but data_format is {:?}",
                    reader.manifest.kind,
                    exp.data_format.as_str()
                ),
            });
        }
        // `image_area` names the area the data was tokenized at (the reference hands it to the model config): a
        // dataset whose manifest records another one (`earl data tokenize --area`) is refused.
        let recorded = reader.manifest.meta.get("image_area").and_then(|v| v.as_u64());
        if let (Some(want), Some(got)) = (exp.image_area, recorded.filter(|&a| Some(a) != exp.image_area)) {
            let msg = format!("was tokenized at image_area {got}, the experiment sets {want}");
            return Err(Error::Data { path: dir.clone(), msg });
        }
        if exp.data_format == DataFormat::Edits {
            let tok = tok.ok_or_else(|| Error::input("data_format \"edits\" needs a tokenizer"))?;
            out.push(Box::new(EditSequences {
                reader,
                prompts: PromptBuilder::new(tok),
                cot_keys: exp.cot_keys.clone(),
            }));
        } else {
            out.push(Box::new(SequenceShards::new(reader, crate::Emu3Config::from_dir(&exp.model)?.vocab_size)));
        }
    }
    Ok(out)
}

/// The infinite sample stream: epoch `e` is the mixture list in the order of `DataRng::derive(seed, "epoch", e)`.
pub struct DataStream<'a> {
    sources: Vec<Box<dyn SequenceSource + 'a>>,
    mixture: Vec<MixItem>,
    seed: u64,
    epoch: Option<(u64, Vec<usize>)>,
}

impl<'a> DataStream<'a> {
    /// The stream over `sources` mixed by `coefficients` (`None` = upsample all to the largest), seeded by `seed`.
    /// Fails when the mixture is empty.
    pub fn new(sources: Vec<Box<dyn SequenceSource + 'a>>, coefficients: Option<&[f64]>, seed: u64) -> Result<Self> {
        let sizes: Vec<usize> = sources.iter().map(|s| s.len()).collect();
        let (mixture, counts) = build_mixture(&sizes, coefficients, seed)?;
        tracing::info!(?sizes, ?counts, "dataset mixture");
        if mixture.is_empty() {
            return Err(Error::input("the data mixture is empty"));
        }
        Ok(DataStream { sources, mixture, seed, epoch: None })
    }

    /// Samples per epoch.
    pub fn epoch_len(&self) -> usize {
        self.mixture.len()
    }

    /// The `g`-th sample of the stream.
    pub fn sample(&mut self, g: u64) -> Result<Sequence> {
        let n = self.mixture.len() as u64;
        let (e, pos) = (g / n, (g % n) as usize);
        if self.epoch.as_ref().map(|x| x.0) != Some(e) {
            let mut order: Vec<usize> = (0..n as usize).collect();
            DataRng::derive(self.seed, "epoch", e).shuffle(&mut order);
            self.epoch = Some((e, order));
        }
        let (d, i) = self.mixture[self.epoch.as_ref().expect("set above").1[pos]];
        self.sources[d].get(i)
    }
}

/// The fixed validation sample, as the reference's validation dataset: `size / n` records drawn without replacement
/// from each of the n datasets (all of a smaller one), concatenated and shuffled, all from the run seed.
pub struct ValidationSet {
    /// The sampled sequences, in evaluation order.
    pub sequences: Vec<Sequence>,
}

impl ValidationSet {
    /// Draws `size / sources.len()` sequences from each source (all of a smaller one) and shuffles them, with `seed`.
    pub fn sample(sources: &[Box<dyn SequenceSource + '_>], size: usize, seed: u64) -> Result<Self> {
        if sources.is_empty() {
            return Ok(ValidationSet { sequences: Vec::new() });
        }
        let per = size / sources.len();
        let mut picked = Vec::new();
        for (d, s) in sources.iter().enumerate() {
            let mut idx: Vec<usize> = (0..s.len()).collect();
            DataRng::derive(seed, "validation", d as u64).shuffle(&mut idx);
            idx.truncate(per.min(s.len()));
            picked.extend(idx.into_iter().map(|i| (d, i)));
        }
        DataRng::derive(seed, "validation-order", 0).shuffle(&mut picked);
        let sequences = picked.into_iter().map(|(d, i)| sources[d].get(i)).collect::<Result<Vec<_>>>()?;
        tracing::info!(samples = sequences.len(), datasets = sources.len(), "validation set");
        Ok(ValidationSet { sequences })
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.sequences.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }

    /// Left-padded evaluation batches of `batch` sequences, in order.
    pub fn batches(&self, batch: usize, device: tch::Device) -> Result<Vec<super::batch::Batch>> {
        self.sequences.chunks(batch.max(1)).map(|c| collate_left(c, device)).collect()
    }
}

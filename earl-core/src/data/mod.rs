//! Editing data: the tokenized record ([`EditRecord`]: instruction, source and edited code grids, optional chain of
//! thought and metadata), its sharded on-disk format with manifest and checksums ([`shards`]), mixtures of several
//! datasets exactly as EARL builds them ([`mixture`]), and the seeded data random stream ([`rng`]).
pub mod cot;
pub mod mixture;
pub mod parquet;
pub mod record;
pub mod rng;
pub mod shards;
pub mod tokenize;

pub use mixture::build_mixture;
pub use record::EditRecord;
pub use rng::DataRng;
pub use shards::{Manifest, ShardReader, ShardWriter};

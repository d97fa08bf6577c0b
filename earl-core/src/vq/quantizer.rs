//! The codebook (`Emu3VQVAEVectorQuantizer`): encoding picks, for every latent vector, the entry with the smallest
//! squared distance, computed as the reference does — `|z|² + |e|² − 2 z·e`, `argmin` taking the first minimum —
//! and decoding looks entries up. Distances are always computed in f32, also for bf16 models: the reference would
//! compute them in bf16, where neighbouring codebook entries often tie; f32 keeps codes closest to the f32 model.
use tch::{Kind, Tensor};

use crate::error::Result;
use crate::weights::TensorSource;

/// Rows of latents per distance matrix: bounds memory at `CHUNK × codebook_size` f32 (512 MiB for Emu3's 32768).
const CHUNK: i64 = 4096;

#[derive(Debug)]
pub struct Quantizer {
    pub embedding: Tensor, // [K, D] in the model's dtype
    embedding_f32: Tensor, // [K, D]
    norms_f32: Tensor,     // [K] |e|²
}

impl Quantizer {
    pub fn load(src: &dyn TensorSource, name: &str, codebook_size: i64, dim: i64) -> Result<Self> {
        let embedding = src.tensor(name, &[codebook_size, dim])?;
        let embedding_f32 = embedding.to_kind(Kind::Float);
        let norms_f32 = embedding_f32.square().sum_dim_intlist(1, false, Kind::Float);
        Ok(Quantizer { embedding, embedding_f32, norms_f32 })
    }

    /// z: [N, D] → codes [N] (i64).
    pub fn codes(&self, z: &Tensor) -> Tensor {
        let z = z.to_kind(Kind::Float);
        let chunks: Vec<Tensor> = z
            .split(CHUNK, 0)
            .iter()
            .map(|zc| {
                let zs = zc.square().sum_dim_intlist(1, true, Kind::Float); // [n, 1]
                let dots = zc.matmul(&self.embedding_f32.tr()) * 2.0; // [n, K]
                ((zs + &self.norms_f32) - dots).argmin(1, false)
            })
            .collect();
        Tensor::cat(&chunks, 0)
    }

    /// codes: [...] i64 → [..., D] in the model's dtype.
    pub fn lookup(&self, codes: &Tensor) -> Tensor {
        Tensor::embedding(&self.embedding, codes, -1, false, false)
    }
}

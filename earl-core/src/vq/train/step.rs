//! One training forward of the vision tokenizer, VQ-VAE style (van den Oord et al. 2017, as Emu3's tokenizer is
//! trained): the encoder's continuous latents `z`, their nearest codebook entries `q` (the inference search), the
//! straight-through latents `z + sg(q − z)` decoded to pixels, and the loss
//! `recon(x̂, x) + ‖sg(z) − q‖² + β‖z − sg(q)‖²` (codebook and commitment terms). Plus the codebook housekeeping
//! that keeps a small codebook alive: entries set from encoder outputs on the first batch, and entries unused for a
//! while restarted at random current latents.
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::super::Emu3VqModel;
use super::ReconLoss;

/// The loss terms of one batch (the total is a graph to differentiate; the parts are detached scalars).
pub struct StepLoss {
    /// `recon + codebook + β·commitment`.
    pub total: Tensor,
    /// Reconstruction term (L1 or L2 per pixel, on normalised pixels in [−1, 1]).
    pub recon: f64,
    /// `mean ‖sg(z) − q‖²`.
    pub codebook: f64,
    /// `mean ‖z − sg(q)‖²` (before β).
    pub commitment: f64,
    /// The code of every latent, [N] i64.
    pub codes: Tensor,
    /// The encoder's latents [N, e], detached (for codebook restarts).
    pub latents: Tensor,
}

/// The quantizer's inputs [N, e] for images [B, 3, H, W] and the latent grid's (b, h, w).
pub fn latents(model: &Emu3VqModel, images: &Tensor) -> crate::Result<(Tensor, [i64; 3])> {
    let q = model.continuous_latents(images)?; // [B, e, 1, h, w]
    let (b, e, _, h, w) = q.size5().expect("5-D latents");
    Ok((q.permute([0, 2, 3, 4, 1]).reshape([-1, e]), [b, h, w]))
}

/// Forward and loss of one batch of normalised images [B, 3, H, W] (sides multiples of the spatial factor).
pub fn forward(model: &Emu3VqModel, images: &Tensor, beta: f64, recon: ReconLoss) -> crate::Result<StepLoss> {
    let (z, [b, h, w]) = latents(model, images)?;
    let e = z.size()[1];
    let codes = tch::no_grad(|| model.quantizer().codes(&z));
    let q = model.quantizer().lookup(&codes); // [N, e], differentiable in the codebook
    let codebook = (&q - z.detach()).square().mean(Kind::Float);
    let commitment = (&z - q.detach()).square().mean(Kind::Float);
    let st = &z + (&q - &z).detach();
    let quant = st.view([b, 1, h, w, e]).permute([0, 4, 1, 2, 3]);
    let out = model.decode_quantized(&quant);
    let diff = out - images;
    let rec = match recon {
        ReconLoss::L1 => diff.abs().mean(Kind::Float),
        ReconLoss::L2 => diff.square().mean(Kind::Float),
    };
    let total = &rec + &codebook + &commitment * beta;
    Ok(StepLoss {
        total,
        recon: rec.double_value(&[]),
        codebook: codebook.double_value(&[]),
        commitment: commitment.double_value(&[]),
        codes,
        latents: z.detach(),
    })
}

/// (distinct codes, perplexity `exp(H)` of the code histogram) of a batch's codes.
pub fn usage(codes: &Tensor, codebook_size: i64) -> (i64, f64) {
    let hist = codes.bincount::<Tensor>(None, codebook_size).to_kind(Kind::Double);
    let used = hist.gt(0.0).sum(Kind::Int64).int64_value(&[]);
    let p = &hist / hist.sum(Kind::Double);
    let entropy = -(&p * p.clamp_min(1e-30).log()).sum(Kind::Double).double_value(&[]);
    (used, entropy.exp())
}

/// `n` row indices in `0..rows` drawn with replacement from `rng` (host-side, so the draw does not depend on
/// libtorch's global generator).
fn draw(rng: &mut ChaCha8Rng, rows: i64, n: i64) -> Tensor {
    let idx: Vec<i64> = (0..n).map(|_| (rng.next_u64() % rows as u64) as i64).collect();
    Tensor::from_slice(&idx)
}

/// Rows of `latents` [N, e] picked at random for `slots`, with a little noise so duplicates separate.
fn samples(latents: &Tensor, slots: i64, rng: &mut ChaCha8Rng) -> Tensor {
    let pick = latents.index_select(0, &draw(rng, latents.size()[0], slots).to_device(latents.device()));
    let std = latents.std(false).double_value(&[]).max(1e-6);
    tch::manual_seed((rng.next_u64() >> 1) as i64);
    &pick + pick.randn_like() * (0.01 * std)
}

/// Codebook housekeeping: the usage counts since the last restart, and the generator of the picks.
pub struct Codebook {
    counts: Tensor,
    rng: ChaCha8Rng,
}

impl Codebook {
    pub fn new(codebook_size: i64, seed: u64) -> Self {
        Codebook {
            counts: Tensor::zeros([codebook_size], (Kind::Int64, tch::Device::Cpu)),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Sets every entry of `embedding` [K, e] from encoder outputs (the first batch's latents): a codebook drawn
    /// far from the latents would leave most entries unused from the first step on.
    pub fn init_from(&mut self, embedding: &Tensor, latents: &Tensor) {
        let k = embedding.size()[0];
        let _g = tch::no_grad_guard();
        let values = samples(latents, k, &mut self.rng);
        embedding.detach().copy_(&values);
    }

    /// Adds a batch's codes to the usage counts.
    pub fn record(&mut self, codes: &Tensor) {
        let k = self.counts.size()[0];
        self.counts += codes.to_device(tch::Device::Cpu).bincount::<Tensor>(None, k);
    }

    /// Moves every entry not used since the last call onto a random current latent, resets the counts, and returns
    /// the restarted rows (the caller clears their optimizer moments).
    pub fn restart_dead(&mut self, embedding: &Tensor, latents: &Tensor) -> Vec<i64> {
        let dead: Vec<i64> = Vec::<i64>::try_from(self.counts.eq(0).nonzero().view([-1])).unwrap_or_default();
        let _ = self.counts.zero_();
        if !dead.is_empty() {
            let _g = tch::no_grad_guard();
            let rows = Tensor::from_slice(&dead).to_device(embedding.device());
            let values = samples(latents, dead.len() as i64, &mut self.rng);
            let _ = embedding.detach().index_copy_(0, &rows, &values);
        }
        dead
    }
}
